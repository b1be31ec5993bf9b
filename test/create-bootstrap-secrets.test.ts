/**
 * create-bootstrap-secrets end to end, as operators and CI run it: the real script in its own process,
 * a fake kubectl that records argv and stdin, canary values in a SOPS file made with a fresh age key.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  type BootstrapFixture,
  findLeaks,
  INFISICAL_ONLY_KEYS,
  makeBootstrapFixture,
} from './helpers/bootstrap-fixture.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';

const FAKE_KUBECTL = resolve(PROJECT_ROOT, 'scripts/lib/sandbox/fake-kubectl');
const SCRIPT = 'create-bootstrap-secrets.ts';

interface KubectlCall {
  argv: string[];
  stdin: string;
}

function envFor(f: BootstrapFixture, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: f.binDir,
    HOME: f.home,
    TMPDIR: f.tmp,
    KUBECTL: FAKE_KUBECTL,
    FAKE_KUBECTL_LOG: join(f.dir, 'kubectl-log'),
    SOPS_AGE_KEY_FILE: f.keyFile,
    NO_COLOR: '1',
    ...extra,
  };
}

/**
 * The script, run in an empty directory of the test's own (its parent's TMPDIR): no apps table there,
 * so the backend is `--backend` or the suite's default, whatever the repository's own table says.
 */
function cli(args: readonly string[], env: Record<string, string>, opts: { cwd?: string } = {}) {
  if (!env.TMPDIR) throw new Error('cli() runs in the fixture directory, the parent of its TMPDIR');
  return runScript(SCRIPT, args, env, { cwd: opts.cwd ?? dirname(env.TMPDIR) });
}

function kubectlCalls(f: BootstrapFixture): KubectlCall[] {
  const dir = join(f.dir, 'kubectl-log');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.argv'))
    .sort()
    .map((name) => ({
      argv: readFileSync(join(dir, name), 'utf8').replace(/\n$/, '').split('\n'),
      stdin: readFileSync(join(dir, name.replace(/\.argv$/, '.stdin')), 'utf8'),
    }));
}

function expectNoLeaks(f: BootstrapFixture, ...texts: string[]) {
  for (const text of texts) expect(findLeaks(text, f.values)).toEqual([]);
  // Nothing may be left in TMPDIR or HOME by the run, except tsx's cache of compiled project sources,
  // which must hold no canary either.
  expect(readdirSync(f.tmp).filter((name) => !name.startsWith('tsx-'))).toEqual([]);
  expect(readdirSync(f.home)).toEqual([]);
  for (const file of readdirSync(f.tmp, { recursive: true, withFileTypes: true })) {
    if (file.isFile())
      expect(findLeaks(readFileSync(join(file.parentPath, file.name), 'utf8'), f.values)).toEqual([]);
  }
}

