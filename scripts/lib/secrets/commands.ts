/**
 * The subcommands of scripts/secrets.ts that work on the SOPS file alone (init, recipients, set, edit), and
 * the options and help lines all of its subcommands share. Each body is loaded only when its command runs.
 */
import { COMMON_OPTIONS, defineCommand, type Flags } from '../core/cli.ts';
import { DEFAULT_SECRETS_FILE } from './source.ts';

export const USAGE = 'node --import tsx scripts/secrets.ts';

export const FILE_OPTION = { 'secrets-file': { type: 'string' } } as const;
/** --allow-rotate KEY, repeatable or KEY,KEY: the same on set, edit and rotate. */
export const ALLOW_ROTATE_OPTION = { 'allow-rotate': { type: 'string', multiple: true } } as const;
export const allowRotateKeys = (flag: readonly string[] | undefined): string[] =>
  (flag ?? []).flatMap((k) => k.split(',')).filter(Boolean);
export const FILE_HELP = `  --secrets-file F     the SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same`;
export const ENVIRONMENT = `Environment: SOPS (sops binary), SECRETS_FLOW_SOPS_TIMEOUT (seconds, default 30, for sops and
SOPS_AGE_KEY_CMD).`;

const initCommand = defineCommand({
  name: `${USAGE} init`,
  synopsis: '--recipient AGE_PUBLIC_KEY [--secrets-file F] [--fill] [options]',
  description: `Generates every generatable key (openssl-style random values) and writes the SOPS file encrypted to
the recipient; keys set by hand (provider tokens, NetBird keys) are listed for you to add. --fill adds
only the missing keys to an existing file and never touches the others (it needs your age key to read
the file). Also writes .sops.yaml creation rules when there are none.`,
  options: { ...COMMON_OPTIONS, ...FILE_OPTION, recipient: { type: 'string' }, fill: { type: 'boolean' } },
  aliases: { file: 'secrets-file' },
  optionsHelp: `  --recipient KEY      the age public key (age1…) to encrypt to
${FILE_HELP}
  --fill               add only the missing keys to an existing file`,
  footer: ENVIRONMENT,
  run: async (flags, _positionals, out) =>
    (await import('./init.ts')).secretsInit(
      out,
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      flags.recipient,
      Boolean(flags.fill),
    ),
});

export const init = {
  command: initCommand,
  summary: 'generate every generatable key into a new SOPS file (or --fill the missing ones)',
};

const recipientsCommand = defineCommand({
  name: `${USAGE} recipients`,
  synopsis: '[add AGE1... | remove AGE1...] [--secrets-file F] [options]',
  description: `Without an action: the file's age recipients (read without any key), which one is yours, and
the .sops.yaml creation rule's recipients when a rule names the file.
  add AGE1...      wraps the data key for one more recipient; no value changes (sops updatekeys)
  remove AGE1...   a new data key: every value re-encrypted and wrapped for the others only, so the
                   removed identity can decrypt nothing in the new file (sops updatekeys + sops -r);
                   rotate the values it could read (git history keeps the old file)
A .sops.yaml creation rule that names the file is updated to the new list. add and remove need your age key.`,
  options: { ...COMMON_OPTIONS, ...FILE_OPTION },
  aliases: { file: 'secrets-file' },
  positionals: { min: 0, max: 2, wrong: 'recipients [add|remove AGE1...]' },
  optionsHelp: FILE_HELP,
  footer: ENVIRONMENT,
  exits: { badInput: 'not an age recipient, the last recipient, or bad input; the file is untouched' },
  run: async (flags, positionals, out) =>
    (await import('./recipients.ts')).secretsRecipients(
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      positionals,
      USAGE,
      out,
    ),
});

export const recipients = {
  command: recipientsCommand,
  summary: 'list the age recipients, or add / remove one (remove re-encrypts under a new data key)',
};

/** set and edit write values: both take the file and the flags that waive a written value's checks. */
const WRITE_OPTIONS = {
  ...COMMON_OPTIONS,
  ...FILE_OPTION,
  'allow-unknown': { type: 'boolean' },
  ...ALLOW_ROTATE_OPTION,
  strict: { type: 'boolean' },
} as const;

