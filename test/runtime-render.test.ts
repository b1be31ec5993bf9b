/**
 * The runtime tier from one apps table (cloud/runtime/apps.yaml): every backend renders the design
 * page's five apps, each managed Secret and key as the design page's table says, and every document is
 * validated against the upstream CRD it targets (../shared/reference, never copied into the project).
 * Rows a backend cannot express are refused with the reason; output is byte-stable; the setup plan and
 * `secrets where` come from the same rows.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import {
  type AppsTable,
  DEFAULT_APPS_FILE,
  loadAppsTable,
  resolveAppsTable,
} from '../scripts/lib/runtime/apps.ts';
import type { Document } from '../scripts/lib/runtime/backends/backend.ts';
import { openBaoSetupPlan } from '../scripts/lib/runtime/openbao-plan.ts';
import { renderBackend } from '../scripts/lib/runtime/render.ts';
import type { BackendId } from '../scripts/lib/secrets/backend-id.ts';
import { resolveBackend } from '../scripts/lib/secrets/backend-id.ts';
import { backendRefusals, tableProblems } from './helpers/apps-table.ts';
import { runScriptInPty } from './helpers/pty.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { validateCustomResource } from './helpers/schema-validate.ts';
import { requireShared, requireTool } from './helpers/tiers.ts';

const SCRIPT = 'render-runtime-secrets.ts';
const APPS_FILE = join(PROJECT_ROOT, DEFAULT_APPS_FILE);
const HEADER = { script: 'runtime-secrets.ts', source: DEFAULT_APPS_FILE };
const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1' });

/** The design page's "Apps using Infisical" table; Rancher lives in cattle-system. */
const DESIGN_PAGE = [
  {
    title: 'Grafana',
    path: '/grafana',
    namespace: 'grafana',
    secret: 'grafana-admin',
    keys: ['ADMIN_PASSWORD'],
  },
  {
    title: 'Harbor',
    path: '/harbor',
    namespace: 'harbor',
    secret: 'harbor-admin',
    keys: ['HARBOR_ADMIN_PASSWORD'],
  },
  {
    title: 'n8n',
    path: '/n8n',
    namespace: 'n8n',
    secret: 'n8n-db',
    keys: ['DB_PASSWORD', 'N8N_ENCRYPTION_KEY'],
  },
  {
    title: 'Rancher',
    path: '/rancher',
    namespace: 'cattle-system',
    secret: 'rancher-bootstrap',
    keys: ['BOOTSTRAP_PASSWORD'],
  },
  {
    title: 'NetBird peer',
    path: '/netbird',
    namespace: 'netbird',
    secret: 'netbird-setup-key',
    keys: ['NETBIRD_SETUP_KEY'],
  },
];

const temps: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'sf-runtime-'));
  temps.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

type Plain = Record<string, unknown>;
const tableData = () => parse(readFileSync(APPS_FILE, 'utf8')) as Record<string, Plain>;
const appOf = (table: Record<string, Plain>, id: string) =>
  (table.apps as Record<string, Plain>)[id] as Plain;
const shipped = () => loadAppsTable(APPS_FILE);
const documentsOf = (table: AppsTable, backend: BackendId): Document[] =>
  renderBackend(table, backend, HEADER).flatMap((f) => f.documents);
const ofKind = (docs: Document[], kind: string) => docs.filter((d) => d.kind === kind);

