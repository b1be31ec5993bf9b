import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InterruptedError, runContext } from '../run-context.ts';
import type { Command, CommandResult, Executor, FileOps, FileStat } from './executor.ts';

/** After an interrupt's SIGTERM, how long a child gets before SIGKILL. */
const TERM_GRACE_MS = 1000;

/**
 * Runs commands on this machine: argv arrays, never a shell, stdin written then closed.
 * Built on node:child_process rather than execa because every operator command pays for this module
 * at start-up, and execa's import alone costs ~200 ms of create-bootstrap-secrets' 600 ms budget
 * (bench/run.ts); what is needed here is a dozen lines.
 */
export class LocalExecutor implements Executor {
  readonly where = 'local';
  readonly files: FileOps = localFiles;

  async close(): Promise<void> {}

  run(cmd: Command): Promise<CommandResult> {
    const [file, ...args] = cmd.argv;
    if (!file) return Promise.reject(new Error('empty command'));
    if (runContext.stopped()) return Promise.reject(new InterruptedError(runContext.interrupted ?? 'SIGINT'));
    return new Promise((resolve, reject) => {
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
      let interrupted: InterruptedError | undefined;
      let term: NodeJS.Timeout | undefined;
      // An interrupt kills the child (SIGTERM, then SIGKILL) and fails the command once it is gone.
      const offStop = runContext.onStop(() => {
        interrupted = new InterruptedError(runContext.interrupted ?? 'SIGINT');
        child.kill('SIGTERM');
        term = setTimeout(() => child.kill('SIGKILL'), TERM_GRACE_MS);
      });
      const settle = (result: CommandResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(term);
        offStop();
        if (interrupted) reject(interrupted);
        else resolve(result);
      };
      child.stdout.on('data', (chunk: Buffer) => {
        stdout.push(chunk);
        cmd.onOutput?.(chunk.toString('utf8'), 'stdout');
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr.push(chunk);
        cmd.onOutput?.(chunk.toString('utf8'), 'stderr');
      });
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

export const localFiles: FileOps = {
  async readFile(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  },

  async writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    // 'wx' with the mode: the file is born with its final permissions (umask can only remove bits).
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
      await handle.close();
      await rename(temp, path);
    } catch (err) {
      await handle.close().catch(() => {});
      await unlink(temp).catch(() => {});
      throw err;
    }
  },

  async stat(path: string): Promise<FileStat | undefined> {
    try {
      const s = await stat(path);
      return { size: s.size, mode: s.mode & 0o7777, mtimeMs: s.mtimeMs };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  },
};
