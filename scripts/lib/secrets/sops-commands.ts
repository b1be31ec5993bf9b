/**
 * The subcommands of scripts/sops.ts: `decrypt` and `exec-env`, read through the native SOPS reader (the
 * front door, sops/index.ts), with the options and exit lines they share.
 */
import { defineCommand } from '../core/cli.ts';
import { EXIT, InputError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import {
  decryptFileToTree,
  decryptSopsFile,
  execEnvPairs,
  formatNamed,
  runWithEnv,
  SOPS_FORMATS,
  type SopsFormat,
  storeFor,
} from './sops/index.ts';

export const USAGE = 'node --import tsx scripts/sops.ts';

function formatOption(value: string | undefined, name: string): SopsFormat | undefined {
  if (value === undefined) return undefined;
  const format = formatNamed(value);
  if (!format) {
    throw new InputError(
      `--${name} must be one of ${SOPS_FORMATS.join(', ')}, not "${value}"`,
      `see ${USAGE} decrypt --help`,
    );
  }
  return format;
}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;
const HELP_LINE = '  -h, --help           this help';
export const EXITS = {
  badInput: 'bad input (missing file, no matching key, MAC mismatch, tampered value)',
} as const;

const decryptCommand = defineCommand({
  name: `${USAGE} decrypt`,
  synopsis: 'FILE [--output-type TYPE] [--input-type TYPE]',
  description: `Prints the decrypted FILE on stdout like \`sops decrypt\`, with the sops metadata removed and the
key order kept. Comments are not printed.`,
  options: { ...HELP_OPTION, 'output-type': { type: 'string' }, 'input-type': { type: 'string' } },
  optionsHelp: `  --input-type TYPE    yaml, json, dotenv or binary (default: from the extension; unknown = binary)
  --output-type TYPE   yaml, json, dotenv or binary (default: the input type; binary prints the raw data)
${HELP_LINE}`,
  commonHelp: false,
  positionals: { min: 1, max: 1, wrong: 'decrypt takes exactly one FILE' },
  exits: EXITS,
  run: (flags, positionals, out) => decryptFile(flags, positionals, out),
});

const execEnvCommand = defineCommand({
  name: `${USAGE} exec-env`,
  synopsis: 'FILE COMMAND',
  description: `Like \`sops exec-env\` (3.11 and later): decrypts FILE, then runs \`/bin/sh -c COMMAND\` with the
current environment plus every top-level value of the first document as a variable (strings as
they are; numbers and booleans as text; null as <nil>). A nested map or list refuses the file.
The values reach the command only through its environment, and the exit code is the command's.`,
  options: HELP_OPTION,
  optionsHelp: HELP_LINE,
  commonHelp: false,
  positionals: { min: 2, max: 2, wrong: 'exec-env takes FILE and COMMAND' },
  exits: { ...EXITS, extra: 'otherwise: the exit code of COMMAND' },
  run: (_flags, positionals, out) => runExecEnv(positionals, out),
});

export const decrypt = {
  command: decryptCommand,
  summary: 'FILE: print the plaintext, metadata removed, key order kept',
};

export const execEnv = {
  command: execEnvCommand,
  summary: "FILE CMD: run CMD in /bin/sh with the file's top-level values as environment variables",
};

async function decryptFile(
  values: { 'input-type'?: string; 'output-type'?: string },
  positionals: string[],
  out: Output,
): Promise<number> {
  const [file = ''] = positionals;
  const inputType = formatOption(values['input-type'], 'input-type');
  const outputType = formatOption(values['output-type'], 'output-type');
  const tree = await decryptFileToTree(file, { format: inputType });
  for (const warning of tree.warnings) out.warn(warning);
  // The output type's store writes the plaintext (binary: the raw data); the tree, not the plain
  // documents, keeps integer-like keys in order and floats as floats.
  process.stdout.write(storeFor(outputType ?? tree.format).emitPlainFile(tree.branches, file));
  return EXIT.ok;
}

async function runExecEnv(positionals: string[], out: Output): Promise<number> {
  const [file = '', command = ''] = positionals;
  const decrypted = await decryptSopsFile(file);
  for (const warning of decrypted.warnings) out.warn(warning);
  // The decryptor has registered every value it decrypted.
  const vars = execEnvPairs(decrypted.documents[0] ?? {}, file);
  return runWithEnv(command, vars);
}
