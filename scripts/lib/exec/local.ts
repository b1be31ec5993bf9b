import { spawn } from 'node:child_process';
import type { Command, CommandResult, Executor } from './executor.ts';

/**
 * Runs commands on this machine: argv arrays, never a shell, stdin written then closed.
 * Built on node:child_process rather than execa because every operator command pays for this module
 * at start-up, and execa's import alone costs ~200 ms of create-bootstrap-secrets' 600 ms budget
 * (bench/run.ts); what is needed here is a dozen lines.
 */
export class LocalExecutor implements Executor {
  readonly where = 'local';

  run(cmd: Command): Promise<CommandResult> {
    const [file, ...args] = cmd.argv;
    if (!file) return Promise.reject(new Error('empty command'));
    return new Promise((resolve) => {
      const child = spawn(file, args, {
        env: cmd.env ? { ...process.env, ...cmd.env } : process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      // Our own deadline rather than spawn's `timeout`, whose timer outlives a program that never
      // started and holds the process open for the whole deadline.
      let timedOut = false;
      const deadline =
        cmd.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              child.kill('SIGKILL');
            }, cmd.timeoutMs);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let settled = false;
      const settle = (result: CommandResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(result);
      };
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.on('error', (err: NodeJS.ErrnoException) => {
        // A program that cannot be started never emits 'close'; its pipes would keep the process alive.
        child.stdin.destroy();
        child.stdout.destroy();
        child.stderr.destroy();
        const reason = err.code === 'ENOENT' ? `${file}: not found` : err.message;
        settle({ exitCode: 127, stdout: '', stderr: '', timedOut: false, spawnError: reason });
      });
      // A child that exits without reading stdin closes the pipe; that is its business, not an error.
      child.stdin.on('error', () => {});
      child.stdin.end(cmd.input ?? '');
      child.on('close', (code) => {
        settle({
          exitCode: code ?? 1,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
          timedOut,
        });
      });
    });
  }
}
