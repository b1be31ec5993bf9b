import { Chalk, type ChalkInstance } from 'chalk';
import { markOwnEscapes, printable } from './printable.ts';
import { redactor } from './redact.ts';

/**
 * The only way commands print. Every line passes through the redactor first, then has its control
 * characters escaped (printable.ts): only the colours `color` adds reach the terminal as escapes. With --json, stdout
 * carries exactly one JSON result and the human narration moves to stderr so scripts can parse stdout.
 */
export interface Output {
  readonly color: ChalkInstance;
  /** A line of narration. */
  info(line: string): void;
  /** A line shown only with --verbose. */
  detail(line: string): void;
  warn(line: string): void;
  /** Primary output a person asked for (a manifest preview, decrypted text); stdout unless --json. */
  data(text: string): void;
  /** The final machine-readable result; printed only with --json. */
  result(value: unknown): void;
  error(message: string, hint?: string): void;
}

export interface OutputOptions {
  json?: boolean;
  verbose?: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

export function createOutput(opts: OutputOptions = {}): Output {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const env = opts.env ?? process.env;
  const narration = opts.json ? stderr : stdout;
  const isTty = Boolean((narration as NodeJS.WriteStream).isTTY);
  const color = markOwnEscapes(new Chalk({ level: colorLevel(env, isTty) }));
  const write = (stream: NodeJS.WritableStream, text: string) => {
    stream.write(`${printable(redactor.redact(text))}\n`);
  };
  return {
    color,
    info: (line) => write(narration, line),
    detail: (line) => {
      if (opts.verbose) write(narration, color.dim(line));
    },
    warn: (line) => write(stderr, color.yellow(`warning: ${line}`)),
    data: (text) => write(opts.json ? stderr : stdout, text.replace(/\n$/, '')),
    result: (value) => {
      if (opts.json) write(stdout, JSON.stringify(value, null, 2));
    },
    error: (message, hint) => {
      write(stderr, color.red(`error: ${message}`));
      if (hint) write(stderr, `hint: ${hint}`);
    },
  };
}

/**
 * The colour level: FORCE_COLOR as chalk reads it (empty or "true": on; "false" or "0": off; 1 to 3: that
 * level), and it wins over everything else, as in Node's own tty.getColorDepth; else NO_COLOR set to a
 * non-empty value turns colour off (no-color.org: an empty NO_COLOR does not); else colour on a TTY that
 * is not TERM=dumb.
 */
export function colorLevel(env: NodeJS.ProcessEnv, isTty: boolean): 0 | 1 | 2 | 3 {
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === '' || force === 'true') return 1;
    if (force === 'false') return 0;
    const level = Number.parseInt(force, 10);
    if (Number.isInteger(level)) return Math.max(0, Math.min(level, 3)) as 0 | 1 | 2 | 3;
    return 1;
  }
  if (env.NO_COLOR) return 0;
  return isTty && env.TERM !== 'dumb' ? 1 : 0;
}
