import { Chalk, type ChalkInstance } from 'chalk';
import { redactor } from './redact.ts';

/**
 * The only way commands print. Every line passes through the redactor first. With --json, stdout
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
  // chalk's own detection ignores NO_COLOR; the CLI conventions require honouring it.
  const colorOn = isTty && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const color = new Chalk({ level: colorOn ? 1 : 0 });
  const write = (stream: NodeJS.WritableStream, text: string) => {
    stream.write(`${redactor.redact(text)}\n`);
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
