/**
 * The runtime tier's infisical-v1alpha1 backend (the design page's pattern): cloud/runtime/apps.yaml
 * rendered to InfisicalSecret CRs by render-infisical-secrets.ts. The CRs are validated
 * against the operator's real CRD (../shared/reference/infisical, never copied into the project), the
 * table's validation is shown to name every problem, --check is shown to catch Secret resources, and
 * output is shown to be byte-stable.
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
  parseAppsTable,
  type RuntimeApp,
  resolveAppsTable,
} from '../scripts/lib/runtime/apps.ts';
import { infisicalSecretManifest } from '../scripts/lib/runtime/backends/infisical-v1alpha1.ts';
import { checkManifests } from '../scripts/lib/runtime/check.ts';
import { renderBackend, renderStream } from '../scripts/lib/runtime/render.ts';
import { backendRefusals, tableProblems } from './helpers/apps-table.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import {
  type Schema,
  UnsupportedSchemaError,
  validateCustomResource,
  validateSchema,
} from './helpers/schema-validate.ts';
import { requireShared } from './helpers/tiers.ts';

const SCRIPT = 'render-infisical-secrets.ts';
const APPS_FILE = join(PROJECT_ROOT, DEFAULT_APPS_FILE);
const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1' });

const temps: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'sf-infisical-'));
  temps.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** The real table as plain data, for mutation. */
const tableData = () => parse(readFileSync(APPS_FILE, 'utf8')) as Record<string, Record<string, unknown>>;
const appOf = (table: Record<string, Record<string, unknown>>, id: string) =>
  (table.apps as Record<string, Record<string, unknown>>)[id] as Record<string, unknown>;

const HEADER = { script: 'infisical-secrets.ts', source: DEFAULT_APPS_FILE };
const loadApps = async () => (await loadAppsTable(APPS_FILE)).apps;
const v1alpha1Files = (table: AppsTable) => renderBackend(table, 'infisical-v1alpha1', HEADER);
const v1alpha1Stream = (table: AppsTable) => renderStream(v1alpha1Files(table), HEADER);

const identityApps = (): RuntimeApp[] => {
  const table = tableData();
  appOf(table, 'grafana').auth = {
    universalAuth: {
      credentialsRef: { secretName: 'infisical-universal-auth', secretNamespace: 'infisical' },
    },
  };
  Object.assign(appOf(table, 'harbor'), {
    projectId: '3f0a8c52-6c1e-4a8e-9d0b-7a1f2b3c4d5e',
    auth: {
      kubernetesAuth: {
        identityId: '47aef6c1-bdeb-40fa-be46-63bbcfe6a4df',
        serviceAccountRef: { name: 'infisical-opera-controller-manager', namespace: 'infisical' },
        autoCreateServiceAccountToken: true,
        serviceAccountTokenAudiences: ['infisical'],
      },
    },
  });
  return resolveAppsTable(table, 'apps.yaml').apps;
};

