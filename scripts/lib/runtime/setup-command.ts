/**
 * `runtime setup`: the one-time OpenBao setup, defined here so that scripts/runtime.ts only dispatches.
 */
import { COMMON_OPTIONS, defineCommand, numberFlag } from '../core/cli.ts';
import { DEFAULT_SECRETS_FILE } from '../secrets/source.ts';
import { DEFAULT_APPS_FILE } from './apps.ts';
import { DEFAULT_STEP_TIMEOUT_S, openBaoSetup } from './openbao-setup.ts';

export const USAGE = 'node --import tsx scripts/runtime.ts';

export const setupCommand = defineCommand({
  name: `${USAGE} setup`,
  synopsis: '[--apps FILE] [--context C] [--kubeconfig K] [--dry-run] [--timeout S] [options]',
  description: `Configures OpenBao for the apps table, in the OpenBao server pod (the table's openbao block:
namespace, pod; container "openbao"), one \`kubectl exec -i\` per step:
  1. bao auth enable -path=kubernetes kubernetes          ("already enabled" on a re-run)
  2. bao write auth/kubernetes/config kubernetes_host=…
  3. bao secrets enable -path=secret kv-v2                ("already enabled" on a re-run)
  4. per app: bao policy write <app>-read -               (read on secret/data/<path>; HCL on stdin)
  5. per app: bao write auth/kubernetes/role/<app> bound_service_account_names=… token_policies=… token_ttl=…
  6. per app: bao kv put -mount=secret -cas=0 <path> -    (generated values as JSON on stdin; create-only:
                                                          an existing secret is "already set, kept")
The token (BAO_TOKEN, else VAULT_TOKEN, else ~/.vault-token from \`bao login\`) is sent as the first line of
each step's stdin and read by the pod's shell into bao's environment: it is never in argv, in kubectl's
environment, in a file or in the output; nor is any value. Written values are shown as keyed fingerprints
(FINGERPRINT_KEY from the SOPS file; without its age key, names and lengths only). Keys made by hand
(generate: manual) are listed at the end with the command that sets each, value on stdin.
A failing step stops the run and is named; re-running is always safe. The setup always uses the table's
openbao settings; when the table names another backend it says so.`,
  options: {
    ...COMMON_OPTIONS,
    apps: { type: 'string' },
    context: { type: 'string' },
    kubeconfig: { type: 'string' },
    'secrets-file': { type: 'string' },
    'dry-run': { type: 'boolean' },
    timeout: { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `  --apps FILE          the apps table (default ${DEFAULT_APPS_FILE})
  --context C          kubeconfig context of the cluster OpenBao runs in
  --kubeconfig K       kubeconfig file
  --secrets-file F     the SOPS file holding FINGERPRINT_KEY (default ${DEFAULT_SECRETS_FILE})
  --dry-run            print each step's kubectl command (never its stdin); run nothing, need no token
  --timeout S          seconds each step may take (default ${DEFAULT_STEP_TIMEOUT_S})`,
  footer: `Environment: BAO_TOKEN, VAULT_TOKEN (the token; or ~/.vault-token), KUBECTL (kubectl binary), SOPS,
SOPS_AGE_KEY_FILE (for FINGERPRINT_KEY).
justfile: just runtime-setup [ARGS]`,
  exits: {
    ok: 'every step done or already done (or the dry run printed)',
    failed: 'a step failed or timed out (named; the steps after it were not run; re-running is safe)',
    badInput:
      'bad input: no token, kubectl missing, unknown context, the pod or container not found, a table problem',
  },
  run: (flags, _positionals, out) =>
    openBaoSetup(
      {
        appsFile: flags.apps,
        context: flags.context,
        kubeconfig: flags.kubeconfig,
        secretsFile: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
        dryRun: Boolean(flags['dry-run']),
        timeoutMs: numberFlag('timeout', flags.timeout, 'positive', DEFAULT_STEP_TIMEOUT_S) * 1000,
      },
      out,
    ),
});
