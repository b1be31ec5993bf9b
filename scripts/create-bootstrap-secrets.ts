/**
 * create-bootstrap-secrets: the bootstrap tier's Kubernetes Secrets (design page "Bootstrap Secrets"),
 * from secrets/bootstrap.sops.yaml, in one server-side `kubectl apply` with the manifests on stdin.
 */

import { COMMON_OPTIONS, defineCommand, type Flags, runMain } from './lib/cli.ts';
import { EXIT, InputError, WorkError } from './lib/errors.ts';
import { formatCommand } from './lib/exec/executor.ts';
import { LocalExecutor } from './lib/exec/local.ts';
import { kubectlApply, kubectlBinary } from './lib/kube/kubectl.ts';
import {
  bootstrapManifests,
  planBootstrapSecrets,
  type SecretEntry,
  toYamlStream,
} from './lib/kube/manifests.ts';
import { describeKubeTarget, resolveKubeTarget } from './lib/kube/target.ts';
import type { Output } from './lib/output.ts';
import { describeSecret, fingerprint, hasFingerprintKey } from './lib/redact.ts';
import { FINGERPRINT_KEY, registerSecrets } from './lib/secrets/registry.ts';
import { type ConsumerId, keysFor } from './lib/secrets/schema.ts';
import { DEFAULT_SECRETS_FILE, type LoadedSecrets, loadSecrets } from './lib/secrets/source.ts';
import { findProblems, formatProblems, splitProblems } from './lib/secrets/validate.ts';

const USAGE = 'node --import tsx scripts/create-bootstrap-secrets.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  'secrets-file': { type: 'string' },
  'from-env': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  context: { type: 'string' },
  kubeconfig: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  strict: { type: 'boolean' },
} as const;

/** The consumers this command serves; their required keys decide validation. */
const K8S_CONSUMERS: ConsumerId[] = ['infisical-secrets', 'cloudflare-api-token', 'infisical-service-token'];

export const command = defineCommand({
  name: USAGE,
  synopsis: '[options]',
  description: `Creates the bootstrap-tier Kubernetes Secrets from the SOPS file, in one
\`kubectl apply --server-side\` with the manifests on stdin:
  infisical-secrets        (ns infisical)     DB_PASSWORD AUTH_SECRET ENCRYPTION_KEY REDIS_PASSWORD DB_CONNECTION_URI
  cloudflare-api-token     (ns cert-manager)  CLOUDFLARE_API_TOKEN
  infisical-service-token  (ns infisical)     infisicalToken, only when INFISICAL_SERVICE_TOKEN is set
Namespaces are created when missing. Re-running with the same input changes nothing.

Secrets come from, in this order: the environment when it already holds the keys (sops exec-env),
the sops binary when on PATH (SOPS overrides), else the built-in SOPS decryptor (age keys found as
sops finds them: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, ~/.config/sops/age/keys.txt).`,
  options: OPTIONS,
  aliases: { file: 'secrets-file' },
  optionsHelp: `  --secrets-file F     SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same
  --from-env           take the secrets from the environment only
  --dry-run            apply nothing: print the manifests with fingerprints instead of values and run
                       \`kubectl apply --dry-run=client\`; works without any age key (checks key names)
  --context C          kubeconfig context to write to (printed before anything is written)
  --kubeconfig K       kubeconfig file
  --strict             refuse a hand-made token (Cloudflare, Infisical) whose format is not the vendor's
                       documented one; without it that is a warning and the value is used
  -y, --yes            no prompts (this command asks none; accepted for scripts)`,
  footer: `Environment: KUBECTL (kubectl binary), SOPS (sops binary), SECRETS_FLOW_SOPS_TIMEOUT (seconds, default 30,
for sops and SOPS_AGE_KEY_CMD), NO_COLOR.`,
  exits: {
    failed: 'kubectl failed',
    badInput: 'bad input (missing file or key, wrong age key, tampered file)',
  },
  run: (flags, _positionals, out) => createSecrets(flags, out),
});

export const main = command.main;

