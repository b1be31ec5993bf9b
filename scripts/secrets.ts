/**
 * secrets: the bootstrap SOPS file's own tooling, all derived from the schema table.
 *   init   generate every generatable key and write the SOPS file encrypted to an age recipient
 *   check  a table of every key: present, length, format, consumers; never a value
 *   set    one value (from stdin or a prompt) into the SOPS file, only that key's ENC[...] changing
 *   rotate new values for generatable keys, and what must be redeployed
 *   recipients  list, add or remove age recipients (.sops.yaml kept in step)
 *   edit   the decrypted file in $VISUAL/$EDITOR (plaintext only in memory), validated, minimal diff
 *   where  the design page's "What Lives Where" table
 *   status where every value stands: in sync / differs / missing in the cluster's Secrets and on the host
 */
import { DEFAULT_BUNDLE_HOST_DIR } from './lib/bifrost/docker.ts';
import { COMMON_OPTIONS, defineCommand, defineGroup, runMain } from './lib/cli.ts';
import { SSH_OPTIONS, SSH_OPTIONS_HELP } from './lib/exec/ssh-cli.ts';
import { backendOptionHelp, chooseBackend } from './lib/kube/backend-choice.ts';
import { secretsCheck } from './lib/report/check.ts';
import { secretsWhere } from './lib/report/where.ts';
import { DEFAULT_APPS_FILE } from './lib/secrets/backend-id.ts';
import { DEFAULT_SECRETS_FILE } from './lib/secrets/source.ts';

const USAGE = 'node --import tsx scripts/secrets.ts';

const FILE_OPTION = { 'secrets-file': { type: 'string' } } as const;
/** --allow-rotate KEY, repeatable or KEY,KEY: the same on set, edit and rotate. */
const ALLOW_ROTATE_OPTION = { 'allow-rotate': { type: 'string', multiple: true } } as const;
const allowRotateKeys = (flag: readonly string[] | undefined): string[] =>
  (flag ?? []).flatMap((k) => k.split(',')).filter(Boolean);
const FILE_HELP = `  --secrets-file F     the SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same`;
const ENVIRONMENT = `Environment: SOPS (sops binary), SECRETS_FLOW_SOPS_TIMEOUT (seconds, default 30, for sops and
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
    (await import('./lib/secrets/init.ts')).secretsInit(
      out,
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      flags.recipient,
      Boolean(flags.fill),
    ),
});

const checkCommand = defineCommand({
  name: `${USAGE} check`,
  synopsis: '[--secrets-file F] [--from-env] [--strict] [options]',
  description: `A table of every key: present, length, format, who needs it; never a value. A hand-made token
(Hetzner, Cloudflare, NetBird…) not in its vendor's documented format is a warning (a vendor may change
it); --strict refuses it. Without an age key it checks key names only. Keys only another runtime
backend's Secrets read are not listed (with openbao, no INFISICAL_* key is needed).`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    'from-env': { type: 'boolean' },
    strict: { type: 'boolean' },
    backend: { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --from-env           take the secrets from the environment only
  --strict             refuse a hand-made token whose format is not its vendor's
${backendOptionHelp('check')}`,
  footer: ENVIRONMENT,
  exits: { badInput: 'a required key is missing or malformed, or bad input' },
  run: (flags, _positionals, out) =>
    secretsCheck(
      out,
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      Boolean(flags['from-env']),
      Boolean(flags.strict),
      chooseBackend(flags.backend),
    ),
});

const rotateCommand = defineCommand({
  name: `${USAGE} rotate`,
  synopsis: 'KEY... [--secrets-file F] [--allow-rotate KEY[,KEY]] [--dry-run] [--bundle DIR] [options]',
  description: `New values for generatable keys, each made by its schema generator; only those keys' ENC[...]
change (with sops.lastmodified and sops.mac). A key set by hand is refused with the set command to use; a key
that is never rotated is refused unless --allow-rotate KEY. Ends with what must be redeployed: which Kubernetes
Secret, which host file, which Bifrost services (read from the bundle's compose file). Needs your age key.`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    ...ALLOW_ROTATE_OPTION,
    'dry-run': { type: 'boolean' },
    bundle: { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  positionals: { min: 1, max: 64, wrong: 'rotate takes the KEYs to rotate' },
  optionsHelp: `${FILE_HELP}
  --allow-rotate KEY   rotate KEY although it is never rotated (you know what it breaks; repeatable, or KEY,KEY)
  --dry-run            say what would be rotated and redeployed; write nothing
  --bundle DIR         the Bifrost bundle whose compose file names the services (default cloud/bifrost)`,
  footer: ENVIRONMENT,
  exits: { badInput: 'unknown, hand-set or never-rotated key, or bad input; the file is untouched' },
  run: async (flags, positionals, out) =>
    (await import('./lib/report/rotate.ts')).secretsRotate(
      {
        file: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
        keys: positionals,
        allowRotate: allowRotateKeys(flags['allow-rotate']),
        dryRun: Boolean(flags['dry-run']),
        bundle: flags.bundle || undefined,
      },
      out,
    ),
});

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
    (await import('./lib/secrets/recipients.ts')).secretsRecipients(
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      positionals,
      USAGE,
      out,
    ),
});