describe('create-bootstrap-secrets with a recording kubectl', () => {
  it('reads the live Secrets with one kubectl get, then applies in one server-side call, values only on stdin', async () => {
    const f = await makeBootstrapFixture();
    // infisical-v1alpha1: exactly the three Secrets the command made before backends existed.
    const run = await cli(['--secrets-file', f.secretsFile, '--backend', 'infisical-v1alpha1'], envFor(f));
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    const calls = kubectlCalls(f);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.argv.slice(0, 5)).toEqual([
      'get',
      '-f',
      '-',
      '--ignore-not-found',
      '--request-timeout=30s',
    ]);
    expect(calls[0]?.argv[5]).toBe('-o');
    expect(calls[0]?.argv[6]).toMatch(/^go-template=/);
    // The get names the Secrets and carries no value.
    const stubs = parseAllDocuments(calls[0]?.stdin ?? '').map((d) => d.toJS());
    expect(stubs).toEqual([
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'infisical-secrets', namespace: 'infisical' } },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'cloudflare-api-token', namespace: 'cert-manager' },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'infisical-service-token', namespace: 'infisical' },
      },
    ]);
    expect(calls[1]?.argv).toEqual([
      'apply',
      '--server-side',
      '--field-manager=secrets-flow',
      '--force-conflicts',
      '-f',
      '-',
    ]);
    const docs = parseAllDocuments(calls[1]?.stdin ?? '').map((d) => d.toJS());
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      'Namespace/cert-manager',
      'Namespace/infisical',
      'Secret/infisical-secrets',
      'Secret/cloudflare-api-token',
      'Secret/infisical-service-token',
    ]);
    const decode = (d: { data: Record<string, string> }) =>
      Object.fromEntries(
        Object.entries(d.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
      );
    expect(decode(docs[2])).toEqual({
      DB_PASSWORD: f.values.INFISICAL_DB_PASSWORD,
      DB_CONNECTION_URI: `postgresql://infisical:${encodeURIComponent(f.values.INFISICAL_DB_PASSWORD ?? '')}@postgresql:5432/infisical`,
      ENCRYPTION_KEY: f.values.INFISICAL_ENCRYPTION_KEY,
      AUTH_SECRET: f.values.INFISICAL_AUTH_SECRET,
      REDIS_PASSWORD: f.values.REDIS_PASSWORD,
    });
    expect(decode(docs[3])).toEqual({ CLOUDFLARE_API_TOKEN: f.values.CLOUDFLARE_API_TOKEN });
    expect(decode(docs[4])).toEqual({ infisicalToken: f.values.INFISICAL_SERVICE_TOKEN });
    for (const d of docs.slice(2)) {
      expect(d.metadata.annotations['argocd.argoproj.io/sync-options']).toBe('Prune=false');
      expect(d.stringData).toBeUndefined();
    }
    expect(run.stdout).toContain('source  ');
    expect(run.stdout.split('\n')[1]).toBe('backend infisical-v1alpha1 (--backend)');
    expect(run.stdout).not.toMatch(/machine-identity|openbao/);
    // Nothing exists yet (the recording kubectl's get prints nothing): every key is added.
    expect(run.stdout).toContain('secret  infisical/infisical-secrets: will be created');
    expect(run.stdout).toMatch(
      /^ +DB_PASSWORD \(\d+ chars, hmac:[0-9a-f]{8}\) from INFISICAL_DB_PASSWORD: added$/m,
    );
    expect(run.stdout).toMatch(
      /^applied: changed 3 of 3 secret\(s\) in 2 namespace\(s\): 7 added key\(s\) in [\d.]+ s$/m,
    );
    expect(run.stdout).not.toContain('serverside-applied');
    expectNoLeaks(f, run.stdout, run.stderr, calls.map((c) => c.argv.join(' ')).join('\n'));
  });

  it('prints the target context before anything is applied, and passes --context/--kubeconfig through', async () => {
    const f = await makeBootstrapFixture();
    const kubeconfig = join(f.dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      'current-context: lab\ncontexts: [{name: lab, context: {cluster: c}}, {name: prod, context: {cluster: p}}]\nclusters: [{name: c, cluster: {server: "https://lab:6443"}}, {name: p, cluster: {server: "https://prod:6443"}}]\n',
    );
    const run = await cli(
      ['--secrets-file', f.secretsFile, '--kubeconfig', kubeconfig, '--context', 'prod'],
      envFor(f),
    );
    expect(run.exitCode).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe('target  context "prod" (https://prod:6443)');
    expect(lines.findIndex((l) => l.startsWith('applied: '))).toBeGreaterThan(0);
    for (const call of kubectlCalls(f))
      expect(call.argv.slice(0, 4)).toEqual(['--kubeconfig', kubeconfig, '--context', 'prod']);
  });

  it('leaves out infisical-service-token when INFISICAL_SERVICE_TOKEN is absent, and says so', async () => {
    const f = await makeBootstrapFixture({ omit: ['INFISICAL_SERVICE_TOKEN'] });
    const run = await cli(
      ['--secrets-file', f.secretsFile, '--json', '--backend', 'infisical-v1alpha1'],
      envFor(f),
    );
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.objects.map((o: { name: string }) => o.name)).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
    ]);
    expect(result.notCreated).toEqual([
      { namespace: 'infisical', name: 'infisical-service-token', keys: ['INFISICAL_SERVICE_TOKEN'] },
    ]);
    expect(run.stderr).toMatch(
      /^note {4}infisical\/infisical-service-token is not created: INFISICAL_SERVICE_TOKEN is not set; set it with `node --import tsx scripts\/secrets.ts set INFISICAL_SERVICE_TOKEN/m,
    );
    expect(kubectlCalls(f)[1]?.stdin).not.toContain('infisical-service-token');
  });

  it('without FINGERPRINT_KEY shows lengths only, says how to add the key, and still applies', async () => {
    const f = await makeBootstrapFixture({ omit: ['FINGERPRINT_KEY'] });
    const run = await cli(['--secrets-file', f.secretsFile], envFor(f));
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /FINGERPRINT_KEY is not in .*: values are shown by length only; add it with .*init --fill/,
    );
    expect(run.stdout).toMatch(/DB_PASSWORD \(\d+ chars\) from INFISICAL_DB_PASSWORD/);
    expect(run.stdout).not.toMatch(/hmac:|sha256:/);
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('--json prints one parsable result with fingerprints, narration on stderr', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile, '--json'], envFor(f));
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ ok: true, dryRun: false, source: { kind: 'native' } });
    const cf = result.objects.find((o: { name: string }) => o.name === 'cloudflare-api-token');
    expect(cf.keys[0]).toMatchObject({
      name: 'CLOUDFLARE_API_TOKEN',
      from: 'CLOUDFLARE_API_TOKEN',
      length: f.values.CLOUDFLARE_API_TOKEN?.length,
    });
    expect(cf.keys[0].fingerprint).toMatch(/^hmac:[0-9a-f]{8}$/);
    expect(run.stderr).toContain('target');
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('--from-env takes the values from the environment (as under sops exec-env)', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(
      ['--from-env', '--json'],
      envFor(f, { ...f.values, SOPS_AGE_KEY_FILE: '/nonexistent' }),
    );
    expect(run.stderr).not.toContain('error');
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).source.kind).toBe('environment');
    expect(kubectlCalls(f)).toHaveLength(2);
  });

  it('uses the environment without --from-env when it already holds the required keys', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', '/nonexistent.yaml', '--json'], envFor(f, f.values));
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).source.kind).toBe('environment');
  });

  it('prefers the sops binary when one is on PATH (SOPS overrides), passing only the file name', async () => {
    const f = await makeBootstrapFixture();
    const fakeSops = join(f.binDir, 'sops');
    const argvLog = join(f.dir, 'sops-argv');
    // Prints the plaintext as `sops --decrypt --output-type json` would, recording its argv.
    writeFileSync(
      fakeSops,
      `#!/usr/bin/env node\nrequire('fs').writeFileSync(${JSON.stringify(argvLog)}, JSON.stringify(process.argv.slice(2)));\nprocess.stdout.write(${JSON.stringify(JSON.stringify(f.values))});\n`,
      { mode: 0o755 },
    );
    writeFileSync(join(f.dir, 'package.json'), '{"type":"commonjs"}');
    const run = await cli(['--secrets-file', f.secretsFile, '--json'], envFor(f, { SOPS_AGE_KEY_FILE: '' }));
    expect(run.stderr).not.toContain('error');
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).source.kind).toBe('sops-binary');
    expect(JSON.parse(readFileSync(argvLog, 'utf8'))).toEqual([
      '--decrypt',
      '--output-type',
      'json',
      f.secretsFile,
    ]);
  });

  it('turns a sops binary failure into exit 2 with the reason, and applies nothing', async () => {
    const f = await makeBootstrapFixture();
    writeFileSync(
      join(f.binDir, 'sops'),
      '#!/bin/sh\necho "MAC mismatch. File has ABC, computed DEF" >&2\nexit 51\n',
      {
        mode: 0o755,
      },
    );
    const run = await cli(['--secrets-file', f.secretsFile], envFor(f));
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('the MAC does not match');
    expect(kubectlCalls(f)).toEqual([]);
  });
});