describe('the one apps table', () => {
  it('holds the design page apps with their Secrets and keys, and names the backend', async () => {
    const table = await shipped();
    expect(table.backend).toBe('infisical');
    expect(
      table.apps.map((a) => ({
        title: a.title,
        path: a.path,
        namespace: a.namespace,
        secret: a.secret,
        keys: a.keys.map((k) => k.key),
      })),
    ).toEqual(DESIGN_PAGE);
    for (const app of table.apps) expect(app.serviceAccount, app.id).toBeTruthy();
    const n8n = table.apps.find((a) => a.id === 'n8n');
    expect(n8n?.keys.find((k) => k.key === 'N8N_ENCRYPTION_KEY')).toMatchObject({
      rotatable: false,
      generate: { kind: 'hex', bytes: 32 },
    });
    const netbird = table.apps.find((a) => a.id === 'netbird-peer');
    expect(netbird?.keys[0]?.generate.kind).toBe('manual');
  });

  it('reads generators, renames and the old list form, and refuses bad key specs naming each', () => {
    const table = tableData();
    appOf(table, 'grafana').keys = ['ADMIN_PASSWORD'];
    appOf(table, 'n8n').keys = {
      DB_PASSWORD: 'base64 24',
      N8N_ENCRYPTION_KEY: { from: 'ENCRYPTION_KEY', generate: 'chars 40' },
    };
    const apps = resolveAppsTable(table, 'apps.yaml').apps;
    expect(apps[0]?.keys).toEqual([
      {
        key: 'ADMIN_PASSWORD',
        from: 'ADMIN_PASSWORD',
        generate: { kind: 'random-chars', length: 32 },
        rotatable: true,
        setDuring: 'Phase 2',
      },
    ]);
    expect(apps[2]?.keys.map((k) => [k.key, k.from, k.generate])).toEqual([
      ['DB_PASSWORD', 'DB_PASSWORD', { kind: 'base64', bytes: 24 }],
      ['N8N_ENCRYPTION_KEY', 'ENCRYPTION_KEY', { kind: 'random-chars', length: 40 }],
    ]);

    appOf(table, 'grafana').keys = { ADMIN_PASSWORD: 'chars 8' };
    appOf(table, 'harbor').keys = { HARBOR_ADMIN_PASSWORD: { generate: 'manual' } };
    appOf(table, 'n8n').keys = {
      DB_PASSWORD: 'hex 16',
      N8N_ENCRYPTION_KEY: { from: 'DB_PASSWORD', generate: 'hex 16' },
      EXTRA: { generate: 'hex 16', rotatable: false, colour: 'x' },
    };
    appOf(table, 'rancher').delivery = 'volume';
    table.backend = 'vault' as unknown as Plain;
    expect(tableProblems(table)).toEqual([
      expect.stringMatching(/^backend: string "vault" is not a backend/),
      expect.stringMatching(/^apps\.grafana\.keys\.ADMIN_PASSWORD\.generate: "chars 8" is not a generator/),
      'apps.harbor.keys.HARBOR_ADMIN_PASSWORD.generate: manual keys need howTo: where the operator gets the value',
      'apps.n8n.keys.N8N_ENCRYPTION_KEY.from: source key "DB_PASSWORD" is also read by DB_PASSWORD: give each key its own',
      expect.stringMatching(/^apps\.n8n\.keys\.EXTRA\.colour: unknown field/),
      'apps.n8n.keys.EXTRA.why: missing: say what breaks when the key changes (rotatable: false)',
      expect.stringMatching(/^apps\.rancher\.delivery: must be one of secret, files/),
    ]);
  });

  it('is read from its old home with a notice, where a table without a backend means v1alpha1', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'cloud', 'infisical'), { recursive: true });
    const old = tableData();
    delete old.backend;
    delete old.infisical;
    delete old.openbao;
    writeFileSync(join(cwd, 'cloud', 'infisical', 'apps.yaml'), JSON.stringify(old));
    const r = await runScript(SCRIPT, [], env(), { cwd });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      'read the apps table from its old home cloud/infisical/apps.yaml; move it: git mv cloud/infisical/apps.yaml cloud/runtime/apps.yaml',
    );
    expect(parseAllDocuments(r.stdout).map((d) => d.toJS().kind)).toEqual(Array(5).fill('InfisicalSecret'));
    const cwdBefore = process.cwd();
    try {
      process.chdir(cwd);
      expect(resolveBackend(undefined)).toBe('infisical-v1alpha1');
    } finally {
      process.chdir(cwdBefore);
    }
    expect(resolveBackend(undefined, APPS_FILE)).toBe('infisical');
    expect(() => resolveBackend('vault')).toThrow(/--backend "vault" is not a runtime backend/);
  });
});

