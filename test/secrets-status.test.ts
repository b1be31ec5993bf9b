/**
 * `secrets status` end to end: the real script, the real kubectl against the fake API server (its calls
 * logged by a KUBECTL wrapper), and a real loopback sshd holding a host bundle directory (its connections
 * counted in sshd's own log). In sync, a changed value on either side, a host without files, exactly one
 * kubectl get and one SSH connection, and canary values never in any output or argv.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatEnvFile, parseEnvFile } from '../scripts/lib/bifrost/env-file.ts';
import { CONFIG_PLACEHOLDERS, NB_IDP_MGMT_TOKEN } from '../scripts/lib/bifrost/plan.ts';
import { renderBifrostEnvFiles } from '../scripts/lib/bifrost/render-env.ts';
import { renderYamlTemplate } from '../scripts/lib/bifrost/template.ts';
import {
  compareStatus,
  configExpectations,
  NETBIRD_CONFIG,
  placementsOf,
  renderedValues,
} from '../scripts/lib/report/status.ts';
import { type FakeKubeApiServer, startFakeKubeApiServer } from '../scripts/lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { findSshd, type SshdServer, sshCliArgs, startSshd } from './harness/sshd.ts';
import { BUNDLE_SOURCE } from './helpers/bifrost-fixture.ts';
import {
  type BootstrapFixture,
  findLeaks,
  INFISICAL_ONLY_KEYS,
  kubectlEnv,
  makeBootstrapFixture,
} from './helpers/bootstrap-fixture.ts';
import { type CliRun, runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTool } from './helpers/tiers.ts';

const kubectl = requireTool('kubectl', 'secrets status against the fake API server with the real kubectl');
const sshd = findSshd('secrets status against a loopback sshd');

interface Row {
  key: string;
  place: string;
  name: string;
  state: string;
  source?: { length: number; fingerprint?: string };
  live?: { length: number; fingerprint?: string };
}

const TOKEN = 'CANARY-idp-mgmt-token-0123456789abcdef';

/**
 * The cluster tests name their backend: the repository's own apps table (these runs start in the
 * project directory) must not decide which Secrets are compared.
 */
const V1ALPHA1 = ['--backend', 'infisical-v1alpha1'];

/** Every fixture dir a test makes is removed after it, whatever the test's outcome. */
const tempDirs: string[] = [];
afterEach(() => {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
async function fixture(opts?: Parameters<typeof makeBootstrapFixture>[0]): Promise<BootstrapFixture> {
  const f = await makeBootstrapFixture(opts);
  tempDirs.push(f.dir);
  return f;
}

/** The fixture, a kubeconfig for the fake server, and a KUBECTL wrapper logging each call's argv. */
async function setUp(server: FakeKubeApiServer | undefined) {
  const f = await fixture();
  const kubeconfig = server
    ? await writeKubeconfig({ dir: f.dir, server: server.url, name: 'sandbox' })
    : join(f.dir, 'none');
  const log = join(f.dir, 'kubectl-calls.log');
  const wrapper = join(f.binDir, 'kubectl-logged');
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${kubectl}' "$@"\n`, {
    mode: 0o755,
  });
  writeFileSync(log, '');
  const env = kubectlEnv(f, wrapper);
  return {
    f,
    kubeconfig,
    log,
    env,
    kubectlCalls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

const rowsOf = (run: CliRun): Row[] => JSON.parse(run.stdout).rows;
const stateOf = (rows: Row[], place: string, name: string) =>
  rows.find((r) => r.place === place && r.name === name)?.state;

function expectNoLeaks(values: Record<string, string>, ...texts: string[]) {
  for (const t of texts) expect(findLeaks(t, values)).toEqual([]);
}

/** A host bundle dir holding what provision + the engine would have written for `values`. */
function hostDir(
  server: SshdServer,
  root: string,
  name: string,
  values: Record<string, string> | undefined,
): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'netbird'), { recursive: true });
  if (values) {
    const { secretsEnv, dotEnv } = renderBifrostEnvFiles(values);
    writeFileSync(
      join(dir, '.secrets.env'),
      `${secretsEnv}${formatEnvFile([{ name: NB_IDP_MGMT_TOKEN, value: TOKEN }])}`,
      { mode: 0o600 },
    );
    writeFileSync(join(dir, '.env'), dotEnv, { mode: 0o600 });
    const template = readFileSync(join(BUNDLE_SOURCE, 'netbird/config.yaml.tmpl'), 'utf8');
    const config = renderYamlTemplate(
      template,
      {
        NB_RELAY_SECRET: values.NB_RELAY_SECRET,
        NB_DATA_STORE_KEY: values.NB_DATA_STORE_KEY,
        // The engine fills it from .secrets.env: the hash provisioning rendered there.
        NB_OWNER_PASSWORD_HASH: parseEnvFile(secretsEnv).get('NB_OWNER_PASSWORD_HASH'),
        [NB_IDP_MGMT_TOKEN]: TOKEN,
      },
      { allowed: CONFIG_PLACEHOLDERS, file: 'config.yaml.tmpl' },
    );
    writeFileSync(join(dir, 'netbird/config.yaml'), config, { mode: 0o600 });
  }
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', server.user, dir]);
  return dir;
}