describe('create-bootstrap-secrets --dry-run (offline)', () => {
  it('prints fingerprints and the manifests, and runs no kubectl at all', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile, '--dry-run'], envFor(f));
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(
      /DB_PASSWORD: DB_PASSWORD \(\d+ chars, hmac:[0-9a-f]{8}\) from INFISICAL_DB_PASSWORD/,
    );
    expect(run.stdout).toContain('secret  cert-manager/cloudflare-api-token');
    expect(run.stdout).toMatch(
      /^dry run: 3 secret\(s\) in 2 namespace\(s\) would be applied; nothing applied, no cluster contacted/m,
    );
    expect(run.stdout).not.toMatch(/^data:/m);
    expect(kubectlCalls(f)).toEqual([]);
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('--dry-run=client is the same, and no kubectl anywhere is needed', async () => {
    const f = await makeBootstrapFixture();
    const env = envFor(f, { KUBECTL: join(f.dir, 'no-such-kubectl') });
    const run = await cli(['--secrets-file', f.secretsFile, '--dry-run=client', '--json'], env);
    expect(run.stderr).not.toContain('error');
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ ok: true, mode: 'offline', dryRun: 'client' });
    expect(result.objects[0].keys[0]).toMatchObject({ name: 'DB_PASSWORD', from: 'INFISICAL_DB_PASSWORD' });
    expect(result.objects[0].keys[0].fingerprint).toMatch(/^hmac:[0-9a-f]{8}$/);
    expect(result.kubectl).toBeUndefined();
  });

  it('works with no age key at all (CI): checks key names and renders placeholders', async () => {
    const f = await makeBootstrapFixture();
    const env = envFor(f);
    delete (env as Record<string, string | undefined>).SOPS_AGE_KEY_FILE;
    const run = await cli(['--secrets-file', f.secretsFile, '--dry-run', '--json'], env);
    expect(run.stderr).not.toContain('error');
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.source.kind).toBe('key-names-only');
    expect(result.objects[0].keys[0]).toEqual({ name: 'DB_PASSWORD', from: 'INFISICAL_DB_PASSWORD' });
    // Under --json the preview goes to stderr with the narration.
    const secret = parseAllDocuments(run.stderr.slice(run.stderr.indexOf('---')))
      .map((d) => d.toJS())
      .find((d) => d?.metadata?.name === 'infisical-secrets');
    expect(secret.stringData.DB_PASSWORD).toBe('DB_PASSWORD <from INFISICAL_DB_PASSWORD: not decrypted>');
    expect(kubectlCalls(f)).toEqual([]);
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('still reports missing keys without an age key', async () => {
    const f = await makeBootstrapFixture({ omit: ['REDIS_PASSWORD', 'CLOUDFLARE_API_TOKEN'] });
    const env = envFor(f);
    delete (env as Record<string, string | undefined>).SOPS_AGE_KEY_FILE;
    const run = await cli(['--secrets-file', f.secretsFile, '--dry-run'], env);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('CLOUDFLARE_API_TOKEN: missing');
    expect(run.stderr).toContain('REDIS_PASSWORD: missing');
    expect(kubectlCalls(f)).toEqual([]);
  });
});