describe('the apps table', () => {
  it('holds the design page apps, keys documented, serviceToken scopes without a project', async () => {
    const apps = await loadApps();
    expect(apps.map((a) => [a.path, a.namespace, a.secret, a.keys.map((k) => k.key)])).toEqual([
      ['/grafana', 'grafana', 'grafana-admin', ['ADMIN_PASSWORD']],
      ['/harbor', 'harbor', 'harbor-admin', ['HARBOR_ADMIN_PASSWORD']],
      ['/n8n', 'n8n', 'n8n-db', ['DB_PASSWORD', 'N8N_ENCRYPTION_KEY']],
      ['/rancher', 'cattle-system', 'rancher-bootstrap', ['BOOTSTRAP_PASSWORD']],
      ['/netbird', 'netbird', 'netbird-setup-key', ['NETBIRD_SETUP_KEY']],
    ]);
    for (const app of apps) {
      expect(app).toMatchObject({
        hostAPI: 'https://infisical.madhan.app/api',
        envSlug: 'prod',
        resyncInterval: 60,
      });
      expect(app.auth?.method).toBe('serviceToken');
      // The CRD's serviceToken.secretsScope has no project field: the default slug (which the v1beta1
      // backend's sources need) must not leak into the CR.
      const auth = infisicalSecretManifest(app).spec as { authentication: { serviceToken: object } };
      expect(auth.authentication.serviceToken).toEqual({
        serviceTokenSecretReference: { secretName: 'infisical-service-token', secretNamespace: 'infisical' },
        secretsScope: { envSlug: 'prod', secretsPath: app.path },
      });
    }
  });

  it('gives identity auth the default projectSlug, and lets an app replace it with projectId', () => {
    const [grafana, harbor] = identityApps();
    expect(grafana?.project).toEqual({ projectSlug: 'homelab-prod' });
    expect(harbor?.project).toEqual({ projectId: '3f0a8c52-6c1e-4a8e-9d0b-7a1f2b3c4d5e' });
  });

  it('reports every problem of a mutated table at once, each naming the app and the field', () => {
    const table = tableData();
    // An auth field the CRD lacks (the original's mistake, moved into the auth block).
    (appOf(table, 'grafana').auth as unknown) = {
      serviceToken: {
        serviceTokenSecretReference: { secretName: 'infisical-service-token', secretNamespace: 'infisical' },
        projectSlug: 'homelab-prod',
      },
    };
    appOf(table, 'harbor').path = 'harbor';
    appOf(table, 'n8n').namespace = 'N8N_ns';
    appOf(table, 'rancher').secret = `${'a'.repeat(249)}.bcde`;
    Object.assign(appOf(table, 'netbird-peer'), {
      projectSlug: 'homelab-prod',
      projectId: 'abc',
      auth: { universalAuth: { credentialsRef: { secretName: 'ua', secretNamespace: 'infisical' } } },
      colour: 'blue',
    });
    table.extra = {};
    const problems = tableProblems(table);
    const expected = [
      /^apps\.grafana\.auth\.serviceToken\.projectSlug: not a field of serviceToken in the InfisicalSecret CRD/,
      /^apps\.harbor\.path: "harbor" must start with "\/"/,
      /^apps\.n8n\.namespace: "N8N_ns" is not a DNS-1123 label/,
      /^apps\.rancher\.secret: .* 254 characters; a DNS-1123 subdomain has at most 253/,
      /^apps\.netbird-peer\.projectId: projectSlug and projectId are both set/,
      /^apps\.netbird-peer\.colour: unknown field/,
      /^extra: unknown field/,
    ];
    for (const pattern of expected)
      expect(
        problems.some((p) => pattern.test(p)),
        String(pattern),
      ).toBe(true);
    expect(problems).toHaveLength(expected.length);
  });

  it('refuses a namespace over 63 characters and a bad CR name', () => {
    const table = tableData();
    appOf(table, 'grafana').namespace = 'g'.repeat(64);
    appOf(table, 'harbor').name = 'Harbor-Secrets';
    expect(tableProblems(table)).toEqual([
      expect.stringMatching(/^apps\.grafana\.namespace: .* 64 characters; a DNS-1123 label has at most 63/),
      expect.stringMatching(/^apps\.harbor\.name: "Harbor-Secrets" is not a DNS-1123 subdomain/),
    ]);
  });

  it('refuses duplicate (namespace, name) and two CRs managing one Secret', () => {
    const table = tableData();
    Object.assign(appOf(table, 'harbor'), { namespace: 'grafana', secret: 'grafana-admin' });
    Object.assign(appOf(table, 'n8n'), { namespace: 'grafana', name: 'grafana-admin', secret: 'n8n-db' });
    expect(tableProblems(table)).toEqual([
      'apps.harbor.name: resource grafana/grafana-admin is also used by app grafana',
      'apps.harbor.secret: managed Secret grafana/grafana-admin is also used by app grafana',
      'apps.n8n.name: resource grafana/grafana-admin is also used by app grafana',
    ]);
  });

  it('refuses two apps whose output files would share a name', () => {
    const table = tableData();
    Object.assign(appOf(table, 'grafana'), { namespace: 'a-b', name: 'c' });
    Object.assign(appOf(table, 'harbor'), { namespace: 'a', name: 'b-c' });
    expect(tableProblems(table)).toEqual([
      'apps.harbor.name: output file a-b-c.yaml is also used by app grafana',
    ]);
  });

  it('refuses unsupported methods, non-CRD fields and repeated keys in the table', () => {
    const table = tableData();
    appOf(table, 'n8n').auth = { ldapAuth: {} };
    appOf(table, 'rancher').auth = { kubernetesAuth: { identityId: 'id', secretsScope: {} } };
    appOf(table, 'netbird-peer').keys = ['NETBIRD_SETUP_KEY', 'NETBIRD_SETUP_KEY', 'bad key'];
    expect(tableProblems(table)).toEqual([
      expect.stringMatching(
        /^apps\.n8n\.auth\.ldapAuth: the CRD has this method but this table does not support it/,
      ),
      expect.stringMatching(/^apps\.rancher\.auth\.kubernetesAuth\.secretsScope: not set here/),
      'apps.rancher.auth.kubernetesAuth.serviceAccountRef: missing',
      'apps.netbird-peer.keys.NETBIRD_SETUP_KEY: "NETBIRD_SETUP_KEY" is listed twice',
      expect.stringMatching(/^apps\.netbird-peer\.keys\.bad key: "bad key" is not a valid Secret key/),
    ]);
  });

  it('v1alpha1 needs a project for identity auth, refuses one on serviceToken, and refuses renames and files', () => {
    const table = tableData();
    delete table.defaults?.projectSlug;
    appOf(table, 'grafana').auth = {
      universalAuth: { credentialsRef: { secretName: 'ua', secretNamespace: 'x' } },
    };
    appOf(table, 'harbor').projectId = 'p-1';
    appOf(table, 'n8n').keys = { N8N_ENCRYPTION_KEY: { from: 'ENCRYPTION_KEY', generate: 'hex 32' } };
    appOf(table, 'rancher').delivery = 'files';
    expect(backendRefusals(table, 'infisical-v1alpha1')).toEqual([
      'apps.grafana.projectSlug: missing: auth universalAuth needs exactly one of projectSlug or projectId (here or in defaults)',
      expect.stringMatching(
        /^apps\.harbor\.projectId: the CRD's serviceToken\.secretsScope has no project field/,
      ),
      expect.stringMatching(
        /^apps\.n8n\.keys\.N8N_ENCRYPTION_KEY\.from: the design page's InfisicalSecret copies keys as named/,
      ),
      expect.stringMatching(/^apps\.rancher\.delivery: files-only delivery needs the CSI driver/),
    ]);
  });

  it('refuses YAML that repeats an app id rather than letting the second win', () => {
    expect(() => parseAppsTable('apps:\n  a: {}\n  a: {}\n', 't.yaml')).toThrow(
      /t\.yaml has 1 problem:[\s\S]*Map keys must be unique/,
    );
  });
});

