import { type ParseArgsConfig, parseArgs } from 'node:util';
import { EXIT, exitCodeOf, InputError } from './errors.ts';
import { createOutput, type Output } from './output.ts';
import { redactor } from './redact.ts';

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

/**
 * Runs a command's main function and turns any failure into a redacted `error:`/`hint:` pair and the
 * conventional exit code. Nothing thrown here reaches the terminal unredacted.
 */
export async function runMain(
  main: (out: Output) => Promise<number | undefined>,
  argv = process.argv,
): Promise<void> {
  const json = argv.includes('--json');
  const out = createOutput({ json, verbose: argv.includes('--verbose') || argv.includes('-v') });
  try {
    process.exitCode = (await main(out)) ?? EXIT.ok;
  } catch (err) {
    const e = err as Error & { hint?: string };
    out.error(e.message ?? String(err), e.hint);
    const code = exitCodeOf(err);
    if (code === EXIT.failed && !(err instanceof InputError) && process.env.SECRETS_FLOW_DEBUG && e.stack) {
      process.stderr.write(`${redactor.redact(e.stack)}\n`);
    }
    out.result({ ok: false, error: redactor.redact(e.message ?? String(err)), hint: e.hint, exitCode: code });
    process.exitCode = code;
  }
}