const loginCount = (server: SshdServer) => (server.log.match(/Accepted publickey for /g) ?? []).length;

/** sshd's log arrives on its own pipe: wait (bounded) until it shows at least `n` logins. */
async function waitForLogins(server: SshdServer, n: number): Promise<number> {
  for (let i = 0; i < 100 && loginCount(server) < n; i++) await new Promise((r) => setTimeout(r, 50));
  return loginCount(server);
}

describe('compareStatus and the NetBird config reader (pure)', () => {
  const live = new Map([
    ['infisical-secrets', { DB_PASSWORD: 'same-value', REDIS_PASSWORD: 'other-value' }],
    ['cloudflare-api-token', undefined],
  ] as const);
  const row = (place: 'infisical-secrets' | 'cloudflare-api-token', name: string, expected?: string) =>
    compareStatus([{ key: 'K', place, name, expected }], live)[0];

  it('in sync, differs, missing, not deployed, not set; never a value in a row', () => {
    expect(row('infisical-secrets', 'DB_PASSWORD', 'same-value')?.state).toBe('in sync');
    expect(row('infisical-secrets', 'REDIS_PASSWORD', 'wanted-value')?.state).toBe('differs');
    expect(row('infisical-secrets', 'AUTH_SECRET', 'wanted-value')?.state).toBe('missing');
    expect(row('cloudflare-api-token', 'CLOUDFLARE_API_TOKEN', 'wanted-value')?.state).toBe('not deployed');
    expect(row('cloudflare-api-token', 'CLOUDFLARE_API_TOKEN')?.state).toBe('not set');
    expect(row('infisical-secrets', 'AUTH_SECRET')?.state).toBe('not set');
    // Deployed without a value in the SOPS file: not in sync.
    expect(row('infisical-secrets', 'DB_PASSWORD')?.state).toBe('differs');
    const text = JSON.stringify(row('infisical-secrets', 'REDIS_PASSWORD', 'wanted-value'));
    expect(text).not.toContain('wanted-value');
    expect(text).not.toContain('other-value');
    expect(text).toContain('"length":12');
  });

  it("reads each placeholder's value back from the rendered config, whole scalar or inside a string", () => {
    const template = 'a:\n  whole: "${NB_RELAY_SECRET}"\n  list:\n    - "pre-${NB_DATA_STORE_KEY}-post"\n';
    const placements = placementsOf(template);
    expect(placements.map((p) => p.path.join('.'))).toEqual(['a.whole', 'a.list.0']);
    const rendered = { a: { whole: 'relay "q" \\ $x', list: ['pre-st:ore-post'] } };
    expect(renderedValues(placements, rendered)).toEqual({
      'a.whole': 'relay "q" \\ $x',
      'a.list.0': 'st:ore',
    });
    expect(renderedValues(placements, { a: { list: ['changed'] } })).toEqual({});
    const rows = compareStatus(
      configExpectations(
        placements,
        { NB_RELAY_SECRET: 'relay "q" \\ $x', NB_DATA_STORE_KEY: 'other' },
        undefined,
      ),
      new Map([[NETBIRD_CONFIG, renderedValues(placements, rendered)]]),
    );
    expect(rows.map((r) => `${r.key} ${r.state}`)).toEqual([
      'NB_RELAY_SECRET in sync',
      'NB_DATA_STORE_KEY differs',
    ]);
  });
});

