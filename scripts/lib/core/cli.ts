import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { closest } from './closest.ts';
import { EXIT, exitCodeOf, InputError } from './errors.ts';
import { createOutput, type Output } from './output.ts';
import { printable } from './printable.ts';
import { redactor } from './redact.ts';
import { beginRun, exitCodeForSignal, runContext, type StopSignal, secondaryOf } from './run-context.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command accepts. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
} as const satisfies Options;

/** The help lines of COMMON_OPTIONS, closing every command's option list. */
export const COMMON_OPTIONS_HELP = `  --json               print the result as JSON on stdout (narration goes to stderr)
  -v, --verbose        print every command
  -h, --help           this help`;

/** What each exit code means, for every command; a command words 0, 1 and 2 for itself where it helps. */
export interface ExitCodes {
  ok?: string;
  failed?: string;
  badInput?: string;
  /** Codes of its own (a command that runs another passes that one's on). */
  extra?: string;
}

/** The exit-code table printed at the end of every --help. */
export function exitCodeTable(codes: ExitCodes = {}): string {
  return [
    'Exit codes:',
    `  0    ${codes.ok ?? 'done'}`,
    `  1    ${codes.failed ?? 'failed while working'}`,
    `  2    ${codes.badInput ?? 'bad input'}`,
    '       or a usage error: an unknown option, a missing or malformed value',
    '  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM',
    ...(codes.extra ? [`  ${codes.extra}`] : []),
  ].join('\n');
}

/** The known flag closest to `typed` (`--dryrun` → `--dry-run`), when one is close enough to be meant. */
export function suggestFlag(typed: string, known: readonly string[]): string | undefined {
  const guess = closest(typed.replace(/^-+/, '').split('=')[0] ?? '', known);
  return guess === undefined ? undefined : `--${guess}`;
}

/**
 * Before node:util sees argv: `--alias` becomes its canonical flag, and a value that looks like a
 * negative number (`--wait -5`) is bound to its string option as `--wait=-5`, so that it is
 * refused by the number parser with its own message instead of "argument is ambiguous".
 */
function preprocess(
  argv: readonly string[],
  options: Options,
  aliases: Readonly<Record<string, string>>,
  bare: Readonly<Record<string, string>> = {},
) {
  const outArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      outArgs.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)(=.*)?$/.exec(arg);
    if (!m) {
      outArgs.push(arg);
      continue;
    }
    const name = aliases[m[1] as string] ?? (m[1] as string);
    const next = argv[i + 1];
    if (m[2] === undefined && bare[name] !== undefined) outArgs.push(`--${name}=${bare[name]}`);
    else if (
      m[2] === undefined &&
      options[name]?.type === 'string' &&
      next !== undefined &&
      /^-[\d.]/.test(next)
    ) {
      outArgs.push(`--${name}=${next}`);
      i++;
    } else outArgs.push(`--${name}${m[2] ?? ''}`);
  }
  return outArgs;
}

/**
 * Parses argv with node:util; an unknown flag (with the closest known one suggested), a missing value or
 * an unexpected one is a usage error (exit 2) that points at --help instead of a stack trace.
 */
export function parseCli<const O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  aliases: Readonly<Record<string, string>> = {},
  bare: Readonly<Record<string, string>> = {},
) {
  const hint = `see ${usage} --help`;
  try {
    return parseArgs({
      args: preprocess(argv, options, aliases, bare),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    const first = e.message.split('\n')[0] ?? 'invalid arguments';
    const flag = /'(-[^']+)'/.exec(first)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) {
      const guess = suggestFlag(flag, [...Object.keys(options), ...Object.keys(aliases)]);
      throw new InputError(`unknown option ${flag}${guess ? `; did you mean ${guess}?` : ''}`, hint);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) {
      const name = flag.replace(/^-+/, '').split(/[ =,]/)[0] ?? '';
      const full = Object.entries(options).find(([n, o]) => n === name || o.short === name);
      throw new InputError(
        full?.[1].type === 'string' ? `--${full[0]} needs a value` : `--${full?.[0] ?? name} takes no value`,
        hint,
      );
    }
    throw new InputError(first, hint);
  }
}

/** How a numeric flag is bounded. */
export type NumberKind = 'non-negative' | 'positive' | 'positive-integer';

const NUMBER_RULE: Record<NumberKind, { ok: (n: number) => boolean; what: string }> = {
  'non-negative': { ok: (n) => n >= 0, what: 'a number ≥ 0' },
  positive: { ok: (n) => n > 0, what: 'a positive number' },
  'positive-integer': { ok: (n) => Number.isInteger(n) && n >= 1, what: 'a whole number ≥ 1' },
};

