import { type ParseArgsConfig, parseArgs } from 'node:util';
import { EXIT, exitCodeOf, InputError } from './errors.ts';
import { createOutput, type Output } from './output.ts';
import { redactor } from './redact.ts';
import { exitCodeForSignal, runContext, type StopSignal, secondaryOf } from './run-context.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command accepts (DESIGN.md "CLI conventions"). */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
} as const satisfies Options;

/**
 * Parses argv with node:util; an unknown flag or a missing value is a usage error (exit 2) that
 * points at --help instead of a stack trace.
 */
export function parseCli<const O extends Options>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new InputError((err as Error).message.split('\n')[0] ?? 'invalid arguments', `see ${usage} --help`);
  }
}

/**
 * The preamble of a command without subcommands: parse the flags, answer --help (undefined: nothing
 * more to do), and refuse positional arguments.
 */
export function parseFlags<const O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  help: string,
  out: Output,
) {
  const { values, positionals } = parseCli(argv, options, usage);
  if ((values as { help?: boolean }).help) {
    out.data(help);
    return undefined;
  }
  if (positionals.length > 0)
    throw new InputError(`unexpected argument: ${positionals[0]}`, `see ${usage} --help`);
  return values;
}

/** How long the clean-up after an interrupt may take at the most (release the lock, close the connection). */
const CLEANUP_BOUND_MS = 5000;
/** How long an interrupted command's own unwinding is waited for before the clean-up starts. */
const UNWIND_MS = 1000;

/**
 * Runs a command's main function and turns any failure into a redacted `error:`/`hint:` pair and the
 * conventional exit code. Nothing thrown here reaches the terminal unredacted.
 *
 * SIGINT and SIGTERM abort the run context (run-context.ts): work in flight stops, the registered
 * clean-up runs (bounded), and the command says what was interrupted and exits 130 / 143, with one JSON
 * result under --json. A second signal while cleaning up exits at once. A dropped SSH connection is
 * named with the phase it cut ("the SSH connection to HOST dropped during upload: ..."), and a command
 * left waiting on nothing (the event loop ran dry) fails loudly instead of Node's silent exit 13.
 */
export async function runMain(
  main: (out: Output) => Promise<number | undefined>,
  argv = process.argv,
): Promise<void> {
  const json = argv.includes('--json');
  const out = createOutput({ json, verbose: argv.includes('--verbose') || argv.includes('-v') });
  runContext.reset();
  // Once interrupted, the command's own output (a failure caused by the interrupt) is noise.
  const quiet =
    <A extends unknown[]>(fn: (...a: A) => void) =>
    (...a: A) => {
      if (!runContext.interrupted) fn(...a);
    };
  // The result is held until main returns: a failure after it (releasing the lock) replaces it, so that
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
      out.error(`${signal} again: exiting without finishing the clean-up`, LOCK_LEFT_HINT);
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
  process.on('beforeExit', onBeforeExit);
  const work = main(guarded).then(
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

const LOCK_LEFT_HINT =
  'if a host lock is left, the next run from this machine takes it over (its holder is gone); else bifrost unlock';

function reportFailure(err: unknown, out: Output): void {
  const e = err as Error & { hint?: string };
  let message = e.message ?? String(err);
  let secondary = secondaryOf(err);
  const dropped = runContext.dropped;
  if (dropped) {
    // "the SSH connection to HOST dropped during upload: <what it cut>", said once, not per layer.
    const prefix = `the SSH connection to ${dropped.where} dropped`;
    const tidy = (m: string) => m.split(`${prefix} `).join('');
    const rest = message.startsWith(prefix) ? message.slice(prefix.length).trimStart() : message;
    message = `${prefix}${dropped.phase ? ` during ${dropped.phase}` : ''}: ${tidy(rest)}`;
    secondary = secondary.map(tidy);
  }
  out.error([message, ...secondary.map((s) => `also: ${s}`)].join('\n'), e.hint);
  const code = exitCodeOf(err);
  if (code === EXIT.failed && !(err instanceof InputError) && process.env.SECRETS_FLOW_DEBUG && e.stack) {
    process.stderr.write(`${redactor.redact(e.stack)}\n`);
  }
  out.result({
    ok: false,
    error: redactor.redact(message),
    ...(secondary.length ? { secondary: secondary.map((s) => redactor.redact(s)) } : {}),
    ...(dropped ? { dropped: { where: dropped.where, phase: dropped.phase } } : {}),
    hint: e.hint,
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
  const { done, failed } = await runContext.runCleanups(CLEANUP_BOUND_MS);
  const code = exitCodeForSignal(signal);
  const parts = [phase?.consequence, ...done, ...failed].filter((p): p is string => Boolean(p));
  const message = `interrupted by ${signal}${phase ? ` during ${phase.name}` : ''}${parts.length ? `: ${parts.join('; ')}` : ''}; re-run to converge`;
  out.error(message, failed.length ? LOCK_LEFT_HINT : undefined);
  out.result({ ok: false, interrupted: signal, phase: phase?.name, error: message, exitCode: code });
  process.exitCode = code;
  // Whatever the interrupted work still holds open (a timer, a socket) must not keep the process alive.
  process.exit(code);
}