const crdDir = requireShared('reference/infisical', 'validating InfisicalSecrets against the real CRD');

describe.skipIf(!crdDir)('rendered CRs against the real InfisicalSecret CRD', () => {
  const crd = () =>
    parse(readFileSync(join(crdDir as string, 'secrets.infisical.com_infisicalsecrets.yaml'), 'utf8'));

  it('accepts every CR rendered from the table, and the identity-auth variants', async () => {
    const apps = [...(await loadApps()), ...identityApps()];
    for (const app of apps) {
      expect(validateCustomResource(crd(), infisicalSecretManifest(app)), app.id).toEqual([]);
    }
    // The stream as written, re-parsed: what Argo CD would read.
    const docs = parseAllDocuments(v1alpha1Stream(await loadAppsTable(APPS_FILE)));
    expect(docs).toHaveLength(5);
    for (const doc of docs) expect(validateCustomResource(crd(), doc.toJS())).toEqual([]);
  });

  it('rejects what the API server would: the original projectSlug, wrong types, missing required fields', async () => {
    const [grafana] = await loadApps();
    const cr = JSON.parse(JSON.stringify(infisicalSecretManifest(grafana as RuntimeApp)));
    cr.spec.authentication.serviceToken.secretsScope.projectSlug = 'homelab-prod';
    cr.spec.resyncInterval = '60';
    delete cr.spec.managedSecretReference.secretNamespace;
    cr.spec.syncConfig = { resyncInterval: 60 };
    cr.metadata.name = 'Grafana';
    cr.metadata.uid = 'x';
    cr.spec.tokenSecretReference = { secretName: 'a', secretNamespace: 'b', extra: true };
    expect(
      validateCustomResource(crd(), cr)
        .map((p) => p.path)
        .sort(),
    ).toEqual([
      'metadata.name',
      'metadata.uid',
      'spec.authentication.serviceToken.secretsScope.projectSlug',
      'spec.managedSecretReference.secretNamespace',
      'spec.resyncInterval',
      'spec.syncConfig.resyncInterval',
      'spec.tokenSecretReference.extra',
    ]);
    expect(validateCustomResource(crd(), { ...cr, apiVersion: 'secrets.infisical.com/v1beta1' })).toEqual([
      expect.objectContaining({ path: 'apiVersion' }),
    ]);
  });

  it('checks enums, patterns and formats where the CRD has them (status conditions)', async () => {
    const [grafana] = await loadApps();
    const cr = {
      ...infisicalSecretManifest(grafana as RuntimeApp),
      status: {
        conditions: [
          {
            lastTransitionTime: 'yesterday',
            message: '',
            reason: 'bad reason',
            status: 'Maybe',
            type: 'Ready',
          },
        ],
      },
    };
    expect(validateCustomResource(crd(), cr)).toEqual([
      { path: 'status.conditions[0].lastTransitionTime', message: 'is not a valid date-time' },
      { path: 'status.conditions[0].reason', message: expect.stringMatching(/^does not match/) },
      { path: 'status.conditions[0].status', message: 'must be one of True, False, Unknown' },
    ]);
  });
});

