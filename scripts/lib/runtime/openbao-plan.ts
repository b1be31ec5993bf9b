/**
 * The one-time cluster-side setup of the openbao backend, as data: the `bao` commands, in order, each
 * with what it reads on stdin. Facts that bite are from shared/reference/openbao-runtime.md §3–§5:
 *   - flags precede the path (`bao kv put -mount=secret -cas=0 grafana -`): Go's flag parsing stops at
 *     the first positional argument, and a later `-cas=0` would be stored as a key named `-cas`;
 *   - values never go in argv (ps, shell history, the API server's audit log of `kubectl exec`): a
 *     whole-argument `-` reads one JSON object from stdin (`@-` would open a file named "-");
 *   - initial values are written create-only (`-cas=0`): an existing secret, whether this plan wrote it
 *     or an operator set a real value since, is never overwritten (the original reset them to CHANGEME);
 *   - roles use the current `token_*` field names, not the deprecated `policies=`/`ttl=`.
 * Enabling a method or an engine twice fails with "path is already in use": a runner reads that as done
 * (ALREADY_DONE). Config, policy and role writes overwrite with the same input, so re-runs change nothing.
 */
import type { AppsTable, RuntimeApp } from './apps.ts';
import { kvPath } from './backends/openbao.ts';

export type StepKind = 'enable-auth' | 'auth-config' | 'enable-kv' | 'policy' | 'role' | 'initial-values';

export interface SetupStep {
  kind: StepKind;
  /** The app a per-app step is for. */
  app?: string;
  argv: string[];
  /** What the command reads on stdin; null when it reads nothing. */
  stdin: string | null;
  /** For initial-values: the keys written (never their values), for reports. */
  keys?: string[];
}

/** What `bao` says when a step had been done before; the runner reports "already" instead of failing. */
export const ALREADY_DONE: Partial<Record<StepKind, RegExp>> = {
  'enable-auth': /path is already in use/,
  'enable-kv': /path is already in use/,
  // KV v2's answer to -cas=0 on an existing secret (openbao path_data.go validateCheckAndSetOption).
  'initial-values': /check-and-set parameter did not match the current version/,
};

export function policyName(app: RuntimeApp): string {
  return `${app.id}-read`;
}

export function policyHcl(app: RuntimeApp, table: AppsTable): string {
  return `path "${table.openbao.mount}/data/${kvPath(app)}" {\n  capabilities = ["read"]\n}\n`;
}

/**
 * The plan. `generate` makes each generated key's initial value (the schema's generator, from the OS
 * CSPRNG); manual keys are left to the operator, so an app with only manual keys gets no write.
 */
export function openBaoSetupPlan(
  table: AppsTable,
  generate: (app: RuntimeApp, key: RuntimeApp['keys'][number]) => string | undefined,
): SetupStep[] {
  const { authMount, mount, kubernetesHost, tokenTTL } = table.openbao;
  const steps: SetupStep[] = [
    { kind: 'enable-auth', argv: ['bao', 'auth', 'enable', `-path=${authMount}`, 'kubernetes'], stdin: null },
    {
      kind: 'auth-config',
      argv: ['bao', 'write', `auth/${authMount}/config`, `kubernetes_host=${kubernetesHost}`],
      stdin: null,
    },
    { kind: 'enable-kv', argv: ['bao', 'secrets', 'enable', `-path=${mount}`, 'kv-v2'], stdin: null },
  ];
  for (const app of table.apps) {
    steps.push({
      kind: 'policy',
      app: app.id,
      argv: ['bao', 'policy', 'write', policyName(app), '-'],
      stdin: policyHcl(app, table),
    });
    steps.push({
      kind: 'role',
      app: app.id,
      argv: [
        'bao',
        'write',
        `auth/${authMount}/role/${app.id}`,
        `bound_service_account_names=${app.serviceAccount}`,
        `bound_service_account_namespaces=${app.namespace}`,
        `token_policies=${policyName(app)}`,
        `token_ttl=${tokenTTL}`,
      ],
      stdin: null,
    });
  }
  for (const app of table.apps) {
    const values: Record<string, string> = {};
    for (const key of app.keys) {
      if (key.generate.kind === 'manual') continue;
      const value = generate(app, key);
      if (value !== undefined) values[key.from] = value;
    }
    const keys = Object.keys(values);
    if (keys.length === 0) continue;
    steps.push({
      kind: 'initial-values',
      app: app.id,
      // Flags before the path, the data as one JSON object on stdin.
      argv: ['bao', 'kv', 'put', `-mount=${mount}`, '-cas=0', kvPath(app), '-'],
      stdin: JSON.stringify(values),
      keys,
    });
  }
  return steps;
}

/** The plan as `--setup-plan` prints it: `[{ "argv": [...], "stdin": string | null }]`. */
export function planJson(steps: readonly SetupStep[]): string {
  return `${JSON.stringify(
    steps.map((s) => ({ argv: s.argv, stdin: s.stdin })),
    null,
    2,
  )}\n`;
}
