/**
 * secrets: the bootstrap SOPS file's own tooling, all derived from the schema table.
 *   init   generate every generatable key and write the SOPS file encrypted to an age recipient
 *   check  a table of every key: present, length, format, consumers; never a value
 *   set    one value (from stdin or a prompt) into the SOPS file, only that key's ENC[...] changing
 *   where  the design page's "What Lives Where" table
 *   status where every value stands: in sync / differs / missing in the cluster's Secrets and on the host
 */
import { existsSync, readFileSync } from 'node:fs';
import { DEFAULT_BUNDLE_HOST_DIR } from './lib/bifrost/docker.ts';
import { COMMON_OPTIONS, defineCommand, defineGroup, runMain } from './lib/cli.ts';
import { EXIT, InputError } from './lib/errors.ts';
import { LocalExecutor } from './lib/exec/local.ts';
import { SSH_OPTIONS, SSH_OPTIONS_HELP } from './lib/exec/ssh-cli.ts';
import { formatTable } from './lib/format.ts';
import { kubectlBinary } from './lib/kube/kubectl.ts';
import type { Output } from './lib/output.ts';
import { generateValue } from './lib/secrets/generate.ts';
import { registerSecrets } from './lib/secrets/registry.ts';
import {
  CONSUMERS,
  describeGenerator,
  SECRET_SCHEMA,
  type SecretSpec,
  type SecretUse,
  specOf,
} from './lib/secrets/schema.ts';
import { DEFAULT_SECRETS_FILE, loadSecrets } from './lib/secrets/source.ts';
import { findProblems } from './lib/secrets/validate.ts';

const USAGE = 'node --import tsx scripts/secrets.ts';
const SPECS = SECRET_SCHEMA as readonly SecretSpec[];
const usesOf = (spec: SecretSpec) => spec.uses as readonly SecretUse[];

const FILE_OPTION = { 'secrets-file': { type: 'string' } } as const;
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
  run: (flags, _positionals, out) =>
    init(out, flags['secrets-file'] ?? DEFAULT_SECRETS_FILE, flags.recipient, Boolean(flags.fill)),
});