describe('the schema validator itself', () => {
  const schema: Schema = {
    type: 'object',
    required: ['a'],
    properties: {
      a: { type: 'integer', format: 'int32', minimum: 1 },
      open: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      map: { type: 'object', additionalProperties: { type: 'string' } },
      closed: { type: 'object' },
      list: { type: 'array', items: { type: 'string', enum: ['x'] } },
    },
  };

  it('allows unknown fields only where the schema preserves them', () => {
    expect(validateSchema({ a: 1, open: { any: 1 }, map: { k: 'v' }, list: ['x'] }, schema)).toEqual([]);
    expect(validateSchema({ a: 0.5, closed: { k: 1 }, map: { k: 1 }, list: ['y'], b: null }, schema)).toEqual(
      [
        { path: 'a', message: 'must be integer (got number)' },
        { path: 'closed.k', message: expect.stringMatching(/^unknown field/) },
        { path: 'map.k', message: 'must be string (got integer)' },
        { path: 'list[0]', message: 'must be one of x' },
        { path: 'b', message: expect.stringMatching(/^unknown field/) },
      ],
    );
    expect(validateSchema({}, schema)).toEqual([{ path: 'a', message: 'required field is missing' }]);
  });

  it('refuses to judge a schema keyword it does not implement', () => {
    expect(() => validateSchema({}, { anyOf: [] } as unknown as Schema)).toThrow(UnsupportedSchemaError);
  });
});

describe('--check', () => {
  it('fails on a Secret and names the file and document; passes on rendered output', async () => {
    const out = tempDir();
    const r1 = await runScript(SCRIPT, ['--out', out, '--check', out], env());
    expect(r1.exitCode, r1.stderr).toBe(0);
    expect(r1.stdout).toContain('passed: 5 file(s), 5 document(s), 5 InfisicalSecret(s)');

    writeFileSync(
      join(out, 'leak.yaml'),
      '# stray\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: grafana-admin, namespace: grafana}\nstringData: {ADMIN_PASSWORD: x}\n',
    );
    const r2 = await runScript(SCRIPT, ['--check', out], env());
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr).toContain(`${join(out, 'leak.yaml')} (document 2): Secret grafana/grafana-admin:`);
    expect(r2.stderr).toContain('CDK8s generates zero Secret resources');
    expect(r2.stderr).not.toContain('grafana-grafana-admin.yaml');
  });

  it('looks into Lists, JSON and subdirectories, and flags a missing annotation and unparsable files', async () => {
    const dir = tempDir();
    const sub = join(dir, 'nested');
    const rendered = v1alpha1Files(await loadAppsTable(APPS_FILE))[0]?.content ?? '';
    writeFileSync(join(dir, 'ok.yaml'), rendered);
    mkdirSync(sub);
    writeFileSync(
      join(sub, 'list.json'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } }],
      }),
    );
    writeFileSync(join(sub, 'no-annotation.yml'), rendered.replace(/ {2}annotations:\n.*\n/, ''));
    writeFileSync(join(sub, 'broken.yaml'), 'a: [\n');
    writeFileSync(join(sub, 'notes.txt'), 'kind: Secret\n');
    const report = await checkManifests(dir);
    expect(
      report.offences.map((o) => [o.file.slice(dir.length + 1), o.document, o.item, o.problem.slice(0, 25)]),
    ).toEqual([
      ['nested/broken.yaml', undefined, undefined, 'cannot be parsed: Flow se'],
      ['nested/list.json', 1, 'items[0]', 'rendered output holds no '],
      ['nested/no-annotation.yml', 1, undefined, 'lacks the annotation argo'],
    ]);
    expect(report).toMatchObject({ files: 4, infisicalSecrets: 2 });
  });

  it('is a usage error for a directory that does not exist', async () => {
    const r = await runScript(SCRIPT, ['--check', join(tempDir(), 'missing')], env());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/error: --check: .*missing does not exist/);
  });
});