describe.skipIf(!kubectl)('secrets status: the cluster', () => {
  let server: FakeKubeApiServer;
  beforeAll(async () => {
    server = await startFakeKubeApiServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Creates the Secrets from `f` with create-bootstrap-secrets (the real kubectl). */
  async function createSecrets(f: BootstrapFixture, kubeconfig: string, backend = V1ALPHA1) {
    const r = await runScript(
      'create-bootstrap-secrets.ts',
      ['--secrets-file', f.secretsFile, '--kubeconfig', kubeconfig, ...backend],
      kubectlEnv(f, kubectl as string),
    );
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  }

  it('all in sync: exit 0, one kubectl get, the host skipped and said so, no value anywhere', async () => {
    const s = await setUp(server);
    await createSecrets(s.f, s.kubeconfig);
    const run = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, ...V1ALPHA1, '--json'],
      s.env,
    );
    expect(run.stderr).not.toMatch(/^error:/m);
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.ok).toBe(true);
    expect(result.hosts).toEqual([]);
    expect(result.hostSkipped).toBe('no --host given');
    expect(run.stderr).toContain('host     skipped (no --host given)');
    const rows: Row[] = result.rows;
    expect(rows.map((r) => `${r.place}/${r.name}`)).toEqual([
      'cloudflare-api-token/CLOUDFLARE_API_TOKEN',
      'infisical-secrets/DB_PASSWORD',
      'infisical-secrets/DB_CONNECTION_URI',
      'infisical-secrets/ENCRYPTION_KEY',
      'infisical-secrets/AUTH_SECRET',
      'infisical-secrets/REDIS_PASSWORD',
      'infisical-service-token/infisicalToken',
    ]);
    expect(new Set(rows.map((r) => r.state))).toEqual(new Set(['in sync']));
    const redis = rows.find((r) => r.name === 'REDIS_PASSWORD');
    expect(redis?.source?.fingerprint).toMatch(/^hmac:[0-9a-f]{8}$/);
    expect(redis?.live).toEqual(redis?.source);
    expect(s.kubectlCalls()).toHaveLength(1);
    expect(s.kubectlCalls()[0]).toMatch(/ get -f - .*-o go-template=/);
    expectNoLeaks(s.f.values, run.stdout, run.stderr, readFileSync(s.log, 'utf8'));

    // The human table: the same rows, states and fingerprints, no value.
    const human = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, ...V1ALPHA1],
      s.env,
    );
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(
      /REDIS_PASSWORD\s+Secret infisical\/infisical-secrets\s+REDIS_PASSWORD\s+in sync\s+\d+ chars hmac:/,
    );
    expectNoLeaks(s.f.values, human.stdout, human.stderr);
  }, 60_000);

  it('one value changed in the cluster: that row differs, the others stay in sync, exit 1', async () => {
    const s = await setUp(server);
    const changed = await fixture({
      values: { ...s.f.values, REDIS_PASSWORD: 'CANARY-redis-changed-in-cluster-0123' },
    });
    await createSecrets(changed, s.kubeconfig);
    const run = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, ...V1ALPHA1, '--json'],
      s.env,
    );
    expect(run.exitCode).toBe(1);
    const rows = rowsOf(run);
    expect(stateOf(rows, 'infisical-secrets', 'REDIS_PASSWORD')).toBe('differs');
    expect(rows.filter((r) => r.state !== 'in sync').map((r) => r.name)).toEqual(['REDIS_PASSWORD']);
    const redis = rows.find((r) => r.name === 'REDIS_PASSWORD');
    expect(redis?.live?.fingerprint).not.toBe(redis?.source?.fingerprint);
    expect(run.stderr).toMatch(/error: not in sync: 6 in sync, 1 differs/);
    expect(s.kubectlCalls()).toHaveLength(1);
    expectNoLeaks({ ...s.f.values, changed: 'CANARY-redis-changed-in-cluster-0123' }, run.stdout, run.stderr);
  }, 60_000);

  it('a cluster without the Secrets: not deployed, exit 1; an unreachable cluster: exit 2 with the fix', async () => {
    const empty = await startFakeKubeApiServer();
    try {
      const s = await setUp(empty);
      const run = await runScript(
        'secrets.ts',
        ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, ...V1ALPHA1, '--json'],
        s.env,
      );
      expect(run.exitCode).toBe(1);
      expect(new Set(rowsOf(run).map((r) => r.state))).toEqual(new Set(['not deployed']));
    } finally {
      await empty.close();
    }
    const s = await setUp(server);
    const gone = await writeKubeconfig({ dir: s.f.dir, server: 'http://127.0.0.1:1', name: 'gone' });
    const run = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', gone],
      s.env,
    );
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/cannot read the cluster's Secrets/);
    expect(run.stderr).toMatch(/--no-cluster/);
    expectNoLeaks(s.f.values, run.stdout, run.stderr);
  }, 60_000);

  it('--no-cluster without --host checks nothing: exit 2', async () => {
    const s = await setUp(server);
    const run = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', s.f.secretsFile, '--no-cluster'],
      s.env,
    );
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/nothing to check/);
  }, 60_000);

  it("follows the backend: openbao compares its two Secrets only; the Infisical keys are listed as another backend's", async () => {
    const s = await setUp(server);
    await createSecrets(s.f, s.kubeconfig, ['--backend', 'openbao']);
    const args = ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, '--json'];
    const run = await runScript('secrets.ts', [...args, '--backend', 'openbao'], s.env);
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.cluster.backend).toEqual({ id: 'openbao', from: '--backend' });
    expect(run.stderr).toContain('backend  openbao (--backend)');
    expect(result.rows.map((r: Row) => `${r.place}/${r.name} ${r.state}`)).toEqual([
      'cloudflare-api-token/CLOUDFLARE_API_TOKEN in sync',
      'openbao-unseal-key/unseal-key in sync',
    ]);
    expect(result.otherBackends).toEqual(INFISICAL_ONLY_KEYS);
    expect(run.stderr).toMatch(/^not compared \(not used with backend openbao\): INFISICAL_DB_PASSWORD, /m);
    expect(s.kubectlCalls()).toHaveLength(1);

    // The same cluster read as the default backend's: its machine identity Secret was never created.
    const infisical = await runScript('secrets.ts', [...args, '--backend', 'infisical'], s.env);
    expect(infisical.exitCode).toBe(1);
    const rows = rowsOf(infisical);
    expect(new Set(rows.map((r) => r.place))).toEqual(
      new Set(['infisical-secrets', 'cloudflare-api-token', 'infisical-machine-identity']),
    );
    expect(stateOf(rows, 'infisical-machine-identity', 'identityId')).toBe('not deployed');
    expect(infisical.stderr).toMatch(/create-bootstrap-secrets --backend infisical \(just create-secrets\)/);

    // Without --backend, the apps table in the working directory decides.
    mkdirSync(join(s.f.dir, 'cloud', 'runtime'), { recursive: true });
    writeFileSync(join(s.f.dir, 'cloud', 'runtime', 'apps.yaml'), 'backend: openbao\n');
    const table = await runScript('secrets.ts', args, s.env, { cwd: s.f.dir });
    expect(table.exitCode, table.stderr).toBe(0);
    expect(JSON.parse(table.stdout).cluster.backend).toEqual({
      id: 'openbao',
      from: 'from cloud/runtime/apps.yaml',
    });
    const unknown = await runScript('secrets.ts', [...args, '--backend', 'vault'], s.env);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/use one of infisical, infisical-v1alpha1, openbao/);
    expectNoLeaks(
      s.f.values,
      run.stdout,
      run.stderr,
      infisical.stdout,
      infisical.stderr,
      table.stdout,
      table.stderr,
      readFileSync(s.log, 'utf8'),
    );
  }, 60_000);

  it('no age key: exit 2 before anything is read', async () => {
    const s = await setUp(server);
    const { SOPS_AGE_KEY_FILE: _, ...noKey } = s.env;
    const run = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, ...V1ALPHA1],
      noKey,
    );
    expect(run.exitCode).toBe(2);
    expect(s.kubectlCalls()).toEqual([]);
  }, 60_000);
});

