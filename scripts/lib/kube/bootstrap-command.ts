/**
 * The create-bootstrap-secrets command's work: the bootstrap tier's Kubernetes Secrets from the SOPS
 * file, in one server-side `kubectl apply` with the manifests on stdin.
 */

import { EXIT, InputError, WorkError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { describeSecret, hasFingerprintKey } from '../core/redact.ts';
import { formatCommand } from '../exec/executor.ts';
import { LocalExecutor } from '../exec/local.ts';
import { FINGERPRINT_KEY } from '../secrets/registry.ts';
import { type ConsumerId, k8sConsumersFor, keysFor } from '../secrets/schema.ts';
import { DEFAULT_SECRETS_FILE, type LoadedSecrets, loadSecrets } from '../secrets/source.ts';
import { findProblems, formatProblems, splitProblems } from '../secrets/validate.ts';
import { chooseBackend, describeBackendChoice } from './backend-choice.ts';
import { changeCounts, finalLine, MODE_TAG, printDiffs, resultObjects, runMode } from './bootstrap-report.ts';
import { kubectlApply, kubectlBinary, kubectlSaid } from './kubectl.ts';
import { liveArgv, readLiveSecretDetails } from './live-secrets.ts';
import {
  bootstrapManifests,
  planBootstrapSecrets,
  type SecretEntry,
  toYamlStream,
  type UnplannedSecret,
  unplannedSecrets,
} from './manifests.ts';
import { diffSecrets } from './secret-diff.ts';
import { describeKubeTarget, resolveKubeTarget } from './target.ts';

/** The flags create-bootstrap-secrets takes (its entry script defines them). */
export interface CreateSecretsFlags {
  'secrets-file'?: string;
  'from-env'?: boolean;
  'dry-run'?: string;
  diff?: boolean;
  context?: string;
  kubeconfig?: string;
  strict?: boolean;
  backend?: string;
}

export async function createBootstrapSecrets(flags: CreateSecretsFlags, out: Output): Promise<number> {
  const started = performance.now();
  const mode = runMode(flags['dry-run'], Boolean(flags.diff));
  const secretsFile = flags['secrets-file'] ?? DEFAULT_SECRETS_FILE;
  const executor = new LocalExecutor();

  // An unknown backend is bad input before anything is read.
  const backend = chooseBackend(flags.backend);
  const consumers = k8sConsumersFor(backend.id);
  const target = resolveKubeTarget({ kubeconfig: flags.kubeconfig, context: flags.context });
  const tag = MODE_TAG[mode];
  out.info(
    `${out.color.bold('target')}  ${describeKubeTarget(target)}${tag ? out.color.cyan(`  ${tag}`) : ''}`,
  );
  out.info(`${out.color.bold('backend')} ${describeBackendChoice(backend)}`);

  const { required } = keysFor(consumers);
  const loaded = await loadSecrets({
    secretsFile,
    fromEnv: Boolean(flags['from-env']),
    required,
    allowKeyless: mode === 'offline',
    executor,
  });
  if (loaded.kind !== 'key-names-only' && !hasFingerprintKey()) {
    out.warn(
      `${FINGERPRINT_KEY} is not in ${loaded.describe}: values are shown by length only; add it with \`node --import tsx scripts/secrets.ts init --fill\``,
    );
  }
  for (const warning of loaded.warnings) out.warn(warning);
  out.info(`${out.color.bold('source')}  ${loaded.describe}`);

  const { errors, warnings } = checkSecrets(loaded, consumers, Boolean(flags.strict));
  for (const w of warnings) out.warn(`${w.key}: ${w.detail}`);
  const problems = errors.length > 0 ? formatProblems(errors) : undefined;
  if (problems) {
    throw new InputError(
      `nothing applied: the bootstrap secrets from ${loaded.describe} have problems:\n${problems}`,
      loaded.kind === 'environment'
        ? 'export the missing keys, or drop --from-env to read the SOPS file'
        : `set them with \`node --import tsx scripts/secrets.ts set KEY --secrets-file ${loaded.file ?? secretsFile}\` or edit the file (secrets.ts edit; just secrets-edit), then run again`,
    );
  }

  const keyless = loaded.kind === 'key-names-only';
  const values = keyless ? Object.fromEntries(loaded.present.map((k) => [k, `<${k}>`])) : loaded.values;
  const planned = planBootstrapSecrets(values, backend.id);
  const unplanned = unplannedSecrets(values, backend.id);
  for (const u of unplanned) out.info(notCreated(u, loaded.file ?? secretsFile));
  const namespaces = [...new Set(planned.map((s) => s.namespace))].sort();
  const summary = {
    mode,
    backend: { id: backend.id, from: backend.from },
    notCreated: unplanned,
    dryRun: mode === 'offline' ? 'client' : mode === 'server' ? 'server' : false,
    source: { kind: loaded.kind, file: loaded.file },
    target: { context: target.context, server: target.server },
    namespaces,
  };

  if (mode === 'offline') {
    for (const secret of planned) {
      out.info(`${out.color.bold('secret')}  ${secret.namespace}/${secret.name}`);
      for (const entry of secret.entries) out.info(`          ${showEntry(loaded, entry)}`);
    }
    const preview = (entry: SecretEntry) => showEntry(loaded, entry);
    out.data(toYamlStream(bootstrapManifests(planned, { kind: 'preview', show: preview })));
    out.info(
      out.color.green(
        `dry run: ${planned.length} secret(s) in ${namespaces.length} namespace(s) would be applied; nothing applied, no cluster contacted (--diff or --dry-run=server compare with the cluster)`,
      ),
    );
    out.result({ ok: true, ...summary, objects: resultObjects(planned, { keyless }) });
    return EXIT.ok;
  }

  const kubectl = { kubectl: kubectlBinary(), context: flags.context, kubeconfig: flags.kubeconfig };
  const live = await readLiveSecretDetails(executor, kubectl, planned);
  out.detail(`ran: ${formatCommand(liveArgv(kubectl))} (Secret names on stdin)`);
  const diffs = diffSecrets(planned, live);
  printDiffs(out, diffs);
  const result = {
    ok: true,
    ...summary,
    objects: resultObjects(planned, { keyless, diffs }),
    changes: changeCounts(diffs),
  };
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);

  if (mode === 'diff') {
    out.info(finalLine(mode, diffs, namespaces.length, seconds()));
    out.result(result);
    return EXIT.ok;
  }

  const yaml = toYamlStream(bootstrapManifests(planned, { kind: 'apply' }));
  const { argv: ranArgv, result: applied } = await kubectlApply(executor, {
    ...kubectl,
    serverDryRun: mode === 'server',
    manifestsYaml: yaml,
  });
  out.detail(`ran: ${formatCommand(ranArgv)} (manifests on stdin)`);
  for (const line of applied.stdout.split('\n').filter(Boolean)) out.detail(`  ${line}`);
  const missingNamespaces = [...applied.stderr.matchAll(/namespaces "([^"]+)" not found/g)].map((m) => m[1]);
  if (applied.exitCode !== 0 && mode === 'server' && missingNamespaces.length > 0) {
    throw new WorkError(
      `the API server cannot check Secrets in namespaces that do not exist yet (${[...new Set(missingNamespaces)].join(', ')}): a server dry run creates nothing, not even a namespace; nothing was applied`,
      'see the plan with --diff (or --dry-run, offline); the first real apply creates the namespaces',
    );
  }
  if (applied.exitCode !== 0) {
    throw new WorkError(
      `kubectl apply failed (exit ${applied.exitCode}); ${mode === 'server' ? 'nothing was applied' : 'see its message'}:\n${kubectlSaid(applied.stderr)}`,
      'check the context and that the cluster is reachable (kubectl cluster-info), then run again: applying is idempotent',
    );
  }
  out.info(out.color.green(finalLine(mode, diffs, namespaces.length, seconds())));
  out.result({ ...result, kubectl: { argv: ranArgv, exitCode: applied.exitCode } });
  return EXIT.ok;
}

