import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
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
              // The whole tree: a wrapper script's own child (a `sops` shell script without exec) would
              // otherwise keep the pipes open, and the command would wait for it past its deadline.
              killTree(child.pid, 'SIGKILL');
              child.stdout.destroy();
              child.stderr.destroy();
            }, cmd.timeoutMs);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let settled = false;
      let interrupted: InterruptedError | undefined;
      let term: NodeJS.Timeout | undefined;
      // An interrupt kills the child (SIGTERM, then SIGKILL) and fails the command once it is gone.
      const offStop = runContext.onStop(() => {
        interrupted = new InterruptedError(runContext.interrupted ?? 'SIGINT');
        killTree(child.pid, 'SIGTERM');
        term = setTimeout(() => {
          killTree(child.pid, 'SIGKILL');
          child.stdout.destroy();
          child.stderr.destroy();
        }, TERM_GRACE_MS);
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

/**
 * Signals a process and every descendant, found through /proc (Linux); elsewhere the process alone.
 * Descendants are collected before any signal, since a killed parent's children are re-parented to init.
 * Not a process group: a child in a session of its own would lose the terminal that kubectl credential
 * plugins or gpg's pinentry prompt on.
 */
export function killTree(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  const victims = [pid, ...descendantsOf(pid)];
  for (const p of victims) {
    try {
      process.kill(p, signal);
    } catch {
      // Already gone.
    }
  }
}

function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  for (const name of entries) {
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // Exited while we looked.
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
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