/** What the live-Secrets go-template prints for these Secrets (the recording kubectl's `get` answer). */
function liveOutput(
  secrets: { ns: string; name: string; data: Record<string, string>; owners: [string, string, string[]][] }[],
): string {
  return secrets
    .map((x) =>
      [
        `secret ${x.ns} ${x.name}`,
        ...Object.entries(x.data).map(([k, v]) => `data ${k} ${Buffer.from(v).toString('base64')}`),
        ...x.owners.map(
          ([m, op, keys]) => `owner ${op}${keys.map((k) => ` f:${k}`).join('')} ${JSON.stringify(m)}`,
        ),
      ].join('\n'),
    )
    .join('\n');
}

describe('create-bootstrap-secrets --diff, --dry-run=server and the per-key report', () => {
  const OLD_REDIS = 'CANARY-old-redis-password-000111';
  const STRAY = 'CANARY-stray-value-from-elsewhere';
  const GONE = 'CANARY-key-we-no-longer-plan-999';

  async function withLive(f: BootstrapFixture, live: Parameters<typeof liveOutput>[0]) {
    const file = join(f.dir, 'live.txt');
    writeFileSync(file, liveOutput(live));
    return envFor(f, { FAKE_KUBECTL_GET: file });
  }
  const infisicalData = (f: BootstrapFixture) => ({
    DB_PASSWORD: f.values.INFISICAL_DB_PASSWORD as string,
    DB_CONNECTION_URI: `postgresql://infisical:${encodeURIComponent(f.values.INFISICAL_DB_PASSWORD ?? '')}@postgresql:5432/infisical`,
    ENCRYPTION_KEY: f.values.INFISICAL_ENCRYPTION_KEY as string,
    AUTH_SECRET: f.values.INFISICAL_AUTH_SECRET as string,
    REDIS_PASSWORD: f.values.REDIS_PASSWORD as string,
  });
  const ALL = ['DB_PASSWORD', 'DB_CONNECTION_URI', 'ENCRYPTION_KEY', 'AUTH_SECRET', 'REDIS_PASSWORD'];
  // These tests count the Secrets of the backend that has no optional Secret beyond the service token.
  const V1ALPHA1 = ['--backend', 'infisical-v1alpha1'];

  it('--diff: one kubectl get, no apply, each key added / changed / unchanged / removed / kept, no value', async () => {
    const f = await makeBootstrapFixture({ omit: ['INFISICAL_SERVICE_TOKEN'] });
    const env = await withLive(f, [
      {
        ns: 'infisical',
        name: 'infisical-secrets',
        data: { ...infisicalData(f), REDIS_PASSWORD: OLD_REDIS, OLD_KEY: GONE, STRAY_KEY: STRAY },
        owners: [
          ['secrets-flow', 'Apply', [...ALL, 'OLD_KEY']],
          ['kubectl-edit', 'Update', ['STRAY_KEY']],
        ],
      },
    ]);
    const run = await cli(['--secrets-file', f.secretsFile, '--diff', ...V1ALPHA1], env);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(kubectlCalls(f).map((c) => c.argv[0])).toEqual(['get']);
    const out = run.stdout;
    expect(out).toContain(
      'secret  infisical/infisical-secrets: 1 changed, 1 removed, 4 unchanged, 1 kept key(s)',
    );
    expect(out).toMatch(
      /REDIS_PASSWORD \(\d+ chars, hmac:[0-9a-f]{8}\): changed \(was 32 chars, hmac:[0-9a-f]{8}\)/,
    );
    expect(out).toMatch(/DB_PASSWORD \(\d+ chars, hmac:[0-9a-f]{8}\) from INFISICAL_DB_PASSWORD: unchanged/);
    expect(out).toMatch(
      /OLD_KEY \(32 chars, hmac:[0-9a-f]{8}\): removed \(no longer planned; this tool set it/,
    );
    expect(out).toMatch(
      /STRAY_KEY \(\d+ chars, hmac:[0-9a-f]{8}\): kept \(not planned, but owned by kubectl-edit/,
    );
    expect(out).toContain('secret  cert-manager/cloudflare-api-token: will be created');
    expect(out).toMatch(/CLOUDFLARE_API_TOKEN \(\d+ chars, hmac:[0-9a-f]{8}\): added/);
    expect(out).toMatch(
      /^would change 2 of 2 secret\(s\) in 2 namespace\(s\): 1 added, 1 changed, 1 removed, 4 unchanged, 1 kept key\(s\); nothing applied/m,
    );
    const canaries = { ...f.values, OLD_REDIS, STRAY, GONE };
    for (const text of [out, run.stderr]) expect(findLeaks(text, canaries)).toEqual([]);

    const json = await cli(['--secrets-file', f.secretsFile, '--diff', '--json', ...V1ALPHA1], env);
    expect(json.exitCode).toBe(0);
    const result = JSON.parse(json.stdout);
    expect(result).toMatchObject({ ok: true, mode: 'diff', dryRun: false });
    expect(result.changes).toEqual({
      added: 1,
      changed: 1,
      unchanged: 4,
      removed: 1,
      kept: 1,
      secretsChanging: 2,
    });
    const inf = result.objects.find((o: { name: string }) => o.name === 'infisical-secrets');
    expect(inf.exists).toBe(true);
    expect(
      Object.fromEntries(inf.keys.map((k: { name: string; status: string }) => [k.name, k.status])),
    ).toEqual({
      DB_PASSWORD: 'unchanged',
      DB_CONNECTION_URI: 'unchanged',
      ENCRYPTION_KEY: 'unchanged',
      AUTH_SECRET: 'unchanged',
      REDIS_PASSWORD: 'changed',
      OLD_KEY: 'removed',
      STRAY_KEY: 'kept',
    });
    const redis = inf.keys.find((k: { name: string }) => k.name === 'REDIS_PASSWORD');
    expect(redis.fingerprint).not.toBe(redis.live.fingerprint);
    expect(findLeaks(json.stdout + json.stderr, canaries)).toEqual([]);
  });

  it('a real apply when nothing changed: still applies (labels converge), and says nothing to change', async () => {
    const f = await makeBootstrapFixture({ omit: ['INFISICAL_SERVICE_TOKEN'] });
    const env = await withLive(f, [
      {
        ns: 'infisical',
        name: 'infisical-secrets',
        data: infisicalData(f),
        owners: [['secrets-flow', 'Apply', ALL]],
      },
      {
        ns: 'cert-manager',
        name: 'cloudflare-api-token',
        data: { CLOUDFLARE_API_TOKEN: f.values.CLOUDFLARE_API_TOKEN as string },
        owners: [['secrets-flow', 'Apply', ['CLOUDFLARE_API_TOKEN']]],
      },
    ]);
    const run = await cli(['--secrets-file', f.secretsFile, ...V1ALPHA1], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(kubectlCalls(f).map((c) => c.argv[0])).toEqual(['get', 'apply']);
    expect(run.stdout).toContain('secret  infisical/infisical-secrets: unchanged');
    expect(run.stdout).not.toMatch(/: (added|changed|removed)/);
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe('nothing to change: 2 secret(s) already up to date');
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('--dry-run=server: the real apply argv plus --dry-run=server, after the same report', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile, '--dry-run=server'], envFor(f));
    expect(run.exitCode, run.stderr).toBe(0);
    const calls = kubectlCalls(f);
    expect(calls.map((c) => c.argv[0])).toEqual(['get', 'apply']);
    expect(calls[1]?.argv).toEqual([
      'apply',
      '--server-side',
      '--field-manager=secrets-flow',
      '--force-conflicts',
      '--dry-run=server',
      '-f',
      '-',
    ]);
    expect(run.stdout).toContain('[dry run: the API server checks, stores nothing]');
    expect(run.stdout).toMatch(
      /^dry run passed \(the API server accepted the apply, stored nothing\): would change 3 of 3/m,
    );
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('refuses another --dry-run value, and --diff with --dry-run, with exit 2 before anything runs', async () => {
    const f = await makeBootstrapFixture();
    const bad = await cli(['--secrets-file', f.secretsFile, '--dry-run=all'], envFor(f));
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--dry-run=all is not a dry-run mode: give --dry-run .* or --dry-run=server/);
    const both = await cli(['--secrets-file', f.secretsFile, '--diff', '--dry-run'], envFor(f));
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toMatch(/--diff and --dry-run/);
    expect(kubectlCalls(f)).toEqual([]);
  });
});

describe('create-bootstrap-secrets refuses bad input with exit 2 and applies nothing', () => {
  async function refuses(
    f: BootstrapFixture,
    args: string[],
    env: Record<string, string>,
    expected: RegExp,
  ): Promise<string> {
    const run = await cli(args, env);
    expect(run.stderr).toMatch(expected);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/^hint: /m);
    expect(kubectlCalls(f)).toEqual([]);
    expectNoLeaks(f, run.stdout, run.stderr);
    return run.stderr;
  }

  it('a missing file', async () => {
    const f = await makeBootstrapFixture();
    await refuses(
      f,
      ['--secrets-file', join(f.dir, 'nope.sops.yaml')],
      envFor(f),
      /nope\.sops\.yaml not found/,
    );
  });

  it('a file that is not SOPS', async () => {
    const f = await makeBootstrapFixture();
    const plain = join(f.dir, 'plain.yaml');
    writeFileSync(plain, 'REDIS_PASSWORD: hello\n');
    await refuses(f, ['--secrets-file', plain], envFor(f), /not a SOPS file|no sops metadata/i);
  });

  it('no matching age key, saying where keys were searched', async () => {
    const f = await makeBootstrapFixture();
    const other = await makeBootstrapFixture();
    const stderr = await refuses(
      f,
      ['--secrets-file', f.secretsFile],
      envFor(f, { SOPS_AGE_KEY_FILE: other.keyFile }),
      /age/i,
    );
    expect(stderr).toContain(other.keyFile);
  });

  it('a tampered file (MAC mismatch)', async () => {
    const f = await makeBootstrapFixture();
    const text = readFileSync(f.secretsFile, 'utf8');
    // Swap two encrypted values between keys of the same length class: the AAD or MAC must catch it.
    const lines = text.split('\n');
    const a = lines.findIndex((l) => l.startsWith('REDIS_PASSWORD:'));
    const b = lines.findIndex((l) => l.startsWith('INFISICAL_AUTH_SECRET:'));
    const [ka, va] = [lines[a]?.split(': ')[0], lines[a]?.slice(lines[a].indexOf(': '))];
    const [kb, vb] = [lines[b]?.split(': ')[0], lines[b]?.slice(lines[b].indexOf(': '))];
    lines[a] = `${ka}${vb}`;
    lines[b] = `${kb}${va}`;
    writeFileSync(f.secretsFile, lines.join('\n'));
    await refuses(f, ['--secrets-file', f.secretsFile], envFor(f), /REDIS_PASSWORD|INFISICAL_AUTH_SECRET/);
  });

  it('missing keys, all listed together', async () => {
    const f = await makeBootstrapFixture({ omit: ['REDIS_PASSWORD', 'INFISICAL_DB_PASSWORD'] });
    const stderr = await refuses(f, ['--secrets-file', f.secretsFile], envFor(f), /REDIS_PASSWORD: missing/);
    expect(stderr).toContain('INFISICAL_DB_PASSWORD: missing');
  });

  it('a vendor token in an unfamiliar format only with --strict (without it: a warning, and it is applied)', async () => {
    const f = await makeBootstrapFixture({
      values: { CLOUDFLARE_API_TOKEN: 'CANARY-cf-token-of-a-new-kind' },
    });
    await refuses(
      f,
      ['--secrets-file', f.secretsFile, '--strict'],
      envFor(f),
      /CLOUDFLARE_API_TOKEN: malformed/,
    );
    const warned = await cli(['--secrets-file', f.secretsFile], envFor(f));
    expect(warned.exitCode, warned.stderr).toBe(0);
    expect(warned.stderr).toMatch(
      /^warning: CLOUDFLARE_API_TOKEN: unexpected format: expected .*--strict refuses it/m,
    );
    expect(kubectlCalls(f).map((c) => c.argv[0])).toEqual(['get', 'apply']);
    expectNoLeaks(f, warned.stdout, warned.stderr);
  });

  it('malformed values, all listed together', async () => {
    const f = await makeBootstrapFixture({
      values: {
        INFISICAL_ENCRYPTION_KEY: 'CANARY-not-hex',
        REDIS_PASSWORD: 'CANARY-redis-trailing-newline\n',
      },
    });
    const stderr = await refuses(
      f,
      ['--secrets-file', f.secretsFile],
      envFor(f),
      /INFISICAL_ENCRYPTION_KEY: malformed: expected 32 hex characters/,
    );
    expect(stderr).toContain('REDIS_PASSWORD: malformed');
  });

  it('an unknown option', async () => {
    const f = await makeBootstrapFixture();
    await refuses(f, ['--secrets-file', f.secretsFile, '--frobnicate'], envFor(f), /frobnicate/);
  });
});

describe('create-bootstrap-secrets when kubectl fails', () => {
  it('exits 1 and passes kubectl stderr through the redactor', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile], envFor(f, { FAKE_KUBECTL_FAIL: '1' }));
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain('kubectl apply failed');
    // The fake echoed the whole manifest (base64 values included) back on stderr.
    expect(run.stderr).toContain('[REDACTED:');
    expectNoLeaks(f, run.stdout, run.stderr);
  });

  it('exits 1 with a hint when kubectl cannot be found', async () => {
    const f = await makeBootstrapFixture();
    mkdirSync(join(f.dir, 'empty'));
    const run = await cli(
      ['--secrets-file', f.secretsFile],
      envFor(f, { KUBECTL: join(f.dir, 'empty', 'kubectl') }),
    );
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/cannot run .*kubectl/);
    expect(run.stderr).toMatch(/hint: install kubectl/);
  });
});

