import { randomBytes } from 'node:crypto';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { link, open, rename, stat, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { childEnv } from '../core/child-env.ts';
import { InputError } from '../core/errors.ts';
import { printable } from '../core/printable.ts';
import { readBoundedText } from '../core/read-bounded.ts';
import { redactor } from '../core/redact.ts';
import { InterruptedError, runContext } from '../core/run-context.ts';
import {
  badHostFile,
  type Command,
  type CommandResult,
  type Executor,
  type FileOps,
  type FileStat,
  HOST_FILE_READ,
  shellQuote,
} from './executor.ts';
import { findOnPath } from './which.ts';

/** After an interrupt's or an abort's SIGTERM, how long a child gets before SIGKILL. */
const TERM_GRACE_MS = 1000;

/**
 * What `run` resolves with when `cmd.signal` is already aborted: nothing was started (spawnError says
 * so), and the status is that of a command ended by SIGTERM (143), as an aborted one reports.
 */
export function abortedBeforeStart(): CommandResult {
  return {
    exitCode: 128 + osConstants.signals.SIGTERM,
    stdout: '',
    stderr: '',
    timedOut: false,
    spawnError: 'aborted before it started',
  };
}

type ZxCore = typeof import('zx/core');
type ZxLogEntry = Parameters<ZxCore['log']>[0];

/**
 * zx/core is the local scripting layer, loaded on the first command rather than
 * at start-up, and through `require` (its CommonJS build): `import('zx/core')` costs ~115 ms of CPU here,
 * the ESM wrapper's export analysis included, `require` ~40 ms, and `create-bootstrap-secrets --dry-run`
 * must start within 600 ms (bench/run.ts). Only zx/core: the `zx` entry point adds fs-extra, globby and
 * friends, and `zx/globals` writes to globalThis.
 */
let zxCore: Promise<ZxCore> | undefined;
export function loadZx(): Promise<ZxCore> {
  zxCore ??= Promise.resolve().then(() => {
    const zx = requireHere('zx/core') as ZxCore;
    configureZx(zx);
    return zx;
  });
  return zxCore;
}

/** `require` from this module, for the CommonJS builds of zx. */
export const requireHere = createRequire(import.meta.url);

/** Children by pid while they run, so that zx's kill hook (its `timeout`) can tell us about a deadline. */
const running = new Map<number, { onDeadline(): void }>();

/** Where zx's log lines go: stderr, redacted. */
const toStderr = (text: string) => void process.stderr.write(printable(redactor.redact(text)));

function configureZx(zx: ZxCore): void {
  const { $ } = zx;
  // /bin/sh with POSIX single quotes rather than zx's default (bash from PATH, `$'…'` quoting): the
  // command is `exec 'prog' 'arg'…`, which any POSIX shell reads back word for word, and no PATH
  // lookup decides which shell that is.
  $.shell = '/bin/sh';
  $.quote = shellQuote;
  $.prefix = '';
  $.postfix = '';
  // Nothing is echoed unless an executor asks for it (new LocalExecutor({ verbose: true })), whatever
  // ZX_VERBOSE says; and what zx does print goes through the redactor.
  $.verbose = false;
  $.quiet = true;
  $.log = redactingLog(zx.log);
  // zx's own kill lists the tree with `ps` (a process per kill); ours reads /proc, and tells the
  // command that its deadline passed.
  $.kill = async (pid, sig) => {
    running.get(Number(pid))?.onDeadline();
    killTree(Number(pid), sig ?? 'SIGKILL');
  };
}

/**
 * zx's log hook, redacted: zx's own formatter renders each entry into a buffer, and the text passes
 * through the redactor before it reaches stderr. Output chunks are held until a line ends (or the
 * command ends), so a secret split across two chunks is still whole when it is redacted.
 */
function redactingLog(zxLog: ZxCore['log']): ZxCore['log'] {
  const partial = new Map<string, string>();
  const render = (entry: ZxLogEntry): string => {
    let text = '';
    const saved = zxLog.output;
    zxLog.output = {
      write: (chunk: string | Uint8Array) => {
        text += String(chunk);
        return true;
      },
    } as never;
    try {
      zxLog(entry);
    } finally {
      zxLog.output = saved;
    }
    return text;
  };
  const hook = ((entry: ZxLogEntry) => {
    if (!entry.verbose) return;
    if (entry.kind === 'stdout' || entry.kind === 'stderr') {
      const key = `${entry.id}:${entry.kind}`;
      const text = (partial.get(key) ?? '') + String(entry.data);
      const cut = text.lastIndexOf('\n') + 1;
      partial.set(key, text.slice(cut));
      if (cut > 0) toStderr(render({ ...entry, data: Buffer.from(text.slice(0, cut)) }));
      return;
    }
    if (entry.kind === 'end') {
      for (const kind of ['stdout', 'stderr'] as const) {
        const key = `${entry.id}:${kind}`;
        const rest = partial.get(key);
        partial.delete(key);
        if (rest)
          toStderr(
            render({ kind, data: Buffer.from(`${rest}\n`), verbose: true, id: entry.id } as ZxLogEntry),
          );
      }
    }
    const text = render(entry);
    if (text) toStderr(text);
  }) as ZxCore['log'];
  return Object.assign(hook, { output: zxLog.output, formatters: zxLog.formatters });
}

export interface LocalExecutorOptions {
  /** Echo each command and its output to stderr through zx's (redacting) log; off by default. */
  verbose?: boolean;
}

/**
 * Runs commands on this machine through zx/core's `$`: the argv array is interpolated as one array
 * argument, so every element is quoted (shellQuote) and the shell sees words, never code; values travel only as
 * `input` (stdin, written then closed) or in the child's `env`. `exec` makes the program replace the
 * shell, so the pid zx knows is the program's own.
 */
export class LocalExecutor implements Executor {
  readonly where = 'local';
  readonly files: FileOps = localFiles;

  constructor(private readonly opts: LocalExecutorOptions = {}) {}

  async close(): Promise<void> {}

  async run(cmd: Command): Promise<CommandResult> {
    const [file, ...args] = cmd.argv;
    if (!file) throw new Error('empty command');
    runContext.throwIfStopped();
    if (cmd.signal?.aborted) return abortedBeforeStart();
    // Never the whole environment: children get it less every secret (child-env.ts), plus what they ask for.
    const env = childEnv({ passEnv: cmd.passEnv, extra: cmd.env });
    // The shell would say "command not found" with exit 127; callers want to know it never started.
    const missing = cannotStart(file, env);
    if (missing) return { exitCode: 127, stdout: '', stderr: '', timedOut: false, spawnError: missing };
    const zx = await loadZx();
    runContext.throwIfStopped();
    if (cmd.signal?.aborted) return abortedBeforeStart();

    let timedOut = false;
    let interrupted: InterruptedError | undefined;
    let aborted = false;
    let term: NodeJS.Timeout | undefined;
    const verbose = Boolean(this.opts.verbose);
    const p = zx.$({
      cwd: process.cwd(),
      env,
      input: cmd.input || undefined,
      nothrow: true,
      quiet: !verbose,
      verbose,
      prefix: '',
      postfix: '',
      // zx kills through $.kill (configureZx): the whole tree, at once.
      timeout: cmd.timeoutMs,
      timeoutSignal: 'SIGKILL',
    })`exec ${[file, ...args]}`;
    const child = p.child;
    // A child that exits without reading stdin closes the pipe; that is its business, not an error.
    child?.stdin?.on('error', () => {});
    // Without input zx leaves stdin open; a program that reads it would wait forever.
    if (!cmd.input) child?.stdin?.end();
    const cutOff = () => {
      // A descendant that escaped the kill (a wrapper script's child) must not keep the pipes open.
      child?.stdout?.destroy();
      child?.stderr?.destroy();
    };
    if (child?.pid)
      running.set(child.pid, {
        onDeadline: () => {
          timedOut = true;
          setImmediate(cutOff);
        },
      });
    // Our own byte buffers: zx decodes each chunk on its own, which breaks a UTF-8 character that
    // straddles two chunks.
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child?.stdout?.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      cmd.onOutput?.(chunk.toString('utf8'), 'stdout');
    });
    child?.stderr?.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      cmd.onOutput?.(chunk.toString('utf8'), 'stderr');
    });
    // The tree gets SIGTERM, then SIGKILL after a grace: every process of it, the ones that were
    // re-parented to init when their parent died included.
    const stop = () => {
      if (term) return;
      const victims = killTree(child?.pid, 'SIGTERM');
      term = setTimeout(() => {
        for (const pid of new Set([...victims, ...killTree(child?.pid, 'SIGKILL')])) signal(pid, 'SIGKILL');
        cutOff();
      }, TERM_GRACE_MS);
    };
    // An interrupt kills the child and fails the command once it is gone.
    const offStop = runContext.onStop(() => {
      interrupted = new InterruptedError(runContext.interrupted ?? 'SIGINT');
      stop();
    });
    // An abort kills it too, and the command resolves with what it printed.
    const onAbort = () => {
      aborted = true;
      stop();
    };
    cmd.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const out = await p;
      if (interrupted) throw interrupted;
      if (out.exitCode === null && out.signal === null && out.cause)
        return { exitCode: 127, stdout: '', stderr: '', timedOut: false, spawnError: out.cause.message };
      // Ended by our signal: the status a shell reports for it (143 for SIGTERM, 137 for SIGKILL).
      const bySignal = aborted && out.signal ? 128 + (osConstants.signals[out.signal] ?? 0) : undefined;
      return {
        exitCode: out.exitCode ?? bySignal ?? 1,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        timedOut,
      };
    } finally {
      clearTimeout(term);
      offStop();
      cmd.signal?.removeEventListener('abort', onAbort);
      if (child?.pid) running.delete(child.pid);
    }
  }
}

