/**
 * create-bootstrap-secrets: the bootstrap tier's Kubernetes Secrets (design page "Bootstrap Secrets"),
 * from secrets/bootstrap.sops.yaml, in one server-side `kubectl apply` with the manifests on stdin.
 */

import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';
import { backendOptionHelp, describeBackendSecrets } from './lib/kube/backend-choice.ts';
import { createBootstrapSecrets } from './lib/kube/bootstrap-command.ts';
import { DEFAULT_SECRETS_FILE } from './lib/secrets/source.ts';

const USAGE = 'node --import tsx scripts/create-bootstrap-secrets.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  'secrets-file': { type: 'string' },
  'from-env': { type: 'boolean' },
  'dry-run': { type: 'string' },
  diff: { type: 'boolean' },
  context: { type: 'string' },
  kubeconfig: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  strict: { type: 'boolean' },
  backend: { type: 'string' },
} as const;

export const command = defineCommand({
  name: USAGE,
  synopsis: '[options]',
  description: `Creates the bootstrap-tier Kubernetes Secrets of the cluster's runtime backend (--backend, else
the apps table's \`backend:\`) from the SOPS file, in one \`kubectl apply --server-side\` with the
manifests on stdin. Each backend's Secrets:
${describeBackendSecrets()}
Namespaces are created when missing. Before applying, one \`kubectl get\` reads the live Secrets it
plans, and each of their keys is reported as added, changed, unchanged, removed (this tool set it and it
is no longer planned: server-side apply deletes it) or kept (another field manager set it: it stays);
never a value. Switching the backend leaves the old backend's Secrets in place (nothing here deletes a
Secret or reads one it does not plan): delete them by hand (kubectl delete secret -n NS NAME).
Re-running with the same input changes nothing and says so.

Secrets come from, in this order: the environment when it already holds the keys (sops exec-env),
the sops binary when on PATH (SOPS overrides), else the built-in SOPS decryptor (age keys found as
sops finds them: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, ~/.config/sops/age/keys.txt).`,
  options: OPTIONS,
  aliases: { file: 'secrets-file' },
  bareValues: { 'dry-run': 'client' },
  optionsHelp: `  --secrets-file F     SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same
  --from-env           take the secrets from the environment only
  --dry-run            apply nothing and contact no cluster (no kubectl needed): print the Secrets and
                       manifests with fingerprints instead of values; works without any age key (then it
                       checks key names only). --dry-run=client is the same
  --dry-run=server     apply nothing: read the live Secrets, print what would change per key, and let the
                       API server check the apply (\`kubectl apply --server-side --dry-run=server\`)
  --diff               apply nothing: read the live Secrets (one \`kubectl get\`) and print per key
                       added / changed / unchanged / removed / kept, by fingerprint; exit 0
  --context C          kubeconfig context to write to (printed before anything is written)
  --kubeconfig K       kubeconfig file
${backendOptionHelp('create')}
  --strict             refuse a hand-made token (Cloudflare, Infisical) whose format is not the vendor's
                       documented one; without it that is a warning and the value is used
  -y, --yes            no prompts (this command asks none; accepted for scripts)`,
  footer: `Environment: KUBECTL (kubectl binary), SOPS (sops binary), SECRETS_FLOW_SOPS_TIMEOUT (seconds, default 30,
for sops and SOPS_AGE_KEY_CMD), NO_COLOR.`,
  exits: {
    failed: 'kubectl failed',
    badInput:
      'bad input (missing file or key, wrong age key, tampered file, a cluster that cannot be reached)',
  },
  run: (flags, _positionals, out) => createBootstrapSecrets(flags, out),
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