describe('deterministic output', () => {
  it('renders the same bytes twice, in the library and from the CLI', async () => {
    const first = v1alpha1Stream(await loadAppsTable(APPS_FILE));
    const second = v1alpha1Stream(await loadAppsTable(APPS_FILE));
    expect(second).toBe(first);
    const [a, b] = await Promise.all([runScript(SCRIPT, [], env()), runScript(SCRIPT, [], env())]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    // The CLI prints exactly the library's stream (execa strips the final newline).
    expect(`${a.stdout}\n`).toBe(first);
  });

  it('--out twice leaves byte-identical files and reports them unchanged', async () => {
    const out = tempDir();
    const r1 = await runScript(SCRIPT, ['--out', out], env());
    const bytes = readdirSync(out).map((f) => readFileSync(join(out, f)));
    const r2 = await runScript(SCRIPT, ['--out', out], env());
    expect([r1.exitCode, r2.exitCode]).toEqual([0, 0]);
    expect(readdirSync(out).map((f) => readFileSync(join(out, f)))).toEqual(bytes);
    expect(r2.stdout.match(/^unchanged/gm)).toHaveLength(5);
  });
});

describe('the CLI', () => {
  it('--out writes one <namespace>-<name>.yaml per app, each one InfisicalSecret', async () => {
    const out = join(tempDir(), 'app');
    const r = await runScript(SCRIPT, ['--out', out, '--json'], env());
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      'cattle-system-rancher-bootstrap.yaml',
      'grafana-grafana-admin.yaml',
      'harbor-harbor-admin.yaml',
      'n8n-n8n-db.yaml',
      'netbird-netbird-setup-key.yaml',
    ]);
    const grafana = parse(readFileSync(join(out, 'grafana-grafana-admin.yaml'), 'utf8'));
    expect(grafana).toEqual({
      apiVersion: 'secrets.infisical.com/v1alpha1',
      kind: 'InfisicalSecret',
      metadata: {
        name: 'grafana-admin',
        namespace: 'grafana',
        labels: { 'app.kubernetes.io/managed-by': 'secrets-flow' },
        annotations: { 'argocd.argoproj.io/sync-options': 'ServerSideApply=false' },
      },
      spec: {
        hostAPI: 'https://infisical.madhan.app/api',
        resyncInterval: 60,
        authentication: {
          serviceToken: {
            serviceTokenSecretReference: {
              secretName: 'infisical-service-token',
              secretNamespace: 'infisical',
            },
            secretsScope: { envSlug: 'prod', secretsPath: '/grafana' },
          },
        },
        managedSecretReference: {
          secretName: 'grafana-admin',
          secretNamespace: 'grafana',
          creationPolicy: 'Owner',
        },
      },
    });
    const result = JSON.parse(r.stdout);
    expect(result.ok).toBe(true);
    expect(result.apps.map((a: { app: string }) => a.app)).toEqual([
      'grafana',
      'harbor',
      'n8n',
      'rancher',
      'netbird-peer',
    ]);
    expect(result.files).toHaveLength(5);
  });

  it('warns about files it rendered for apps no longer in the table, without deleting them', async () => {
    const out = tempDir();
    writeFileSync(join(out, 'old-app.yaml'), '# Generated by scripts/render-infisical-secrets.ts from x\n');
    writeFileSync(join(out, 'kept.yaml'), 'kind: ConfigMap\n');
    const r = await runScript(SCRIPT, ['--out', out], env());
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`warning: ${join(out, 'old-app.yaml')} was rendered earlier and is no longer`);
    expect(r.stderr).not.toContain('kept.yaml');
    expect(readdirSync(out)).toContain('old-app.yaml');
  });

  it('exits 2 on a bad table, listing each problem', async () => {
    const dir = tempDir();
    const table = tableData();
    appOf(table, 'grafana').path = 'grafana';
    appOf(table, 'harbor').namespace = 'Harbor';
    const file = join(dir, 'apps.yaml');
    writeFileSync(file, JSON.stringify(table));
    const r = await runScript(SCRIPT, ['--apps', file], env());
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('has 2 problems:');
    expect(r.stderr).toContain('apps.grafana.path: "grafana" must start with "/"');
    expect(r.stderr).toContain('apps.harbor.namespace: "Harbor" is not a DNS-1123 label');
  });

  it('--help explains the flags; unknown flags and a missing table are usage errors', async () => {
    const help = await runScript(SCRIPT, ['--help'], env());
    expect(help.exitCode).toBe(0);
    for (const flag of ['--apps FILE', '--out DIR', '--check DIR', '--json', 'Exit codes'])
      expect(help.stdout).toContain(flag);
    const unknown = await runScript(SCRIPT, ['--bogus'], env());
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('--help');
    const missing = await runScript(SCRIPT, ['--apps', join(tempDir(), 'nope.yaml')], env());
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the apps table .*nope\.yaml: no such file/);
  });
});