/** The backend's consumers decide validation: keys only other backends' Secrets read are not needed. */
function checkSecrets(
  loaded: LoadedSecrets,
  consumers: readonly ConsumerId[],
  strict: boolean,
): ReturnType<typeof splitProblems> {
  // Without values (the keyless dry run) only presence can be checked.
  const problems =
    loaded.kind === 'key-names-only'
      ? findProblems(Object.fromEntries(loaded.present.map((k) => [k, 'present'])), consumers, {
          presenceOnly: true,
        })
      : findProblems(loaded.values, consumers, { strict });
  return splitProblems(problems);
}

/** Says that a backend's optional Secret is not created yet, and how to set the key that creates it. */
function notCreated(u: UnplannedSecret, secretsFile: string): string {
  const keys = u.keys.join(' or ');
  const set = u.keys
    .map((k) => `\`node --import tsx scripts/secrets.ts set ${k} --secrets-file ${secretsFile}\``)
    .join(' / ');
  return `note    ${u.namespace}/${u.name} is not created: ${keys} is not set; set it with ${set}, then run again`;
}

function showEntry(loaded: LoadedSecrets, entry: SecretEntry): string {
  if (loaded.kind === 'key-names-only') return `${entry.name} <from ${entry.key}: not decrypted>`;
  const derived = entry.name !== entry.key ? ` from ${entry.key}` : '';
  return `${describeSecret(entry.name, entry.value)}${derived}`;
}
