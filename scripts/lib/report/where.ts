/**
 * `secrets where`: the design page's "What Lives Where" table, produced from data: the bootstrap rows
 * from the schema (SECRET_SCHEMA, CONSUMERS), the runtime rows from the apps table, where they live
 * under the table's backend.
 */
import { existsSync } from 'node:fs';
import { EXIT } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { type AppsTable, loadAppsTable, type RuntimeApp } from '../runtime/apps.ts';
import { apiPath } from '../runtime/backends/openbao.ts';
import {
  type BackendId,
  DEFAULT_APPS_FILE,
  DEFAULT_BACKEND,
  LEGACY_APPS_FILE,
  parseBackend,
} from '../secrets/backend-id.ts';
import {
  CONSUMERS,
  consumersFor,
  SECRET_SCHEMA,
  type SecretSpec,
  type SecretUse,
} from '../secrets/schema.ts';

export interface RuntimeWhereRow {
  app: string;
  title: string;
  key: string;
  /** The key's name at the source when renamed. */
  from?: string;
  backend: BackendId;
  source: string;
  secret: string;
  delivery: RuntimeApp['delivery'];
  setDuring: string;
  rotatable: boolean;
  why?: string;
}

/**
 * One markdown row per bootstrap key a cluster running `backend` uses: `| key | lives in | set during |
 * rotatable |`. Keys only another backend's Secrets read are left out, and so are those Secrets.
 */
export function bootstrapWhereRows(backend: BackendId): string[][] {
  const consumers = consumersFor(backend);
  const usedHere = (spec: SecretSpec) =>
    (spec.uses as readonly SecretUse[]).filter((u) => consumers.includes(u.consumer));
  const specs = (SECRET_SCHEMA as readonly SecretSpec[]).filter((spec) => usedHere(spec).length > 0);
  const rows = specs.map((spec) => {
    const places = usedHere(spec).map((u) => {
      const c = CONSUMERS[u.consumer];
      return c.kind === 'env-file'
        ? `${c.path}${u.as !== spec.key ? ` as ${u.as}` : ''}${u.hash ? ` (hashed: ${u.hash.scheme}; never the value)` : ''}`
        : c.kind === 'k8s-secret'
          ? `k8s Secret ${u.consumer}`
          : c.kind === 'suite'
            ? 'secrets-flow (local only)'
            : 'operator';
    });
    const rotation =
      spec.rotation.kind === 'never'
        ? `**No** (${spec.rotation.reason})`
        : spec.rotation.effect
          ? `Yes (${spec.rotation.effect})`
          : 'Yes';
    return [`\`${spec.key}\``, `SOPS → ${[...new Set(places)].join(' + ')}`, spec.setDuring, rotation];
  });
  rows.push([
    '`NB_IDP_MGMT_TOKEN`',
    'written to `.secrets.env` on the VPS by the bootstrap engine',
    'Auto',
    'Yes',
  ]);
  rows.push([
    '`NB_PROXY_TOKEN` (minted)',
    'without a SOPS value: minted on the VPS by the bootstrap (`/go/bin/netbird-server token create`, an `nbx_` proxy token) into `.secrets.env`',
    'Auto',
    'Yes (`just bifrost-proxy-token HOST`)',
  ]);
  return rows;
}

/** Where an app's values live at the source, per backend (`Infisical /grafana`). */
function sourceOf(app: RuntimeApp, table: AppsTable, backend: BackendId): string {
  return backend === 'openbao' ? `OpenBao \`${apiPath(app, table.openbao)}\`` : `Infisical \`${app.path}\``;
}

export function runtimeWhereRows(table: AppsTable, backend: BackendId): RuntimeWhereRow[] {
  return table.apps.flatMap((app) =>
    app.keys.map((k) => ({
      app: app.id,
      title: app.title,
      key: k.key,
      ...(k.from !== k.key ? { from: k.from } : {}),
      backend,
      source: sourceOf(app, table, backend),
      secret: `${app.namespace}/${app.secret}`,
      delivery: app.delivery,
      setDuring: k.setDuring,
      rotatable: k.rotatable,
      ...(k.why ? { why: k.why } : {}),
    })),
  );
}

export function runtimeMarkdownRow(r: RuntimeWhereRow): string[] {
  const source = `${r.source}${r.from ? ` as \`${r.from}\`` : ''}`;
  const target =
    r.delivery === 'secret'
      ? `k8s Secret \`${r.secret}\``
      : `files mounted in ${r.secret.split('/')[0]} (no Secret)`;
  return [
    `\`${r.key}\` (${r.title})`,
    `${source} → ${target}`,
    r.setDuring,
    r.rotatable ? 'Yes' : `**No** (${r.why})`,
  ];
}

export function whereTable(rows: readonly string[][]): string {
  return [
    '| Secret | Lives in | Set during | Rotatable? |',
    '|--------|---------|-----------|-----------|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** Whether an apps table is where commands look for it (a user's clone may have none). */
export function appsTableExists(file?: string): boolean {
  return file ? existsSync(file) : existsSync(DEFAULT_APPS_FILE) || existsSync(LEGACY_APPS_FILE);
}

/** `secrets where`: the table for the apps table's backend (or --backend), bootstrap rows first. */
export async function secretsWhere(flags: { apps?: string; backend?: string }, out: Output): Promise<number> {
  let backend = flags.backend !== undefined ? parseBackend(flags.backend) : DEFAULT_BACKEND;
  let runtime: RuntimeWhereRow[] = [];
  if (appsTableExists(flags.apps)) {
    const table = await loadAppsTable(flags.apps, (m) => out.warn(m));
    if (flags.backend === undefined) backend = table.backend;
    runtime = runtimeWhereRows(table, backend);
  } else out.warn(`no apps table (${DEFAULT_APPS_FILE}): the runtime rows are left out; pass --apps FILE`);
  const bootstrap = bootstrapWhereRows(backend);
  out.data(whereTable([...bootstrap, ...runtime.map(runtimeMarkdownRow)]));
  out.result({ ok: true, backend, rows: bootstrap, runtime });
  return EXIT.ok;
}