const setCommand = defineCommand({
  name: `${USAGE} set`,
  synopsis: 'KEY [--secrets-file F] [--allow-unknown] [--allow-rotate KEY] [--strict] [options]',
  description: `Sets one key in the SOPS file. The value is read from stdin (one trailing newline removed) or, on a
terminal, from a prompt that does not echo; never from the command line. Only KEY's ENC[...] changes (a new
key is added at the end), with sops.lastmodified and sops.mac; every other line stays byte for byte. Needs
your age key. Refuses a key not in the schema, a malformed value, and a new value for a key that is never
rotated (--allow-rotate KEY).`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    'allow-unknown': { type: 'boolean' },
    ...ALLOW_ROTATE_OPTION,
    strict: { type: 'boolean' },
  },
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
    (await import('./lib/secrets/set.ts')).secretsSet(
      {
        file: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
        key: positionals[0] as string,
        allowUnknown: Boolean(flags['allow-unknown']),
        allowRotate: allowRotateKeys(flags['allow-rotate']),
        strict: Boolean(flags.strict),
      },
      out,
    ),
});

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
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    'allow-unknown': { type: 'boolean' },
    ...ALLOW_ROTATE_OPTION,
    strict: { type: 'boolean' },
  },
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
  run: async (flags, _positionals, out) =>
    (await import('./lib/secrets/edit.ts')).secretsEdit(
      {
        file: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
        allowUnknown: Boolean(flags['allow-unknown']),
        allowRotate: allowRotateKeys(flags['allow-rotate']),
        strict: Boolean(flags.strict),
      },
      out,
    ),
});

const whereCommand = defineCommand({
  name: `${USAGE} where`,
  synopsis: '[options]',
  description: `Which secret lives where, set when, and whether it may be rotated: the design page's "What Lives
Where" table, generated from the bootstrap schema and the runtime apps table (under its backend).`,
  options: { ...COMMON_OPTIONS, apps: { type: 'string' }, backend: { type: 'string' } },
  optionsHelp: `  --apps FILE          the runtime apps table (default ${DEFAULT_APPS_FILE})
  --backend B          show the runtime rows under backend B (default: the table's \`backend\`)`,
  run: async (flags, _positionals, out) => secretsWhere(flags, out),
});

const statusCommand = defineCommand({
  name: `${USAGE} status`,
  synopsis:
    '[--secrets-file F] [--context C] [--kubeconfig K] [--backend B] [--no-cluster] [--host H ...] [options]',
  description: `Where every value of the SOPS file stands, per key and per place that holds it: the bootstrap
Kubernetes Secrets (one \`kubectl get\`), and with --host the Bifrost host's .secrets.env, .env and
rendered netbird/config.yaml (one SSH connection; --host may be repeated). Each row is "in sync", "differs", "missing" (the place
exists, the name does not), "not deployed" (the Secret or host file does not exist) or "not set" (no
value in the SOPS file, none deployed). Values are compared in memory; only lengths and keyed
fingerprints are shown, never a value. The cluster is checked unless --no-cluster; the host only with
--host. The cluster's Secrets are those of its runtime backend (--backend, else the apps table's
\`backend:\`), as create-bootstrap-secrets creates them; keys only other backends use are not compared.`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    ...SSH_OPTIONS,
    'from-env': { type: 'boolean' },
    context: { type: 'string' },
    kubeconfig: { type: 'string' },
    'no-cluster': { type: 'boolean' },
    backend: { type: 'string' },
    'remote-dir': { type: 'string' },
    // Several Bifrost hosts may be checked in one run, each over its own single connection.
    host: { type: 'string', multiple: true },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --from-env           take the secrets from the environment only
  --context C          kubeconfig context to read
  --kubeconfig K       kubeconfig file
  --no-cluster         do not read the cluster
${backendOptionHelp('check')}
${SSH_OPTIONS_HELP}
  --remote-dir D       the bundle directory on the host (default ${DEFAULT_BUNDLE_HOST_DIR})`,
  footer: ENVIRONMENT.replace('Environment: ', 'Environment: KUBECTL (kubectl binary), '),
  exits: {
    ok: 'everything checked is in sync (or not set on either side)',
    failed: 'a value differs, is missing, or its place is not deployed',
    badInput: 'bad input: unreadable SOPS file, no age key, a cluster or host that cannot be reached',
  },
  run: async (flags, _positionals, out) =>
    (await import('./lib/report/status.ts')).secretsStatusFromFlags(flags, out),
});

export const command = defineGroup({
  name: USAGE,
  description: "The bootstrap SOPS file's own tooling, all derived from the schema table.",
  commands: {
    init: {
      command: initCommand,
      summary: 'generate every generatable key into a new SOPS file (or --fill the missing ones)',
    },
    check: {
      command: checkCommand,
      summary: 'a table of every key: present, length, format, who needs it; never a value',
    },
    rotate: {
      command: rotateCommand,
      summary: 'new values for generatable keys; says what must be redeployed',
    },
    recipients: {
      command: recipientsCommand,
      summary: 'list the age recipients, or add / remove one (remove re-encrypts under a new data key)',
    },
    set: {
      command: setCommand,
      summary: 'one value from stdin (or a prompt) into the SOPS file; only its ENC[...] changes',
    },
    edit: {
      command: editCommand,
      summary: 'the decrypted file in $EDITOR (plaintext in memory only), validated',
    },
    where: { command: whereCommand, summary: 'which secret lives where, set when, rotatable or not' },
    status: {
      command: statusCommand,
      summary: 'where every value stands: in sync / differs / missing, never a value',
    },
  },
  footer: ENVIRONMENT,
});

export const main = command.main;

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain(command);
}