/** The one parser of numeric flags: `fallback` when absent, else a number of `kind` or a usage error. */
export function numberFlag(
  flag: string,
  value: string | undefined,
  kind: NumberKind,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const rule = NUMBER_RULE[kind];
  const n = value.trim() === '' ? Number.NaN : Number(value);
  if (Number.isFinite(n) && n < 0 && !rule.ok(n))
    throw new InputError(`--${flag} cannot be negative (${value}): give ${rule.what}`);
  if (!Number.isFinite(n) || !rule.ok(n))
    throw new InputError(`--${flag} must be ${rule.what}, not "${value}"`);
  return n;
}

/** What runMain must know before the command runs: how it prints. */
export interface CommonFlags {
  json?: boolean;
  verbose?: boolean;
}

/**
 * --json and --verbose as the command's own parser reads argv, so that a word after `--` or an option's
 * value (`--file --json`) is not taken for them. Argv the command will refuse is read leniently (unknown
 * options ignored), so that its usage error is still said the way the operator asked: as JSON with --json.
 */
function commonFlags(
  argv: readonly string[],
  options: Options,
  aliases: Readonly<Record<string, string>> = {},
  bare: Readonly<Record<string, string>> = {},
): CommonFlags {
  const read = (strict: boolean) =>
    parseArgs({ args: preprocess(argv, options, aliases, bare), options, allowPositionals: true, strict })
      .values as Record<string, unknown>;
  let values: Record<string, unknown>;
  try {
    values = read(true);
  } catch {
    values = read(false);
  }
  return {
    json: options.json !== undefined && values.json === true,
    verbose: options.verbose !== undefined && values.verbose === true,
  };
}

/** The parsed flags of a command with options `O`. */
export type Flags<O extends Options> = ReturnType<typeof parseCli<O>>['values'];

/** One command: what --help prints, which flags it takes, and what it runs. */
export interface CommandSpec<O extends Options> {
  /** How it is invoked, e.g. `node --import tsx scripts/tool.ts show`. */
  name: string;
  /** What follows the name on the usage line, e.g. `--name N [options]`. */
  synopsis: string;
  /** What it does (paragraphs); shown after the usage line. */
  description: string;
  options: O;
  /** The option lines of --help (COMMON_OPTIONS_HELP is appended unless `commonHelp: false`). */
  optionsHelp?: string;
  commonHelp?: boolean;
  /** Other spellings of a flag: `{ file: 'input-file' }` makes `--file F` mean `--input-file F`. */
  aliases?: Readonly<Record<string, string>>;
  /**
   * String options whose value is optional (node:util has none): `{ 'dry-run': 'client' }` makes a bare
   * `--dry-run` mean `--dry-run=client`, while `--dry-run=server` keeps its value. Only the `=` form sets one.
   */
  bareValues?: Readonly<Record<string, string>>;
  /** How many positional arguments it takes (default none). */
  positionals?: {
    min?: number;
    max?: number;
    name?: string /** Said when the count is wrong. */;
    wrong?: string;
  };
  /** Text after the options (environment, justfile recipe). */
  footer?: string;
  exits?: ExitCodes;
  run(flags: Flags<O>, positionals: string[], out: Output): Promise<number>;
}

export interface Command {
  name: string;
  help: string;
  /** --json and --verbose in argv as `main` will parse them; never throws (see commonFlags). */
  common(argv: readonly string[]): CommonFlags;
  main(argv: string[], out: Output): Promise<number>;
}

/** Every --help: usage, what it does, its list (options or commands), a footer, the exit-code table. */
function helpText(usage: string, description: string, list: string[], footer?: string, exits?: ExitCodes) {
  return [
    `Usage: ${usage}`.trimEnd(),
    '',
    description.trimEnd(),
    '',
    ...list,
    ...(footer ? ['', footer.trimEnd()] : []),
    '',
    exitCodeTable(exits),
  ].join('\n');
}

/** Builds a command from its spec: the one place that parses, answers --help and checks positionals. */
export function defineCommand<const O extends Options>(spec: CommandSpec<O>): Command {
  const options = [
    'Options:',
    ...(spec.optionsHelp ? [spec.optionsHelp.trimEnd()] : []),
    ...(spec.commonHelp === false ? [] : [COMMON_OPTIONS_HELP]),
  ];
  const help = helpText(`${spec.name} ${spec.synopsis}`, spec.description, options, spec.footer, spec.exits);
  return {
    name: spec.name,
    help,
    common: (argv) => commonFlags(argv, spec.options, spec.aliases, spec.bareValues),
    async main(argv, out) {
      const { values, positionals } = parseCli(argv, spec.options, spec.name, spec.aliases, spec.bareValues);
      if ((values as { help?: boolean }).help) {
        out.data(help);
        return EXIT.ok;
      }
      const { min = 0, max = 0, name = 'argument', wrong } = spec.positionals ?? {};
      if (wrong && (positionals.length < min || positionals.length > max))
        throw new InputError(wrong, `see ${spec.name} --help`);
      if (positionals.length > max)
        throw new InputError(`unexpected argument: ${positionals[max]}`, `see ${spec.name} --help`);
      if (positionals.length < min) throw new InputError(`say which ${name}`, `see ${spec.name} --help`);
      return spec.run(values, positionals, out);
    },
  };
}