describe('backend infisical (v1beta1): the managed Secret', () => {
  it("pins every app's managed Secret as the README promises: its name and namespace, Owner, Opaque, exactly its keys", () => {
    // The shipped table, and one with a rename and a resource named apart from its Secret: the rows are
    // read from the YAML here, not through the loader, and compared with the rendered YAML's text.
    const variant = tableData();
    appOf(variant, 'n8n').keys = {
      DB_PASSWORD: 'hex 16',
      N8N_ENCRYPTION_KEY: { from: 'ENCRYPTION_KEY', generate: 'hex 32' },
    };
    appOf(variant, 'grafana').name = 'grafana-sync';
    for (const data of [tableData(), variant]) {
      const apps = Object.values(data.apps as Record<string, Plain>);
      expect(apps.length).toBeGreaterThan(0);
      const rendered = renderBackend(resolveAppsTable(data, 'apps.yaml'), 'infisical', HEADER)
        .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Document))
        .filter((d) => d.kind === 'InfisicalStaticSecret');
      expect(rendered).toHaveLength(apps.length);
      for (const row of apps) {
        const name = (row.name ?? row.secret) as string;
        const doc = rendered.find((d) => d.metadata.name === name && d.metadata.namespace === row.namespace);
        expect(doc, `the InfisicalStaticSecret ${row.namespace}/${name}`).toBeDefined();
        const keys = Object.entries(row.keys as Record<string, string | { from?: string }>).map(
          ([key, spec]) => [key, typeof spec === 'object' && spec.from ? spec.from : key] as const,
        );
        // One target: the table's Secret in the app's namespace, deleted with its resource (Owner; the
        // CRD also accepts Orphan, which would leave the credentials behind), an ordinary Secret whose
        // template names exactly the app's keys, each from its source key; its own metadata given, so
        // the resource's labels and annotations (Argo CD's tracking label) are not copied onto it.
        expect((doc?.spec as { targets?: unknown } | undefined)?.targets, `${row.namespace}/${name}`).toEqual(
          [
            {
              name: row.secret,
              namespace: row.namespace,
              kind: 'Secret',
              creationPolicy: 'Owner',
              secretType: 'Opaque',
              template: {
                engineVersion: 'v1',
                data: Object.fromEntries(keys.map(([key, from]) => [key, `{{ .${from}.Value }}`])),
              },
              metadata: { labels: { 'app.kubernetes.io/managed-by': 'secrets-flow' }, annotations: {} },
            },
          ],
        );
      }
    }
  });
});

const v1beta1Dir = requireShared(
  'reference/infisical/v1beta1',
  'validating the v1beta1 resources against the real CRDs',
);

