/**
 * The real kubectl against the built-in fake Kubernetes API server (server-side apply): a first run
 * creates, a second with the same input changes nothing, a third with one changed value changes only it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeKubeApiServer, startFakeKubeApiServer } from '../scripts/lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { findLeaks, makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';
import { requireTool } from './helpers/tiers.ts';

const kubectl = requireTool('kubectl', 'the real kubectl against the fake API server');

describe.skipIf(!kubectl)('create-bootstrap-secrets with the real kubectl', () => {
  let server: FakeKubeApiServer;
  beforeAll(async () => {
    server = await startFakeKubeApiServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  const secretData = (name: string, ns: string) => {
    const s = server.get('Secret', name, ns);
    return Object.fromEntries(
      Object.entries((s?.data ?? {}) as Record<string, string>).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString('utf8'),
      ]),
    );
  };

  it('creates, then changes nothing, then changes only the changed value', async () => {
    const f = await makeBootstrapFixture({ omit: ['INFISICAL_SERVICE_TOKEN'] });
    const kubeconfig = await writeKubeconfig({ dir: f.dir, server: server.url, name: 'sandbox' });
    const env = {
      PATH: f.binDir,
      HOME: f.home,
      TMPDIR: f.tmp,
      KUBECTL: kubectl as string,
      KUBECACHEDIR: join(f.dir, 'kube-cache'),
      SOPS_AGE_KEY_FILE: f.keyFile,
      NO_COLOR: '1',
    };
    const args = ['--secrets-file', f.secretsFile, '--kubeconfig', kubeconfig];

    const first = await runScript('create-bootstrap-secrets.ts', args, env);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toContain('target  context "sandbox"');
    expect(server.get('Namespace', 'infisical')).toBeDefined();
    expect(server.get('Namespace', 'cert-manager')).toBeDefined();
    expect(secretData('infisical-secrets', 'infisical')).toEqual({
      DB_PASSWORD: f.values.INFISICAL_DB_PASSWORD,
      DB_CONNECTION_URI: `postgresql://infisical:${encodeURIComponent(f.values.INFISICAL_DB_PASSWORD ?? '')}@postgresql:5432/infisical`,
      ENCRYPTION_KEY: f.values.INFISICAL_ENCRYPTION_KEY,
      AUTH_SECRET: f.values.INFISICAL_AUTH_SECRET,
      REDIS_PASSWORD: f.values.REDIS_PASSWORD,
    });
    expect(secretData('cloudflare-api-token', 'cert-manager')).toEqual({
      CLOUDFLARE_API_TOKEN: f.values.CLOUDFLARE_API_TOKEN,
    });
    const stored = server.get('Secret', 'infisical-secrets', 'infisical');
    expect(stored?.metadata.annotations['argocd.argoproj.io/sync-options']).toBe('Prune=false');
    expect(stored?.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).toBeUndefined();
    expect(findLeaks(first.stdout + first.stderr, f.values)).toEqual([]);

    const rv = (name: string, ns: string) => server.get('Secret', name, ns)?.metadata.resourceVersion;
    const before = {
      infisical: rv('infisical-secrets', 'infisical'),
      cf: rv('cloudflare-api-token', 'cert-manager'),
    };
    const writesBefore = [...server.writes.values()].reduce((a, b) => a + b, 0);

    const second = await runScript('create-bootstrap-secrets.ts', args, env);
    expect(second.exitCode).toBe(0);
    expect([...server.writes.values()].reduce((a, b) => a + b, 0)).toBe(writesBefore);
    expect(rv('infisical-secrets', 'infisical')).toBe(before.infisical);
    expect(rv('cloudflare-api-token', 'cert-manager')).toBe(before.cf);

    const changed = await makeBootstrapFixture({
      values: { ...f.values, REDIS_PASSWORD: 'CANARY-redis-rotated-0123456789' },
      omit: ['INFISICAL_SERVICE_TOKEN'],
    });
    const third = await runScript(
      'create-bootstrap-secrets.ts',
      ['--secrets-file', changed.secretsFile, '--kubeconfig', kubeconfig],
      { ...env, SOPS_AGE_KEY_FILE: changed.keyFile },
    );
    expect(third.exitCode).toBe(0);
    expect(secretData('infisical-secrets', 'infisical')).toEqual({
      ...secretData('infisical-secrets', 'infisical'),
      REDIS_PASSWORD: 'CANARY-redis-rotated-0123456789',
    });
    expect(secretData('infisical-secrets', 'infisical').DB_PASSWORD).toBe(f.values.INFISICAL_DB_PASSWORD);
    expect(rv('infisical-secrets', 'infisical')).not.toBe(before.infisical);
    expect(rv('cloudflare-api-token', 'cert-manager')).toBe(before.cf);
  });

  it("a kubectl that cannot reach the cluster exits 1 with kubectl's message", async () => {
    const f = await makeBootstrapFixture();
    const kubeconfig = await writeKubeconfig({ dir: f.dir, server: 'http://127.0.0.1:1', name: 'gone' });
    const run = await runScript(
      'create-bootstrap-secrets.ts',
      ['--secrets-file', f.secretsFile, '--kubeconfig', kubeconfig],
      {
        PATH: f.binDir,
        HOME: f.home,
        KUBECTL: kubectl as string,
        KUBECACHEDIR: join(f.dir, 'kube-cache'),
        SOPS_AGE_KEY_FILE: f.keyFile,
      },
    );
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/kubectl apply failed/);
    expect(run.stderr).toMatch(/127\.0\.0\.1:1/);
    expect(findLeaks(run.stdout + run.stderr, f.values)).toEqual([]);
  });
});