/** Why `file` cannot be started, or undefined when it can (found on PATH, or a path that is executable). */
function cannotStart(file: string, env: NodeJS.ProcessEnv): string | undefined {
  if (!file.includes('/')) return findOnPath(file, env) ? undefined : `${file}: not found`;
  try {
    accessSync(file, constants.X_OK);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? `${file}: not found`
      : `${file}: not executable`;
  }
}

/**
 * Signals a process and every descendant, found through /proc (Linux); elsewhere the process alone.
 * Descendants are collected before any signal, since a killed parent's children are re-parented to init.
 * Not a process group: a child in a session of its own would lose the terminal that kubectl credential
 * plugins or gpg's pinentry prompt on.
 */
export function killTree(pid: number | undefined, sig: NodeJS.Signals): number[] {
  if (!pid) return [];
  const victims = [pid, ...descendantsOf(pid)];
  for (const p of victims) signal(p, sig);
  return victims;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
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
      return await readBoundedText(path, HOST_FILE_READ);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (err instanceof InputError) throw badHostFile(err);
      throw err;
    }
  },

  writeFileAtomic: (path: string, content: string, mode: number) => writeLocalFileAtomic(path, content, mode),

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

/**
 * A temp file beside `path`, renamed over it. 'wx' with the mode: the temp file is born with `mode` (umask
 * can only remove bits), or with `tempMode` and given `mode` exactly (chmod, not umask) before the rename.
 * `beforeRename` runs once the temp file is complete, as late as it can: when it throws, the temp file is
 * removed and `path` left as it is. `create`: `path` must not exist; the complete file is linked there
 * (link(2) fails with EEXIST instead of replacing what another writer made meanwhile).
 */
export async function writeLocalFileAtomic(
  path: string,
  content: string,
  mode: number,
  tempMode?: number,
  then: { beforeRename?: () => Promise<void>; create?: boolean } = {},
): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', tempMode ?? mode);
  try {
    await handle.writeFile(content, 'utf8');
    if (tempMode !== undefined) await handle.chmod(mode);
    await handle.sync();
    await handle.close();
    await then.beforeRename?.();
    if (then.create) {
      await link(temp, path);
      await unlink(temp);
    } else await rename(temp, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
}