const checkCommand = defineCommand({
  name: `${USAGE} check`,
  synopsis: '[--secrets-file F] [--from-env] [--strict] [options]',
  description: `A table of every key: present, length, format, who needs it; never a value. A hand-made token
(Hetzner, Cloudflare, NetBird…) not in its vendor's documented format is a warning (a vendor may change
it); --strict refuses it. Without an age key it checks key names only.`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    'from-env': { type: 'boolean' },
    strict: { type: 'boolean' },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --from-env           take the secrets from the environment only
  --strict             refuse a hand-made token whose format is not its vendor's`,
  footer: ENVIRONMENT,
  exits: { badInput: 'a required key is missing or malformed, or bad input' },
  run: (flags, _positionals, out) =>
    check(
      out,
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      Boolean(flags['from-env']),
      Boolean(flags.strict),
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
    'allow-rotate': { type: 'string' },
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
  run: async (flags, positionals, out) => {
    const { readSecretValue, setSecret } = await import('./lib/secrets/set.ts');
    const key = positionals[0] as string;
    const result = await setSecret({
      file: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      key,
      value: await readSecretValue(key),
      allowUnknown: Boolean(flags['allow-unknown']),
      allowRotate: flags['allow-rotate'] ? [flags['allow-rotate']] : [],
      strict: Boolean(flags.strict),
    });
    for (const warning of result.warnings) out.warn(warning);
    const shown = `${result.key} (${result.length} chars${result.fingerprint ? `, ${result.fingerprint}` : ''})`;
    out.info(
      result.action === 'unchanged'
        ? `unchanged  ${shown}: the file already holds this value; nothing written`
        : out.color.green(`${result.action.padEnd(10)} ${shown} in ${result.file}`),
    );
    out.result({ ok: true, ...result });
    return EXIT.ok;
  },
});

const whereCommand = defineCommand({
  name: `${USAGE} where`,
  synopsis: '[options]',
  description:
    'Which secret lives where, set when, and whether it may be rotated (generated from the schema).',
  options: COMMON_OPTIONS,
  run: async (_flags, _positionals, out) => where(out),
});

const statusCommand = defineCommand({
  name: `${USAGE} status`,
  synopsis: '[--secrets-file F] [--context C] [--kubeconfig K] [--no-cluster] [--host H ...] [options]',
  description: `Where every value of the SOPS file stands, per key and per place that holds it: the bootstrap
Kubernetes Secrets (one \`kubectl get\`), and with --host the Bifrost host's .secrets.env, .env and
rendered netbird/config.yaml (one SSH connection). Each row is "in sync", "differs", "missing" (the place
exists, the name does not), "not deployed" (the Secret or host file does not exist) or "not set" (no
value in the SOPS file, none deployed). Values are compared in memory; only lengths and keyed
fingerprints are shown, never a value. The cluster is checked unless --no-cluster; the host only with
--host.`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    ...SSH_OPTIONS,
    'from-env': { type: 'boolean' },
    context: { type: 'string' },
    kubeconfig: { type: 'string' },
    'no-cluster': { type: 'boolean' },
    'remote-dir': { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --from-env           take the secrets from the environment only
  --context C          kubeconfig context to read
  --kubeconfig K       kubeconfig file
  --no-cluster         do not read the cluster
${SSH_OPTIONS_HELP}
  --remote-dir D       the bundle directory on the host (default ${DEFAULT_BUNDLE_HOST_DIR})`,
  footer: ENVIRONMENT.replace('Environment: ', 'Environment: KUBECTL (kubectl binary), '),
  exits: {
    ok: 'everything checked is in sync (or not set on either side)',
    failed: 'a value differs, is missing, or its place is not deployed',
    badInput: 'bad input: unreadable SOPS file, no age key, a cluster or host that cannot be reached',
  },
  run: async (flags, _positionals, out) => {
    const { secretsStatus } = await import('./lib/secrets/status.ts');
    return secretsStatus(
      {
        secretsFile: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
        fromEnv: Boolean(flags['from-env']),
        ...(flags['no-cluster']
          ? {}
          : { cluster: { kubectl: kubectlBinary(), context: flags.context, kubeconfig: flags.kubeconfig } }),
        ...(flags.host ? { host: { ...flags, host: flags.host } } : {}),
        remoteDir: flags['remote-dir'] ?? DEFAULT_BUNDLE_HOST_DIR,
      },
      out,
    );
  },
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
    set: {
      command: setCommand,
      summary: 'one value from stdin (or a prompt) into the SOPS file; only its ENC[...] changes',
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

async function init(
  out: Output,
  file: string,
  recipient: string | undefined,
  fill: boolean,
): Promise<number> {
  const { encryptSops } = await import('./lib/secrets/sops/encrypt.ts');
  const exists = existsSync(file);
  if (exists && !fill) {
    throw new InputError(
      `${file} exists already`,
      'use --fill to add only the missing keys, or choose another --file',
    );
  }
  let current: Record<string, unknown> = {};
  let recipients: string[] = recipient ? [recipient] : [];
  if (exists) {
    const { decryptSopsFile } = await import('./lib/secrets/sops/decrypt.ts');
    current = ((await decryptSopsFile(file)).documents[0] ?? {}) as Record<string, unknown>;
    registerSecrets(
      Object.fromEntries(
        Object.entries(current).filter((e): e is [string, string] => typeof e[1] === 'string'),
      ),
    );
    // Keep encrypting to everyone the file is already encrypted to.
    recipients = [...new Set([...recipientsOf(file), ...recipients])];
  }
  if (recipients.length === 0)
    throw new InputError('--recipient is required', 'give your age public key (age1…)');
  if (!recipients.every((r) => /^age1[0-9a-z]+$/.test(r))) {
    throw new InputError(
      'a recipient is not an age public key (age1…)',
      'age-keygen -y keys.txt prints yours',
    );
  }
  const added: string[] = [];
  const next: Record<string, unknown> = { ...current };
  for (const spec of SPECS) {
    if (next[spec.key] !== undefined && next[spec.key] !== '') continue;
    const value = generateValue(spec.generate);
    if (value === undefined) continue;
    registerSecrets({ [spec.key]: value });
    next[spec.key] = value;
    added.push(spec.key);
  }
  const text = await encryptSops(next, { recipients, format: 'yaml' });
  // Encrypted, yet only its owner needs to read it (sops-flow warns about a group/world-readable file).
  await new LocalExecutor().files.writeFileAtomic(file, text, 0o600);
  const rules = /^(\.\/)?secrets\//.test(file) ? await writeSopsRules(recipients) : false;
  for (const key of added)
    out.info(
      `generated  ${key} (${describeGenerator(specOf(key)?.generate ?? { kind: 'manual', howTo: '' })})`,
    );
  const kept = Object.keys(current).length;
  if (kept) out.info(`kept       ${kept} existing key(s) untouched`);
  const manual = SPECS.filter((s) => s.generate.kind === 'manual' && !next[s.key]);
  if (manual.length) {
    out.info(
      `\nset these by hand, each with \`node --import tsx scripts/secrets.ts set KEY --secrets-file ${file}\` (it asks for the value, or reads it from stdin; just secrets-set KEY):`,
    );
    for (const s of manual)
      out.info(`  ${s.key.padEnd(26)} ${describeGenerator(s.generate).replace(/^set by hand: /, '')}`);
  }
  out.info(
    out.color.green(
      `\nwrote ${file} (encrypted to ${recipients.length} recipient(s))${rules ? '; wrote .sops.yaml' : ''}`,
    ),
  );
  out.result({
    ok: true,
    file,
    added,
    kept: Object.keys(current),
    manual: manual.map((s) => s.key),
    recipients,
  });
  return EXIT.ok;
}

/** The age recipients in a SOPS file's metadata (YAML), so --fill keeps encrypting to all of them. */
function recipientsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/recipient:\s*(age1[0-9a-z]+)/g)].map((m) => m[1] as string);
}