describe.skipIf(!v1beta1Dir)('backend infisical (v1beta1) against the real CRDs', () => {
  const crds = () =>
    Object.fromEntries(
      ['infisicalconnections', 'infisicalauths', 'infisicalstaticsecrets'].map((plural) => {
        const crd = parse(
          readFileSync(join(v1beta1Dir as string, `secrets.infisical.com_${plural}.yaml`), 'utf8'),
        );
        return [crd.spec.names.kind as string, crd];
      }),
    );

  it('renders one connection, one Kubernetes auth and one static secret per app, all valid', async () => {
    const docs = documentsOf(await shipped(), 'infisical');
    const byKind = crds();
    expect(docs.map((d) => d.kind)).toEqual([
      'InfisicalConnection',
      'ServiceAccount',
      'InfisicalAuth',
      ...Array(5).fill('InfisicalStaticSecret'),
    ]);
    for (const doc of docs) {
      if (doc.kind === 'ServiceAccount') continue;
      expect(validateCustomResource(byKind[doc.kind], doc), `${doc.kind} ${doc.metadata.name}`).toEqual([]);
    }
    const [auth] = ofKind(docs, 'InfisicalAuth');
    expect(auth?.spec).toEqual({
      infisicalConnectionRef: { name: 'infisical', namespace: 'infisical' },
      method: 'kubernetes',
      kubernetes: {
        identityIdRef: { key: 'identityId', name: 'infisical-machine-identity', namespace: 'infisical' },
        serviceAccountRef: { name: 'infisical-auth', namespace: 'infisical' },
      },
    });
    // Each target is the design page's Secret, and its template names exactly the design page's keys.
    const statics = ofKind(docs, 'InfisicalStaticSecret');
    expect(
      statics.map((d) => {
        const spec = d.spec as { sources: Plain[]; targets: Plain[] };
        const target = spec.targets[0] as { name: string; namespace: string; template: { data: Plain } };
        return {
          path: spec.sources[0]?.secretPath,
          namespace: target.namespace,
          secret: target.name,
          keys: Object.keys(target.template.data),
        };
      }),
    ).toEqual(DESIGN_PAGE.map(({ title: _t, ...row }) => row));
    for (const d of statics) {
      const spec = d.spec as { sources: Plain[]; targets: Plain[]; syncOptions: Plain };
      // The operator's own rules (not in the schema): one project per source, <n><unit> intervals.
      expect(spec.sources[0]).toEqual(
        expect.objectContaining({ projectSlug: 'homelab-prod', environmentSlug: 'prod' }),
      );
      expect(spec.syncOptions.refreshInterval).toMatch(/^[0-9]+[smhdw]$/);
      // No ServerSideApply=false: its reason (v1alpha1's CRD lacking projectSlug) is gone in v1beta1.
      expect(d.metadata.annotations).toBeUndefined();
    }
  });

  it('renames through the target template, and the schema refuses unknown fields', async () => {
    const table = tableData();
    appOf(table, 'n8n').keys = {
      DB_PASSWORD: 'hex 16',
      N8N_ENCRYPTION_KEY: { from: 'ENCRYPTION_KEY', generate: 'hex 32' },
      WEBHOOK_TOKEN: { from: 'webhook-token', generate: 'chars 32' },
      A_1: 'hex 16',
    };
    const docs = documentsOf(resolveAppsTable(table, 'apps.yaml'), 'infisical');
    const n8n = ofKind(docs, 'InfisicalStaticSecret').find((d) => d.metadata.namespace === 'n8n') as Document;
    const spec = n8n.spec as { targets: { template: { data: Plain } }[] };
    expect(spec.targets[0]?.template.data).toEqual({
      DB_PASSWORD: '{{ .DB_PASSWORD.Value }}',
      N8N_ENCRYPTION_KEY: '{{ .ENCRYPTION_KEY.Value }}',
      WEBHOOK_TOKEN: '{{ (index . "webhook-token").Value }}',
      A_1: '{{ .A_1.Value }}',
    });
    const crd = crds().InfisicalStaticSecret;
    expect(validateCustomResource(crd, n8n)).toEqual([]);
    const mutated = JSON.parse(JSON.stringify(n8n));
    mutated.spec.targets[0].renames = {};
    mutated.spec.sources[0].projectSlugs = ['x'];
    delete mutated.spec.syncOptions;
    expect(
      validateCustomResource(crd, mutated)
        .map((p) => p.path)
        .sort(),
    ).toEqual(['spec.sources[0].projectSlugs', 'spec.syncOptions', 'spec.targets[0].renames']);
  });

  it('refuses rows one connection and one auth cannot express', () => {
    const table = tableData();
    appOf(table, 'grafana').hostAPI = 'https://other.example/api';
    appOf(table, 'harbor').resyncInterval = 3;
    appOf(table, 'n8n').auth = {
      universalAuth: { credentialsRef: { secretName: 'ua', secretNamespace: 'infisical' } },
    };
    appOf(table, 'rancher').delivery = 'files';
    delete (table.defaults as Plain).projectSlug;
    const problems = backendRefusals(table, 'infisical');
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^apps\.grafana\.hostAPI: differs from the other apps'.*one InfisicalConnection serves every app/,
        ),
        'apps.harbor.resyncInterval: the operator refuses a refreshInterval under 5s',
        expect.stringMatching(/^apps\.n8n\.auth: one InfisicalAuth/),
        expect.stringMatching(/^apps\.rancher\.delivery: files-only delivery needs the CSI driver/),
        expect.stringMatching(/^apps\.netbird-peer\.projectSlug: missing/),
      ]),
    );
    expect(problems.filter((p) => p.endsWith('projectSlug or projectId (here or in defaults)'))).toHaveLength(
      5,
    );
  });
});

const csiDir = requireShared(
  'reference/secrets-store-csi',
  'validating SecretProviderClasses against the real CRD',
);

