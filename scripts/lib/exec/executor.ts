/**
 * Commands are data (DESIGN.md principle 1): every external program runs through one Executor, so a
 * dry run, a recording fake or a remote host costs nothing extra and tests see exactly what ran.
 * Secrets never go into argv: they travel on `input` (stdin) or in `env` of the one process.
 */
export interface Command {
  argv: readonly string[];
  /** Written to the process's stdin, then closed. */
  input?: string;
  /** Extra environment variables for this process only. */
  env?: Readonly<Record<string, string>>;
  /** Wall-clock deadline; the process is killed when it passes. */
  timeoutMs?: number;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the program could not be started at all (not found, not executable). */
  spawnError?: string;
}

export interface Executor {
  /** Where commands run, for messages: "local", "ssh root@host", "dry run". */
  readonly where: string;
  run(cmd: Command): Promise<CommandResult>;
}

/** POSIX shell quoting, for showing a command to a person (and later for the SSH executor). */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
