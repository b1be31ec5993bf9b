/**
 * render-infisical-secrets: the design page's InfisicalSecret CRs (secrets.infisical.com/v1alpha1), one
 * per app of the apps table. Kept for the recipes and habits built on it: it is render-runtime-secrets
 * with the backend fixed to infisical-v1alpha1.
 */
import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';
import { renderCommand } from './lib/runtime/render-command.ts';
import { DEFAULT_APPS_FILE, LEGACY_APPS_FILE } from './lib/secrets/backend-id.ts';

const USAGE = 'node --import tsx scripts/render-infisical-secrets.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  apps: { type: 'string' },
  out: { type: 'string' },
  check: { type: 'string' },
} as const;

export const command = defineCommand({
  name: USAGE,
  synopsis: '[options]',
  description: `Renders one InfisicalSecret (secrets.infisical.com/v1alpha1) per app of the runtime apps table:
each syncs the Infisical folder \`path\` into the Secret \`secret\` in \`namespace\`, carries
argocd.argoproj.io/sync-options: ServerSideApply=false and uses only fields the CRD defines.
Output is deterministic: rendering twice gives the same bytes.
Without --out or --check the CRs are printed on stdout as one multi-document YAML stream.
The same as render-runtime-secrets.ts --backend infisical-v1alpha1; that command renders the other
backends (Infisical's current v1beta1 API, OpenBao).`,
  options: OPTIONS,
  optionsHelp: `  --apps FILE          the apps table (default ${DEFAULT_APPS_FILE}; ${LEGACY_APPS_FILE}, its old home,
                       is read when only it exists)
  --out DIR            write one <namespace>-<name>.yaml per app into DIR (created when missing; each
                       file written atomically, and only when its content changed) instead of printing
  --check DIR          check the manifests under DIR (every *.yaml, *.yml, *.json, all documents; dot-
                       directories and node_modules skipped): fails when any document is a Secret or an
                       InfisicalSecret lacks the ServerSideApply=false annotation. With --out, runs after
                       writing; without it, nothing is rendered.`,
  exits: {
    failed: 'failed while writing',
    badInput:
      'bad input (a table problem, each listed with its app and field; or --check found offending files, each listed)',
  },
  run: (flags, _positionals, out) =>
    renderCommand(flags, out, {
      script: 'infisical-secrets.ts',
      fixedBackend: 'infisical-v1alpha1',
      stdoutIsTTY: process.stdout.isTTY === true,
    }),
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