async function createSecrets(flags: Flags<typeof OPTIONS>, out: Output): Promise<number> {
  const started = performance.now();
  const dryRun = Boolean(flags['dry-run']);
  const secretsFile = flags['secrets-file'] ?? DEFAULT_SECRETS_FILE;
  const executor = new LocalExecutor();

  const target = resolveKubeTarget({ kubeconfig: flags.kubeconfig, context: flags.context });
  out.info(
    `${out.color.bold('target')}  ${describeKubeTarget(target)}${dryRun ? out.color.cyan('  [dry run]') : ''}`,
  );

  const { required } = keysFor(K8S_CONSUMERS);
  const loaded = await loadSecrets({
    secretsFile,
    fromEnv: Boolean(flags['from-env']),
    required,
    allowKeyless: dryRun,
    executor,
  });
  // Before any command runs, every value and its encodings are known to the redactor.
  registerSecrets(loaded.values);
  if (loaded.kind !== 'key-names-only' && !hasFingerprintKey()) {
    out.warn(
      `${FINGERPRINT_KEY} is not in ${loaded.describe}: values are shown by length only; add it with \`node --import tsx scripts/secrets.ts init --fill\``,
    );
  }
  for (const warning of loaded.warnings) out.warn(warning);
  out.info(`${out.color.bold('source')}  ${loaded.describe}`);

  const { errors, warnings } = checkSecrets(loaded, Boolean(flags.strict));
  for (const w of warnings) out.warn(`${w.key}: ${w.detail}`);
  const problems = errors.length > 0 ? formatProblems(errors) : undefined;
  if (problems) {
    throw new InputError(
      `nothing applied: the bootstrap secrets from ${loaded.describe} have problems:\n${problems}`,
      loaded.kind === 'environment'
        ? 'export the missing keys, or drop --from-env to read the SOPS file'
        : `edit the file with \`sops ${loaded.file ?? secretsFile}\` (just secrets-edit), then run again`,
    );
  }

  const planned = planBootstrapSecrets(
    loaded.kind === 'key-names-only'
      ? Object.fromEntries(loaded.present.map((k) => [k, `<${k}>`]))
      : loaded.values,
  );
  for (const secret of planned) {
    out.info(`${out.color.bold('secret')}  ${secret.namespace}/${secret.name}`);
    for (const entry of secret.entries) out.info(`          ${showEntry(loaded, entry)}`);
  }

  const kubectl = { kubectl: kubectlBinary(), context: flags.context, kubeconfig: flags.kubeconfig };
  const preview = (entry: SecretEntry) => showEntry(loaded, entry);
  const manifests = dryRun
    ? bootstrapManifests(planned, { kind: 'preview', show: preview })
    : bootstrapManifests(planned, { kind: 'apply' });
  const yaml = toYamlStream(manifests);
  if (dryRun) out.data(yaml);

  const { argv: ranArgv, result } = await kubectlApply(executor, { ...kubectl, dryRun, manifestsYaml: yaml });
  out.detail(`ran: ${formatCommand(ranArgv)} (manifests on stdin)`);
  for (const line of result.stdout.split('\n').filter(Boolean)) out.info(`  ${line}`);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);

  const objects = planned.map((s) => ({
    kind: 'Secret',
    namespace: s.namespace,
    name: s.name,
    keys: s.entries.map((e) => ({
      name: e.name,
      from: e.key,
      ...(loaded.kind === 'key-names-only'
        ? {}
        : { length: [...e.value].length, fingerprint: fingerprint(e.value) }),
    })),
  }));
  const summary = {
    dryRun,
    source: { kind: loaded.kind, file: loaded.file },
    target: { context: target.context, server: target.server },
    namespaces: [...new Set(planned.map((s) => s.namespace))].sort(),
    objects,
    kubectl: { argv: ranArgv, exitCode: result.exitCode },
  };

  if (result.exitCode !== 0) {
    const err = new WorkError(
      `kubectl apply failed (exit ${result.exitCode}); ${dryRun ? 'nothing was applied' : 'see its message'}:\n${result.stderr.trim()}`,
      'check the context and that the cluster is reachable (kubectl cluster-info), then run again: applying is idempotent',
    );
    throw err;
  }
  out.info(
    out.color.green(
      `${dryRun ? 'dry run passed' : 'applied'}: ${planned.length} secret(s) in ${summary.namespaces.length} namespace(s) in ${seconds} s`,
    ),
  );
  out.result({ ok: true, ...summary });
  return EXIT.ok;
}

function checkSecrets(loaded: LoadedSecrets, strict: boolean): ReturnType<typeof splitProblems> {
  // Without values (the keyless dry run) only presence can be checked.
  const problems =
    loaded.kind === 'key-names-only'
      ? findProblems(Object.fromEntries(loaded.present.map((k) => [k, 'present'])), K8S_CONSUMERS, {
          presenceOnly: true,
        })
      : findProblems(loaded.values, K8S_CONSUMERS, { strict });
  return splitProblems(problems);
}

function showEntry(loaded: LoadedSecrets, entry: SecretEntry): string {
  if (loaded.kind === 'key-names-only') return `${entry.name} <from ${entry.key}: not decrypted>`;
  const derived = entry.name !== entry.key ? ` from ${entry.key}` : '';
  return `${describeSecret(entry.name, entry.value)}${derived}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain((out) => main(process.argv.slice(2), out));
}