describe('create-bootstrap-secrets follows the runtime backend', () => {
  const INFISICAL_KEYS = INFISICAL_ONLY_KEYS;
  const decode = (d: { data: Record<string, string> }) =>
    Object.fromEntries(
      Object.entries(d.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );

  it('openbao: reads and applies cloudflare-api-token and openbao-unseal-key, never an Infisical Secret', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile, '--backend', 'openbao'], envFor(f));
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout.split('\n')[1]).toBe('backend openbao (--backend)');
    expect(run.stdout.match(/^backend /gm)).toHaveLength(1);
    const [get, apply] = kubectlCalls(f);
    const stubs = parseAllDocuments(get?.stdin ?? '').map((d) => d.toJS().metadata);
    expect(stubs).toEqual([
      { name: 'cloudflare-api-token', namespace: 'cert-manager' },
      { name: 'openbao-unseal-key', namespace: 'openbao' },
    ]);
    const docs = parseAllDocuments(apply?.stdin ?? '').map((d) => d.toJS());
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      'Namespace/cert-manager',
      'Namespace/openbao',
      'Secret/cloudflare-api-token',
      'Secret/openbao-unseal-key',
    ]);
    expect(decode(docs[3])).toEqual({ 'unseal-key': f.values.OPENBAO_UNSEAL_KEY });
    expect(docs[3].metadata.namespace).toBe('openbao');
    expect(`${get?.stdin}${apply?.stdin}`).not.toMatch(/infisical/i);
    expect(run.stdout).toMatch(/^applied: changed 2 of 2 secret\(s\) in 2 namespace\(s\): 2 added key\(s\)/m);
    expectNoLeaks(
      f,
      run.stdout,
      run.stderr,
      kubectlCalls(f)
        .map((c) => c.argv.join(' '))
        .join('\n'),
    );
  });

  it('openbao needs none of the Infisical keys; without OPENBAO_UNSEAL_KEY it says the Secret is not created, and how to set it', async () => {
    const f = await makeBootstrapFixture({ omit: [...INFISICAL_KEYS, 'OPENBAO_UNSEAL_KEY'] });
    const run = await cli(['--secrets-file', f.secretsFile, '--backend', 'openbao', '--dry-run'], envFor(f));
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(
      `note    openbao/openbao-unseal-key is not created: OPENBAO_UNSEAL_KEY is not set; set it with \`node --import tsx scripts/secrets.ts set OPENBAO_UNSEAL_KEY --secrets-file ${f.secretsFile}\``,
    );
    expect(run.stdout).toContain('secret  cert-manager/cloudflare-api-token');
    expect(run.stdout).not.toContain('secret  openbao/');
    expect(run.stdout).toMatch(/^dry run: 1 secret\(s\) in 1 namespace\(s\) would be applied/m);
    expect(run.stdout).not.toMatch(/INFISICAL|REDIS/);
    // The same file for an Infisical backend lacks every Infisical key: refused, nothing applied.
    const infisical = await cli(['--secrets-file', f.secretsFile, '--backend', 'infisical'], envFor(f));
    expect(infisical.exitCode).toBe(2);
    for (const key of [
      'INFISICAL_DB_PASSWORD',
      'INFISICAL_ENCRYPTION_KEY',
      'INFISICAL_AUTH_SECRET',
      'REDIS_PASSWORD',
    ])
      expect(infisical.stderr).toContain(`${key}: missing`);
    expect(infisical.stderr).not.toContain('OPENBAO_UNSEAL_KEY');
    expect(kubectlCalls(f)).toEqual([]);
    expectNoLeaks(f, run.stdout, run.stderr, infisical.stdout, infisical.stderr);
  });

  it('infisical (the default): infisical-machine-identity with identityId when INFISICAL_IDENTITY_ID is set, never the service token', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile, '--json'], envFor(f));
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.backend).toEqual({ id: 'infisical', from: 'default: no apps table' });
    expect(result.objects.map((o: { name: string }) => o.name)).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
      'infisical-machine-identity',
    ]);
    expect(result.notCreated).toEqual([]);
    const docs = parseAllDocuments(kubectlCalls(f)[1]?.stdin ?? '').map((d) => d.toJS());
    const identity = docs.find((d) => d.metadata.name === 'infisical-machine-identity');
    expect(identity.metadata.namespace).toBe('infisical');
    expect(decode(identity)).toEqual({ identityId: f.values.INFISICAL_IDENTITY_ID });
    expect(kubectlCalls(f)[1]?.stdin).not.toContain('infisical-service-token');
    expectNoLeaks(f, run.stdout, run.stderr);

    const g = await makeBootstrapFixture({ omit: ['INFISICAL_IDENTITY_ID'] });
    const without = await cli(
      ['--secrets-file', g.secretsFile, '--dry-run', '--backend', 'infisical'],
      envFor(g),
    );
    expect(without.exitCode, without.stderr).toBe(0);
    expect(without.stdout).not.toContain('secret  infisical/infisical-machine-identity');
    expect(without.stdout).toMatch(
      /^note {4}infisical\/infisical-machine-identity is not created: INFISICAL_IDENTITY_ID is not set; set it with `node --import tsx scripts\/secrets.ts set INFISICAL_IDENTITY_ID/m,
    );
    expect(without.stdout).toMatch(/^dry run: 2 secret\(s\) in 2 namespace\(s\)/m);
  });

  it('an unknown --backend: exit 2 naming the backends there are, before anything is read or run', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--secrets-file', f.secretsFile, '--backend', 'vault'], envFor(f));
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('error: --backend "vault" is not a runtime backend');
    expect(run.stderr).toMatch(/^hint: use one of infisical, infisical-v1alpha1, openbao$/m);
    expect(run.stdout).toBe('');
    expect(kubectlCalls(f)).toEqual([]);
  });

  it("without --backend, follows the apps table's backend: in the working directory, and names where it came from", async () => {
    const f = await makeBootstrapFixture();
    const cwd = join(f.dir, 'repo');
    mkdirSync(join(cwd, 'cloud', 'runtime'), { recursive: true });
    writeFileSync(join(cwd, 'cloud', 'runtime', 'apps.yaml'), 'backend: openbao\n');
    const run = await cli(['--secrets-file', f.secretsFile, '--dry-run', '--json'], envFor(f), { cwd });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.backend).toEqual({ id: 'openbao', from: 'from cloud/runtime/apps.yaml' });
    expect(result.objects.map((o: { name: string }) => o.name)).toEqual([
      'cloudflare-api-token',
      'openbao-unseal-key',
    ]);
    expect(run.stderr).toContain('backend openbao (from cloud/runtime/apps.yaml)');
    // --backend wins over the table.
    const flag = await cli(
      ['--secrets-file', f.secretsFile, '--dry-run', '--json', '--backend', 'infisical-v1alpha1'],
      envFor(f),
      { cwd },
    );
    expect(JSON.parse(flag.stdout).objects.map((o: { name: string }) => o.name)).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
      'infisical-service-token',
    ]);
    // A table naming no backend in the old home describes v1alpha1 InfisicalSecrets.
    const legacy = join(f.dir, 'legacy');
    mkdirSync(join(legacy, 'cloud', 'infisical'), { recursive: true });
    writeFileSync(join(legacy, 'cloud', 'infisical', 'apps.yaml'), 'apps: {}\n');
    const old = await cli(['--secrets-file', f.secretsFile, '--dry-run', '--json'], envFor(f), {
      cwd: legacy,
    });
    expect(JSON.parse(old.stdout).backend).toEqual({
      id: 'infisical-v1alpha1',
      from: 'from cloud/infisical/apps.yaml',
    });
    expect(kubectlCalls(f)).toEqual([]);
    expectNoLeaks(f, run.stdout, run.stderr, flag.stdout, flag.stderr, old.stdout, old.stderr);
  });
});

describe('create-bootstrap-secrets --help', () => {
  it('documents every option and exits 0', async () => {
    const f = await makeBootstrapFixture();
    const run = await cli(['--help'], envFor(f));
    expect(run.exitCode).toBe(0);
    for (const flag of ['--secrets-file', '--from-env', '--dry-run', '--context', '--kubeconfig', '--json']) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout).toContain('--backend B');
    // Each backend's Secrets, from the schema table; switching leaves the old ones in place.
    expect(run.stdout).toMatch(
      /^ {2}openbao:\n {4}cloudflare-api-token .*\n {4}openbao-unseal-key +\(ns openbao\) +unseal-key, only when OPENBAO_UNSEAL_KEY is set$/m,
    );
    expect(run.stdout).toMatch(
      /^ {4}infisical-machine-identity +\(ns infisical\) +identityId, only when INFISICAL_IDENTITY_ID is set$/m,
    );
    expect(run.stdout).toMatch(/Switching the backend leaves the old backend's Secrets in place/);
  });
});