/** `.sops.yaml` creation rules for secrets/, written (for a file under secrets/) only when there are none. */
async function writeSopsRules(recipients: readonly string[]): Promise<boolean> {
  if (existsSync('.sops.yaml')) return false;
  const text = `# sops creation rules: files under secrets/ are encrypted to these age recipients.\ncreation_rules:\n  - path_regex: ^secrets/.*\\.sops\\.(yaml|json|env)$\n    age: >-\n      ${recipients.join(',\n      ')}\n`;
  await new LocalExecutor().files.writeFileAtomic('.sops.yaml', text, 0o644);
  return true;
}

async function check(out: Output, file: string, fromEnv: boolean, strict: boolean): Promise<number> {
  const loaded = await loadSecrets({
    secretsFile: file,
    fromEnv,
    required: [],
    allowKeyless: true,
    executor: new LocalExecutor(),
  });
  registerSecrets(loaded.values);
  for (const warning of loaded.warnings) out.warn(warning);
  const keyless = loaded.kind === 'key-names-only';
  const consumers = Object.keys(CONSUMERS) as (keyof typeof CONSUMERS)[];
  const values = keyless ? Object.fromEntries(loaded.present.map((k) => [k, 'x'])) : loaded.values;
  const problems = findProblems(values, consumers, { presenceOnly: keyless, strict });
  out.info(`source  ${loaded.describe}\n`);
  const rows = SPECS.map((spec) => {
    const value = loaded.values[spec.key];
    const present = keyless ? loaded.present.includes(spec.key) : Boolean(value);
    const problem = problems.find((p) => p.key === spec.key);
    const required = usesOf(spec).some((u) => u.required);
    return {
      key: spec.key,
      present,
      length: !keyless && value ? [...value].length : undefined,
      status: problem
        ? problem.severity === 'warning'
          ? 'unexpected format'
          : problem.kind
        : present
          ? keyless
            ? 'present'
            : 'ok'
          : required
            ? 'missing'
            : 'optional',
      detail: problem?.detail,
      neededBy: [
        ...new Set(
          usesOf(spec)
            .filter((u) => u.required)
            .map((u) => CONSUMERS[u.consumer].title),
        ),
      ],
    };
  });
  const lines = rows.map((r) => [
    r.key,
    r.status,
    r.length === undefined ? '' : String(r.length),
    r.neededBy.join('; ') || '(optional)',
  ]);
  out.info(formatTable(['key', 'status', 'length', 'needed by'], lines, { rule: false }));
  for (const r of rows.filter((x) => x.detail)) out.info(out.color.red(`\n${r.key}: ${r.detail}`));
  const bad = rows.filter((r) => r.status === 'missing' || r.status === 'malformed');
  out.result({ ok: bad.length === 0, source: { kind: loaded.kind, file: loaded.file }, keys: rows });
  if (bad.length > 0) {
    // A missing key the suite can generate needs no editor: `init --fill` adds exactly those.
    const generatable = bad.filter(
      (r) => r.status === 'missing' && specOf(r.key)?.generate.kind !== 'manual',
    );
    const fill = generatable.length
      ? `add ${generatable.map((r) => r.key).join(', ')} with \`node --import tsx scripts/secrets.ts init --fill --secrets-file ${file}\` (generates only the missing keys); `
      : '';
    out.error(
      `${bad.length} key(s) missing or malformed`,
      `${fill}set the others with \`node --import tsx scripts/secrets.ts set KEY --secrets-file ${file}\` (the value from stdin or a prompt; just secrets-set KEY) or \`sops ${file}\` (just secrets-edit)`,
    );
    return EXIT.badInput;
  }
  out.info(
    out.color.green(
      `\nall required keys present${keyless ? ' (names only: no age key to check values)' : ' and well-formed'}`,
    ),
  );
  return EXIT.ok;
}

function where(out: Output): number {
  const rows = SPECS.map((spec) => {
    const places = usesOf(spec).map((u) => {
      const c = CONSUMERS[u.consumer];
      return c.kind === 'env-file'
        ? `${c.path}${u.as !== spec.key ? ` as ${u.as}` : ''}`
        : c.kind === 'k8s-secret'
          ? `k8s Secret ${u.consumer}`
          : c.kind === 'suite'
            ? 'secrets-flow (local only)'
            : 'operator';
    });
    const rotation =
      spec.rotation.kind === 'free'
        ? 'Yes'
        : spec.rotation.kind === 'disruptive'
          ? `Yes (${spec.rotation.effect})`
          : `**No** (${spec.rotation.reason})`;
    return [`\`${spec.key}\``, `SOPS → ${[...new Set(places)].join(' + ')}`, spec.setDuring, rotation];
  });
  rows.push([
    '`NB_IDP_MGMT_TOKEN`',
    'written to `.secrets.env` on the VPS by the bootstrap engine',
    'Auto',
    'Yes',
  ]);
  const lines = [
    '| Secret | Lives in | Set during | Rotatable? |',
    '|--------|---------|-----------|-----------|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
  out.data(lines.join('\n'));
  out.result({ ok: true, rows });
  return EXIT.ok;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain((out) => main(process.argv.slice(2), out));
}