/** A command with subcommands (`tool show`, `tool init`): each answers its own --help. */
export function defineGroup(spec: {
  name: string;
  description: string;
  commands: Record<string, { command: Command; summary: string }>;
  footer?: string;
  exits?: ExitCodes;
}): Command {
  const names = Object.keys(spec.commands);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const commands = [
    'Commands:',
    ...names.map(
      (n) =>
        `  ${n.padEnd(width)}${(spec.commands[n]?.summary ?? '').replace(/\n/g, `\n  ${' '.repeat(width)}`)}`,
    ),
    '',
    `${spec.name} <command> --help shows each command's options.`,
  ];
  const help = helpText(
    `${spec.name} <command> [options]`,
    spec.description,
    commands,
    spec.footer,
    spec.exits,
  );
  const subcommand = (name: string | undefined) =>
    name !== undefined && Object.hasOwn(spec.commands, name) ? spec.commands[name] : undefined;
  return {
    name: spec.name,
    help,
    common(argv) {
      const [first, ...rest] = argv;
      return subcommand(first)?.command.common(rest) ?? commonFlags(argv, COMMON_OPTIONS);
    },
    async main(argv, out) {
      const [first, ...rest] = argv;
      if (first === '-h' || first === '--help') {
        out.data(help);
        return EXIT.ok;
      }
      if (first === undefined)
        throw new InputError(
          `no command given: say which to run (${names.join(', ')})`,
          `see ${spec.name} --help`,
        );
      const sub = subcommand(first);
      if (!sub) {
        const guess = suggestFlag(first, names)?.slice(2);
        throw new InputError(
          `unknown command "${first}"${guess ? `; did you mean ${guess}?` : ''}`,
          `one of: ${names.join(', ')} (see ${spec.name} --help)`,
        );
      }
      return sub.command.main(rest, out);
    },
  };
}

/**
 * Whether the module at `url` (its `import.meta.url`) is the one node was started with: the guard every
 * entry point ends with, so that importing a script runs nothing. argv[1] is the path as typed (a symlinked
 * checkout, a space in a directory name) while a module's URL is its real path, percent-encoded; both are
 * compared in that form.
 */
export function isMainModule(url: string): boolean {
  const main = process.argv[1];
  if (main === undefined) return false;
  try {
    return url === pathToFileURL(realpathSync(main)).href;
  } catch {
    return false;
  }
}

/** How long the clean-up after an interrupt may take at the most (every registered step together). */
const CLEANUP_BOUND_MS = 5000;
/** How long an interrupted command's own unwinding is waited for before the clean-up starts. */
const UNWIND_MS = 1000;

/**
 * Runs a command's main function and turns any failure into a redacted `error:`/`hint:` pair and the
 * conventional exit code. Nothing thrown here reaches the terminal unredacted.
 *
 * How it prints (--json, --verbose) is the command's own parse of argv. SIGINT and SIGTERM abort the run
 * context (run-context.ts): work in flight stops, the registered clean-up runs (bounded), and the command
 * says what was interrupted and exits 130 / 143, with one JSON result under --json, and the hints of the
 * clean-up steps that failed. A second signal while cleaning up exits at once, with the hints of the
 * steps left unfinished. A failure is said as the layer that knows its cause framed it (run-context.ts
 * `frameFailure`), and a command left waiting on nothing (the event loop ran dry) fails loudly instead
 * of Node's silent exit 13.
 */