describe.skipIf(!csiDir)('backend openbao against the SecretProviderClass CRD', () => {
  const crd = () =>
    parse(
      readFileSync(join(csiDir as string, 'secrets-store.csi.x-k8s.io_secretproviderclasses.yaml'), 'utf8'),
    );

  it('renders one valid class per app, syncing each design page Secret and key from OpenBao', async () => {
    const docs = documentsOf(await shipped(), 'openbao');
    const classes = ofKind(docs, 'SecretProviderClass');
    expect(classes).toHaveLength(5);
    for (const spc of classes) expect(validateCustomResource(crd(), spc), spc.metadata.name).toEqual([]);
    const rows = classes.map((spc) => {
      const spec = spc.spec as {
        provider: string;
        parameters: Record<string, string>;
        secretObjects: { secretName: string; type: string; data: { objectName: string; key: string }[] }[];
      };
      expect(spec.provider).toBe('openbao');
      expect(Object.values(spec.parameters).every((v) => typeof v === 'string')).toBe(true);
      // The provider parses `objects` as a YAML list of exactly these fields (unknown ones are ignored,
      // so a misspelt secretKey would silently mount the whole secret as JSON).
      const objects = parse(spec.parameters.objects as string) as Plain[];
      for (const o of objects)
        expect(Object.keys(o).sort()).toEqual(['objectName', 'secretKey', 'secretPath']);
      const [sync] = spec.secretObjects;
      expect(sync?.type).toBe('Opaque');
      return {
        role: spec.parameters.roleName,
        path: [...new Set(objects.map((o) => o.secretPath))],
        namespace: spc.metadata.namespace,
        secret: sync?.secretName,
        keys: sync?.data.map((d) => d.key),
        objects: objects.map((o) => o.objectName),
      };
    });
    expect(rows).toEqual(
      DESIGN_PAGE.map((row, i) => ({
        role: ['grafana', 'harbor', 'n8n', 'rancher', 'netbird-peer'][i],
        path: [`secret/data${row.path}`],
        namespace: row.namespace,
        secret: row.secret,
        keys: row.keys,
        objects: row.keys,
      })),
    );
    // v1alpha1 of the CRD is deprecated: the classes use v1.
    expect(
      validateCustomResource(crd(), { ...classes[0], apiVersion: 'secrets-store.csi.x-k8s.io/v2' }),
    ).toEqual([expect.objectContaining({ path: 'apiVersion' })]);
  });

  it('renders a marked sync workload for the apps whose charts cannot mount the volume', async () => {
    const table = await shipped();
    const files = renderBackend(table, 'openbao', HEADER);
    const withSync = files.filter((f) => f.documents.some((d) => d.kind === 'Deployment'));
    expect(withSync.map((f) => f.app?.id)).toEqual(['harbor', 'rancher']);
    for (const f of withSync) {
      const app = f.app as NonNullable<typeof f.app>;
      const deployment = f.documents.find((d) => d.kind === 'Deployment') as Document;
      const sa = f.documents.find((d) => d.kind === 'ServiceAccount') as Document;
      expect(deployment.metadata.labels?.['app.kubernetes.io/component']).toBe('secret-sync');
      expect(deployment.metadata.annotations?.['secrets-flow/purpose']).toContain(
        `syncs Secret ${app.secret}`,
      );
      const pod = (deployment.spec as { template: { spec: Plain } }).template.spec as {
        serviceAccountName: string;
        volumes: { csi: { driver: string; readOnly: boolean; volumeAttributes: Plain } }[];
        containers: { volumeMounts: Plain[] }[];
      };
      // The role is bound to this account, and the volume names this app's class.
      expect(pod.serviceAccountName).toBe(app.serviceAccount);
      expect(sa.metadata).toMatchObject({ name: app.serviceAccount, namespace: app.namespace });
      expect(pod.volumes[0]?.csi).toEqual({
        driver: 'secrets-store.csi.k8s.io',
        readOnly: true,
        volumeAttributes: { secretProviderClass: app.name },
      });
      expect(pod.containers[0]?.volumeMounts[0]).toMatchObject({ readOnly: true });
    }
  });

  it('renames from the OpenBao key to the Secret key, and files-only delivery syncs no Secret', () => {
    const table = tableData();
    appOf(table, 'n8n').keys = {
      DB_PASSWORD: 'hex 16',
      N8N_ENCRYPTION_KEY: { from: 'ENCRYPTION_KEY', generate: 'hex 32' },
    };
    Object.assign(appOf(table, 'grafana'), { delivery: 'files', restartOnChange: false });
    const docs = documentsOf(resolveAppsTable(table, 'apps.yaml'), 'openbao');
    const spcOf = (ns: string) =>
      ofKind(docs, 'SecretProviderClass').find((d) => d.metadata.namespace === ns)?.spec as {
        parameters: { objects: string };
        secretObjects?: { data: Plain[] }[];
      };
    expect(parse(spcOf('n8n').parameters.objects)).toEqual([
      { objectName: 'DB_PASSWORD', secretPath: 'secret/data/n8n', secretKey: 'DB_PASSWORD' },
      { objectName: 'N8N_ENCRYPTION_KEY', secretPath: 'secret/data/n8n', secretKey: 'ENCRYPTION_KEY' },
    ]);
    expect(spcOf('n8n').secretObjects?.[0]?.data).toEqual([
      { objectName: 'DB_PASSWORD', key: 'DB_PASSWORD' },
      { objectName: 'N8N_ENCRYPTION_KEY', key: 'N8N_ENCRYPTION_KEY' },
    ]);
    expect(spcOf('grafana').secretObjects).toBeUndefined();
    expect(validateCustomResource(crd(), ofKind(docs, 'SecretProviderClass')[0])).toEqual([]);
  });

  it('refuses rows OpenBao cannot serve, each with the reason', () => {
    const table = tableData();
    delete appOf(table, 'grafana').serviceAccount;
    appOf(table, 'harbor').path = '/n8n';
    Object.assign(appOf(table, 'rancher'), {
      delivery: 'files',
      restartOnChange: true,
      mountedBy: 'sync-workload',
    });
    Object.assign(appOf(table, 'netbird-peer'), {
      namespace: 'harbor',
      mountedBy: 'sync-workload',
      serviceAccount: 'secret-sync',
    });
    expect(backendRefusals(table, 'openbao')).toEqual([
      expect.stringMatching(/^apps\.grafana\.serviceAccount: missing: OpenBao's role/),
      'apps.n8n.path: /n8n is also used by app harbor: give each app its own OpenBao path',
      expect.stringMatching(/^apps\.rancher\.restartOnChange: files-only delivery updates files in place/),
      expect.stringMatching(
        /^apps\.rancher\.mountedBy: a sync workload only makes sense for a synced Secret/,
      ),
      "apps.netbird-peer.serviceAccount: ServiceAccount harbor/secret-sync is also rendered for app harbor's sync workload",
    ]);
  });
});

const python = requireTool('python3', 'the setup plan on a terminal (a pseudo-terminal)');

describe('the setup plan', () => {
  it('is refused for the Infisical backends and on a terminal', async () => {
    const r = await runScript(SCRIPT, ['--backend', 'infisical', '--setup-plan'], env());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('backend infisical has no setup plan');
    expect(r.stdout).toBe('');
    if (!python) return;
    // Fresh secret values are not for a screen: on a terminal the plan is refused, nothing printed,
    // as JSON result or not.
    for (const extra of [[], ['--json']]) {
      const tty = await runScriptInPty({
        python,
        prompt: 'never shown',
        answer: '',
        script: SCRIPT,
        args: ['--backend', 'openbao', '--setup-plan', ...extra],
        env: env(),
      });
      expect(tty.exitCode).toBe(2);
      expect(tty.stdout).toContain('stdout is a terminal');
      expect(tty.stdout).not.toContain('"argv"');
    }
  });

  it('puts every generated value on stdin only, flags before the path, create-only', async () => {
    const r = await runScript(SCRIPT, ['--backend', 'openbao', '--setup-plan'], env());
    expect(r.exitCode, r.stderr).toBe(0);
    const steps = JSON.parse(r.stdout) as { argv: string[]; stdin: string | null }[];
    for (const s of steps) expect(Object.keys(s).sort()).toEqual(['argv', 'stdin']);
    const writes = steps.filter((s) => s.argv.slice(0, 3).join(' ') === 'bao kv put');
    expect(writes.map((s) => s.argv.slice(3))).toEqual(
      ['grafana', 'harbor', 'n8n', 'rancher'].map((p) => ['-mount=secret', '-cas=0', p, '-']),
    );
    const values = writes.flatMap((s) =>
      Object.values(JSON.parse(s.stdin as string) as Record<string, string>),
    );
    expect(values).toHaveLength(5);
    const argvText = JSON.stringify(steps.map((s) => s.argv));
    for (const v of values) expect(argvText).not.toContain(v);
    // A second plan makes other values, which the create-only writes would not apply over the first.
    const again = await runScript(SCRIPT, ['--backend', 'openbao', '--setup-plan'], env());
    expect(again.stdout).not.toBe(r.stdout);
  });

  it('binds one read-only policy and one role per app to its service account', async () => {
    const table = await shipped();
    const steps = openBaoSetupPlan(table, () => 'x'.repeat(32));
    const roles = steps.filter((s) => s.kind === 'role').map((s) => s.argv.slice(2));
    expect(roles).toEqual(
      table.apps.map((a) => [
        `auth/kubernetes/role/${a.id}`,
        `bound_service_account_names=${a.serviceAccount}`,
        `bound_service_account_namespaces=${a.namespace}`,
        `token_policies=${a.id}-read`,
        'token_ttl=1h',
      ]),
    );
    expect(steps.filter((s) => s.kind === 'policy').map((s) => s.stdin)).toEqual(
      table.apps.map((a) => `path "secret/data${a.path}" {\n  capabilities = ["read"]\n}\n`),
    );
    // NETBIRD_SETUP_KEY is made by hand: no initial write for the netbird path.
    expect(steps.find((s) => s.kind === 'initial-values' && s.app === 'netbird-peer')).toBeUndefined();
  });
});

describe('the CLI', () => {
  it.each(['infisical', 'infisical-v1alpha1', 'openbao'])(
    'renders byte-identical output twice (%s), only YAML on stdout and no Secret',
    async (backend) => {
      const [a, b] = await Promise.all([
        runScript(SCRIPT, ['--backend', backend], env()),
        runScript(SCRIPT, ['--backend', backend], env()),
      ]);
      expect(a.exitCode, a.stderr).toBe(0);
      expect(b.stdout).toBe(a.stdout);
      // stdout is the YAML stream only: every document parses, none is a Secret.
      const docs = parseAllDocuments(a.stdout).map((d) => d.toJS() as Plain);
      expect(docs.length, 'the documents rendered').toBeGreaterThan(0);
      expect(docs.every((d) => typeof d.kind === 'string' && d.kind !== 'Secret')).toBe(true);
    },
  );

  it('--out twice leaves byte-identical files, and --check passes them', async () => {
    const out = tempDir();
    const r1 = await runScript(SCRIPT, ['--backend', 'openbao', '--out', out], env());
    const bytes = readdirSync(out).map((f) => readFileSync(join(out, f)));
    const r2 = await runScript(SCRIPT, ['--backend', 'openbao', '--out', out, '--check', out], env());
    expect([r1.exitCode, r2.exitCode]).toEqual([0, 0]);
    expect(readdirSync(out).map((f) => readFileSync(join(out, f)))).toEqual(bytes);
    expect(r2.stdout.match(/^unchanged/gm)).toHaveLength(5);
    expect(r2.stdout).toContain('no Secret resources');
  });

  it("follows the table's backend by default, and refuses an unknown one", async () => {
    const r = await runScript(SCRIPT, ['--json'], env());
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.backend).toBe('infisical');
    expect(result.apps.find((a: Plain) => a.app === 'grafana').restart).toEqual({
      annotation: 'secrets.infisical.com/auto-reload',
      value: 'true',
      by: 'the Infisical operator',
    });
    const bad = await runScript(SCRIPT, ['--backend', 'vault'], env());
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('use one of infisical, infisical-v1alpha1, openbao');
  });

  it('secrets where shows the runtime rows from the table under its backend', async () => {
    const r = await runScript('secrets.ts', ['where', '--backend', 'openbao'], env());
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      '| `N8N_ENCRYPTION_KEY` (n8n) | OpenBao `secret/data/n8n` → k8s Secret `n8n/n8n-db` | Phase 2 | **No** (n8n encrypts',
    );
    expect(r.stdout).toContain(
      '| `NETBIRD_SETUP_KEY` (NetBird peer) | OpenBao `secret/data/netbird` → k8s Secret `netbird/netbird-setup-key` | After first NetBird login | Yes |',
    );
    // The bootstrap rows follow the backend too: no Infisical Secret in an OpenBao cluster.
    expect(r.stdout).not.toContain('INFISICAL_');
    expect(r.stdout).toContain('| `OPENBAO_UNSEAL_KEY` | SOPS → k8s Secret openbao-unseal-key |');
    const json = JSON.parse((await runScript('secrets.ts', ['where', '--json'], env())).stdout);
    expect(json.backend).toBe('infisical');
    const bootstrapKeys = (json.rows as string[][]).map((row) => row[0]);
    expect(bootstrapKeys).toContain('`INFISICAL_IDENTITY_ID`');
    expect(bootstrapKeys).not.toContain('`INFISICAL_SERVICE_TOKEN`');
    expect(json.runtime.map((row: Plain) => `${row.secret} ${row.key}`)).toEqual(
      DESIGN_PAGE.flatMap((row) => row.keys.map((k) => `${row.namespace}/${row.secret} ${k}`)),
    );
    expect(json.runtime[0]).toMatchObject({
      backend: 'infisical',
      source: 'Infisical `/grafana`',
      delivery: 'secret',
    });
  });
});
