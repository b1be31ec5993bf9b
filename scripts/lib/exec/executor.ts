/**
 * Commands are data: every external program runs through one Executor, so a
 * dry run, a recording fake or a remote host costs nothing extra and tests see exactly what ran.
 * Secrets never go into argv: they travel on `input` (stdin) or in `env` of the one process.
 */
import { type InputError, WorkError } from '../core/errors.ts';
import type { BoundedRead } from '../core/read-bounded.ts';

export interface Command {
  argv: readonly string[];
  /** Written to the process's stdin, then closed. */
  input?: string;
  /**
   * Extra environment variables for this process only. Never a secret: over SSH they travel on the
   * remote command line (`env K=V cmd`).
   */
  env?: Readonly<Record<string, string>>;
  /**
   * Variables of this process's environment that children are otherwise denied (child-env.ts) and this
   * one needs, by name: the sops binary gets the age key sources. Local commands only.
   */
  passEnv?: readonly string[];
  /** Wall-clock deadline; the process is killed when it passes. */
  timeoutMs?: number;
  /** Streams output as it arrives (the result still carries all of it). */
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Ends a long-running command (`docker events`) on purpose: the process is stopped (locally its process
   * tree; over SSH the remote process is signalled and the channel closed) and `run` resolves with what
   * came so far. Nothing of it is left running on either side.
   */
  signal?: AbortSignal;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the program could not be started at all (not found, not executable). */
  spawnError?: string;
}

export interface FileStat {
  size: number;
  mode: number;
  mtimeMs: number;
}

/** Files on the machine the executor runs commands on (local disk, or SFTP over the same connection). */
export interface FileOps {
  /** undefined when the file does not exist. */
  readFile(path: string): Promise<string | undefined>;
  /**
   * Atomic: a temporary file in the same directory, created with `mode` from the start (never chmod
   * afterwards, so a secret is never readable by others even for a moment), then renamed over `path`.
   */
  writeFileAtomic(path: string, content: string, mode: number): Promise<void>;
  stat(path: string): Promise<FileStat | undefined>;
}

/**
 * How a host file is read, over SFTP or locally (read-bounded.ts's table): a host file that is not a
 * regular file, or larger than any file this tool writes there, is bad host state, a work failure (exit 1)
 * with the fix, never read (a `.deployed.json` linked to /dev/zero would never end).
 */
export const HOST_FILE_READ: BoundedRead = {
  what: "the host's file",
  kind: 'hostFile',
  hint: 'check the host: put back a regular file there or remove it',
};

/** A refusal of read-bounded.ts (an InputError about the operator's files) as bad host state. */
export function badHostFile(refusal: InputError, where?: string): WorkError {
  return new WorkError(where ? `${where}: ${refusal.message}` : refusal.message, refusal.hint);
}

export interface Executor {
  /** Where commands run, for messages: "local", "ssh deploy@host:22", "dry run". */
  readonly where: string;
  run(cmd: Command): Promise<CommandResult>;
  readonly files: FileOps;
  close(): Promise<void>;
}

/** POSIX shell quoting, for showing a command to a person (and later for the SSH executor). */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