describe.skipIf(!sshd)('secrets status: the host', () => {
  let server: SshdServer;
  let root: string;
  beforeAll(async () => {
    server = await startSshd(sshd as string);
    root = tempDir('sf-status-');
    // sshd logs in as its test user: it must reach and read the bundle dirs made here.
    if (process.getuid?.() === 0) execFileSync('chmod', ['711', root]);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const logins = () => loginCount(server);
  const loginsAtLeast = (n: number) => waitForLogins(server, n);

  async function status(f: BootstrapFixture, dir: string, extra: string[] = []) {
    return runScript(
      'secrets.ts',
      [
        'status',
        '--secrets-file',
        f.secretsFile,
        '--no-cluster',
        ...sshCliArgs(server),
        '--remote-dir',
        dir,
        '--json',
        ...extra,
      ],
      { PATH: f.binDir, HOME: f.home, TMPDIR: f.tmp, SOPS_AGE_KEY_FILE: f.keyFile, NO_COLOR: '1' },
    );
  }

  it('in sync over one SSH connection: every .secrets.env, .env and config.yaml row, exit 0', async () => {
    const f = await fixture();
    const before = logins();
    const run = await status(f, hostDir(server, root, 'in-sync', f.values));
    expect(run.stderr).not.toMatch(/^error:/m);
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.cluster).toEqual({ checked: false, skipped: '--no-cluster' });
    const rows: Row[] = result.rows;
    expect(
      rows.filter((r) => r.place === 'netbird-config').map((r) => `${r.key} ${r.name} ${r.state}`),
    ).toEqual([
      'NB_DATA_STORE_KEY server.store.encryptionKey in sync',
      'NB_RELAY_SECRET server.authSecret in sync',
      // A hash made at another time (another salt) that verifies against the password is in sync.
      'NB_OWNER_PASSWORD server.auth.owner.password in sync',
    ]);
    expect(stateOf(rows, 'bifrost-secrets-env', 'NB_OWNER_PASSWORD_HASH')).toBe('in sync');
    expect(stateOf(rows, 'bifrost-secrets-env', 'CF_DNS_API_TOKEN')).toBe('in sync');
    expect(stateOf(rows, 'bifrost-dot-env', 'AUTHENTIK_SECRET_KEY')).toBe('in sync');
    expect(rows.every((r) => r.state === 'in sync')).toBe(true);
    expect(await loginsAtLeast(before + 1)).toBe(before + 1);
    expectNoLeaks({ ...f.values, TOKEN }, run.stdout, run.stderr);
  }, 60_000);

  it('a changed value in the host .secrets.env: that row differs, exit 1', async () => {
    const f = await fixture();
    const dir = hostDir(server, root, 'changed', { ...f.values, NB_PROXY_TOKEN: `nbx_${'Q'.repeat(36)}` });
    const run = await status(f, dir);
    expect(run.exitCode).toBe(1);
    const rows = rowsOf(run);
    expect(rows.filter((r) => r.state !== 'in sync').map((r) => `${r.place} ${r.name} ${r.state}`)).toEqual([
      'bifrost-secrets-env NB_PROXY_TOKEN differs',
    ]);
    expectNoLeaks({ ...f.values, TOKEN, changed: `nbx_${'Q'.repeat(36)}` }, run.stdout, run.stderr);
  }, 60_000);

  it("the owner's hash on the host of another password: its .secrets.env and config rows differ, exit 1", async () => {
    const f = await fixture();
    const other = `${f.values.NB_OWNER_PASSWORD}-other`;
    const run = await status(f, hostDir(server, root, 'owner', { ...f.values, NB_OWNER_PASSWORD: other }));
    expect(run.exitCode).toBe(1);
    expect(
      rowsOf(run)
        .filter((r) => r.state !== 'in sync')
        .map((r) => `${r.place} ${r.name} ${r.state}`),
    ).toEqual([
      'bifrost-secrets-env NB_OWNER_PASSWORD_HASH differs',
      'netbird-config server.auth.owner.password differs',
    ]);
    expectNoLeaks({ ...f.values, TOKEN, other }, run.stdout, run.stderr);
  }, 60_000);

  it('a host without the files: every host row not deployed, exit 1', async () => {
    const f = await fixture();
    const run = await status(f, hostDir(server, root, 'empty', undefined));
    expect(run.exitCode).toBe(1);
    const rows = rowsOf(run);
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((r) => r.state))).toEqual(new Set(['not deployed']));
    expectNoLeaks(f.values, run.stdout, run.stderr);
  }, 60_000);

  it('--host twice: each host read over its own one connection, its rows named by host', async () => {
    const f = await fixture();
    const dir = hostDir(server, root, 'two-hosts', f.values);
    const before = logins();
    const run = await status(f, dir, ['--host', server.host]);
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.hosts.map((h: { host: string }) => h.host)).toEqual([server.host, server.host]);
    const rows: (Row & { host?: string; where: string })[] = result.rows;
    const hostRows = rows.filter((r) => r.host !== undefined);
    expect(hostRows.length).toBeGreaterThan(0);
    expect(hostRows.length % 2).toBe(0);
    expect(hostRows.every((r) => r.where.startsWith(`${server.host} `))).toBe(true);
    expect(await loginsAtLeast(before + 2)).toBe(before + 2);
    expectNoLeaks({ ...f.values, TOKEN }, run.stdout, run.stderr);
  }, 60_000);

  it('an unreachable host: exit 2 with what to do', async () => {
    const f = await fixture();
    const args = sshCliArgs(server);
    args[args.indexOf('--port') + 1] = '1';
    const run = await runScript(
      'secrets.ts',
      ['status', '--secrets-file', f.secretsFile, '--no-cluster', ...args, '--remote-dir', '/nonexistent'],
      { PATH: f.binDir, HOME: f.home, TMPDIR: f.tmp, SOPS_AGE_KEY_FILE: f.keyFile, NO_COLOR: '1' },
    );
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/cannot reach the host: .*connection refused/);
    expect(run.stderr).toMatch(/leave --host out/);
  }, 60_000);
});