export async function runMain(
  command: Pick<Command, 'common' | 'main'>,
  argv = process.argv.slice(2),
): Promise<void> {
  const out = createOutput(command.common(argv));
  beginRun();
  // Once interrupted, the command's own output (a failure caused by the interrupt) is noise.
  const quiet =
    <A extends unknown[]>(fn: (...a: A) => void) =>
    (...a: A) => {
      if (!runContext.interrupted) fn(...a);
    };
  // The result is held until main returns: a failure after it (a clean-up step) replaces it, so that
  // stdout carries exactly one JSON result whatever happens.
  let result: { value: unknown } | undefined;
  const guarded: Output = {
    color: out.color,
    info: quiet(out.info),
    detail: quiet(out.detail),
    warn: quiet(out.warn),
    data: quiet(out.data),
    result: (value) => {
      result = { value };
    },
    error: quiet(out.error),
  };
  let settled = false;
  let onInterrupt: (signal: StopSignal) => void = () => {};
  const interrupted = new Promise<StopSignal>((resolve) => {
    onInterrupt = resolve;
  });
  const onSignal = (signal: StopSignal) => {
    if (runContext.interrupted) {
      const code = exitCodeForSignal(signal);
      out.error(`${signal} again: exiting without finishing the clean-up`, hints(runContext.cleanupHints()));
      out.result({
        ok: false,
        interrupted: signal,
        error: `${signal} again during clean-up`,
        exitCode: code,
      });
      process.exit(code);
    }
    runContext.interrupt(signal);
    out.warn(
      `${signal}: stopping and cleaning up (${signal === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} again exits at once)`,
    );
    onInterrupt(signal);
  };
  const onSigint = () => onSignal('SIGINT');
  const onSigterm = () => onSignal('SIGTERM');
  // The event loop ran dry while main still waits: something can never answer. Say so, never exit 13.
  const onBeforeExit = () => {
    if (settled) return;
    settled = true;
    const phase = runContext.phase?.name;
    const message = `the command stopped with work outstanding${phase ? ` during ${phase}` : ''}: nothing can answer it any more`;
    out.error(message, 'a bug: please report it with the output above; re-run to converge');
    out.result({ ok: false, error: message, exitCode: EXIT.failed });
    process.exit(EXIT.failed);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  // From here on these handlers say what was interrupted: the start-up ones (startup-signals.mjs) step aside.
  (globalThis as Record<symbol, (() => void) | undefined>)[STARTUP_SIGNALS_DISPOSE]?.();
  process.on('beforeExit', onBeforeExit);
  const work = command.main(argv, guarded).then(
    (code) => ({ code }),
    (err: unknown) => ({ err }),
  );
  try {
    const first = await Promise.race([work, interrupted]);
    if (typeof first === 'string') {
      await reportInterrupt(first, work, out);
      return;
    }
    if ('err' in first) reportFailure(first.err, out);
    else {
      if (result) out.result(result.value);
      process.exitCode = first.code ?? EXIT.ok;
    }
  } finally {
    settled = true;
    process.off('beforeExit', onBeforeExit);
    if (!runContext.interrupted) {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    }
  }
}

/** Left on globalThis by scripts/lib/startup-signals.mjs when the command was started through it. */
const STARTUP_SIGNALS_DISPOSE = Symbol.for('secrets-flow.startup-signals.dispose');

/** The hints of clean-up steps as one hint line, or none. */
function hints(list: readonly string[]): string | undefined {
  return list.length ? list.join('; ') : undefined;
}

function reportFailure(err: unknown, out: Output): void {
  const e = err as Error & { hint?: string };
  const { message, secondary, hint, fields } = runContext.framed({
    message: e.message ?? String(err),
    secondary: secondaryOf(err),
    hint: e.hint,
  });
  out.error([message, ...secondary.map((s) => `also: ${s}`)].join('\n'), hint);
  const code = exitCodeOf(err);
  if (code === EXIT.failed && !(err instanceof InputError) && process.env.SECRETS_FLOW_DEBUG && e.stack) {
    process.stderr.write(`${printable(redactor.redact(e.stack))}\n`);
  }
  out.result({
    ok: false,
    error: redactor.redact(message),
    ...(secondary.length ? { secondary: secondary.map((s) => redactor.redact(s)) } : {}),
    ...fields,
    hint,
    exitCode: code,
  });
  process.exitCode = code;
}

/**
 * After an interrupt: give the command a moment to unwind (its in-flight work is being killed), run the
 * clean-up steps last-in first-out within CLEANUP_BOUND_MS, then say what was interrupted and exit.
 */
async function reportInterrupt(signal: StopSignal, work: Promise<unknown>, out: Output): Promise<void> {
  const phase = runContext.phase;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((r) => (timer = setTimeout(r, UNWIND_MS)))]);
  clearTimeout(timer);
  const { done, failed, hints: left } = await runContext.runCleanups(CLEANUP_BOUND_MS);
  const code = exitCodeForSignal(signal);
  const parts = [phase?.consequence, ...done, ...failed].filter((p): p is string => Boolean(p));
  const message = `interrupted by ${signal}${phase ? ` during ${phase.name}` : ''}${parts.length ? `: ${parts.join('; ')}` : ''}; re-run to converge`;
  out.error(message, hints(left));
  out.result({ ok: false, interrupted: signal, phase: phase?.name, error: message, exitCode: code });
  process.exitCode = code;
  // Whatever the interrupted work still holds open (a timer, a socket) must not keep the process alive.
  process.exit(code);
}
