/**
 * render-runtime-secrets: the runtime tier's resources, one backend at a time, from the one apps table
 * (cloud/runtime/apps.yaml); OpenBao's one-time setup plan; a check that rendered output holds no
 * Secret resources. Reads and writes files only; applying is Argo CD's job, setup is `runtime.ts setup`.
 */
import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';
import { renderCommand } from './lib/runtime/render-command.ts';
import { BACKEND_IDS, BACKENDS, DEFAULT_APPS_FILE, LEGACY_APPS_FILE } from './lib/secrets/backend-id.ts';

const USAGE = 'node --import tsx scripts/render-runtime-secrets.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  apps: { type: 'string' },
  backend: { type: 'string' },
  out: { type: 'string' },
  check: { type: 'string' },
  'setup-plan': { type: 'boolean' },
} as const;

export const command = defineCommand({
  name: USAGE,
  synopsis: '[options]',
  description: `Renders the runtime tier's resources for one backend from the apps table, each app's managed
Secret and keys as the table says, with only fields the backend's CRDs define:
${BACKEND_IDS.map((id) => `  ${id.padEnd(20)}${BACKENDS[id].title}`).join('\n')}
A row the backend cannot express is refused with the reason. No Secret manifest is ever rendered.
Output is deterministic: rendering twice gives the same bytes.
Without --out or --check the resources are printed on stdout as one multi-document YAML stream.`,
  options: OPTIONS,
  optionsHelp: `  --apps FILE          the apps table (default ${DEFAULT_APPS_FILE}; ${LEGACY_APPS_FILE}, its old home,
                       is read when only it exists)
  --backend B          ${BACKEND_IDS.join(' | ')} (default: the table's \`backend\`)
  --out DIR            write one file per app (and one for shared resources) into DIR (created when
                       missing; each file written atomically, and only when its content changed)
  --check DIR          check the manifests under DIR (every *.yaml, *.yml, *.json, all documents; dot-
                       directories and node_modules skipped): fails when any document is a Secret or an
                       InfisicalSecret lacks the ServerSideApply=false annotation. With --out, runs after
                       writing; without it, nothing is rendered.
  --setup-plan         openbao: print, as JSON, the steps [{"argv": [...], "stdin": string|null}] that
                       configure OpenBao once (Kubernetes auth, KV v2 mount, a read policy and a role per
                       app, create-only initial values on stdin). The values are fresh secrets: redirect
                       stdout to a private file; refused on a terminal. \`runtime.ts setup\` runs the plan.`,
  exits: {
    failed: 'failed while writing',
    badInput:
      'bad input (a table problem or a row the backend cannot express, each listed with its app and field; or --check found offending files, each listed)',
  },
  run: (flags, _positionals, out) =>
    renderCommand({ ...flags, setupPlan: flags['setup-plan'] }, out, {
      script: 'runtime-secrets.ts',
      stdoutIsTTY: process.stdout.isTTY === true,
    }),
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