describe.skipIf(!kubectl || !sshd)('secrets status: cluster and host in one run', () => {
  let api: FakeKubeApiServer;
  let server: SshdServer;
  let root: string;
  beforeAll(async () => {
    api = await startFakeKubeApiServer();
    server = await startSshd(sshd as string);
    root = tempDir('sf-status-both-');
    if (process.getuid?.() === 0) execFileSync('chmod', ['711', root]);
  }, 60_000);
  afterAll(async () => {
    await api?.close();
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('one kubectl get and one SSH connection; no canary in stdout, stderr or any kubectl argv', async () => {
    const s = await setUp(api);
    const created = await runScript(
      'create-bootstrap-secrets.ts',
      ['--secrets-file', s.f.secretsFile, '--kubeconfig', s.kubeconfig, ...V1ALPHA1],
      s.env,
    );
    expect(created.exitCode).toBe(0);
    writeFileSync(s.log, '');
    const dir = hostDir(server, root, 'both', {
      ...s.f.values,
      AUTHENTIK_SECRET_KEY: 'CANARY-host-only-aksk-0123456789',
    });
    const before = loginCount(server);
    const run = await runScript(
      'secrets.ts',
      [
        'status',
        '--secrets-file',
        s.f.secretsFile,
        '--kubeconfig',
        s.kubeconfig,
        ...V1ALPHA1,
        ...sshCliArgs(server),
        '--remote-dir',
        dir,
        '--json',
      ],
      s.env,
    );
    expect(run.exitCode).toBe(1);
    const rows = rowsOf(run);
    expect(rows.filter((r) => r.state !== 'in sync').map((r) => `${r.place} ${r.name} ${r.state}`)).toEqual([
      'bifrost-dot-env AUTHENTIK_SECRET_KEY differs',
    ]);
    expect(new Set(rows.map((r) => r.place))).toEqual(
      new Set([
        'cloudflare-api-token',
        'infisical-secrets',
        'infisical-service-token',
        'bifrost-secrets-env',
        'bifrost-dot-env',
        'netbird-config',
      ]),
    );
    expect(s.kubectlCalls()).toHaveLength(1);
    expect(await waitForLogins(server, before + 1)).toBe(before + 1);
    expectNoLeaks(
      { ...s.f.values, TOKEN, hostOnly: 'CANARY-host-only-aksk-0123456789' },
      run.stdout,
      run.stderr,
      readFileSync(s.log, 'utf8'),
    );
    expect(readdirSync(s.f.tmp).filter((n) => !n.startsWith('tsx-'))).toEqual([]);
  }, 60_000);
});