const writeFlags = (flags: Flags<typeof WRITE_OPTIONS>) => ({
  file: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
  allowUnknown: Boolean(flags['allow-unknown']),
  allowRotate: allowRotateKeys(flags['allow-rotate']),
  strict: Boolean(flags.strict),
});

const setCommand = defineCommand({
  name: `${USAGE} set`,
  synopsis: 'KEY [--secrets-file F] [--allow-unknown] [--allow-rotate KEY] [--strict] [options]',
  description: `Sets one key in the SOPS file. The value is read from stdin (one trailing newline removed) or, on a
terminal, from a prompt that does not echo; never from the command line. Only KEY's ENC[...] changes (a new
key is added at the end), with sops.lastmodified and sops.mac; every other line stays byte for byte. Needs
your age key. Refuses a key not in the schema, a malformed value, and a new value for a key that is never
rotated (--allow-rotate KEY).`,
  options: WRITE_OPTIONS,
  aliases: { file: 'secrets-file' },
  // A second argument would be a value typed on the command line: refused without echoing it.
  positionals: {
    min: 1,
    max: 1,
    wrong: 'set takes exactly one KEY; the value comes from stdin or the prompt, never from the command line',
  },
  optionsHelp: `${FILE_HELP}
  --allow-unknown      accept a key the schema does not know
  --allow-rotate KEY   change KEY although it is never rotated (restoring a backup)
  --strict             refuse a hand-made token whose format is not its vendor's`,
  footer: ENVIRONMENT,
  exits: {
    badInput: 'unknown key, malformed value, a never-rotated key, or bad input; the file is untouched',
  },
  run: async (flags, positionals, out) =>
    (await import('./set.ts')).secretsSet({ ...writeFlags(flags), key: positionals[0] as string }, out),
});

export const set = {
  command: setCommand,
  summary: 'one value from stdin (or a prompt) into the SOPS file; only its ENC[...] changes',
};

const editCommand = defineCommand({
  name: `${USAGE} edit`,
  synopsis: '[--secrets-file F] [--allow-unknown] [--allow-rotate KEY[,KEY]] [--strict] [options]',
  description: `Opens the decrypted SOPS file in $VISUAL, else $EDITOR, else vim/nano/vi, like \`sops FILE\` without
the sops binary. That fallback is named before it opens, and only on a terminal: with neither variable set
and stdin or stdout not a terminal, edit exits 2 (vi would print the file and wait). The plaintext is a 0600 file in a 0700 directory on a memory file system ($XDG_RUNTIME_DIR
when it is a 0700 directory of yours, else /dev/shm; else the temp directory, with a warning), removed
afterwards on every path, Ctrl-C, SIGTERM and SIGHUP included (a copy a SIGKILLed edit left is removed,
and said, by the next edit); the editor gets its path and the environment less every secret. After the
editor exits the document is checked: valid YAML, a map, no sops key, each changed key well-formed, unknown
keys refused (--allow-unknown), never-rotated keys kept (--allow-rotate KEY). On a problem it is listed
(never a value) and, on a terminal, the editor may be re-opened on your text; otherwise nothing is written.
Only the changed keys' ENC[...] change, with sops.lastmodified and sops.mac. Needs your age key.`,
  options: WRITE_OPTIONS,
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --allow-unknown      accept keys the schema does not know
  --allow-rotate KEY   change or remove KEY although it is never rotated (repeatable, or KEY,KEY)
  --strict             refuse a hand-made token whose format is not its vendor's`,
  footer: `Environment: VISUAL, EDITOR (the editor, split like a shell word list), XDG_RUNTIME_DIR.`,
  exits: {
    badInput:
      'the edit was refused or abandoned, no editor (no EDITOR and no terminal), or bad input; the file is untouched',
  },
  run: async (flags, _positionals, out) => (await import('./edit.ts')).secretsEdit(writeFlags(flags), out),
});

export const edit = {
  command: editCommand,
  summary: 'the decrypted file in $EDITOR (plaintext in memory only), validated',
};
