/**
 * The real kubectl against the built-in fake Kubernetes API server (server-side apply): a first run
 * creates, a second with the same input changes nothing, a third with one changed value changes only it.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeKubeApiServer, startFakeKubeApiServer } from '../scripts/lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { findLeaks, kubectlEnv, makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';
import { requireTool } from './helpers/tiers.ts';

const kubectl = requireTool('kubectl', 'the real kubectl against the fake API server');

// The backend is named: the repository's apps table (runs start in the project) must not decide.
const targetArgs = (secretsFile: string, kubeconfig: string) => [
  '--secrets-file',
  secretsFile,
  '--kubeconfig',
  kubeconfig,
  '--backend',
  'infisical-v1alpha1',
];

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
    const env = kubectlEnv(f, kubectl as string);
    const args = targetArgs(f.secretsFile, kubeconfig);

    // The offline dry run contacts nothing: no request reaches the API server.
    const requestsBefore = server.requests.length;
    const offline = await runScript('create-bootstrap-secrets.ts', [...args, '--dry-run'], env);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(server.requests.length).toBe(requestsBefore);

    // A server dry run creates nothing, not even a namespace, so the server refuses Secrets in new ones.
    const early = await runScript('create-bootstrap-secrets.ts', [...args, '--dry-run=server'], env);
    expect(early.exitCode).toBe(1);
    expect(early.stderr).toMatch(
      /the API server cannot check Secrets in namespaces that do not exist yet \(infisical, cert-manager\)/,
    );
    expect(early.stderr).toMatch(/^hint: see the plan with --diff/m);
    expect(server.get('Namespace', 'infisical')).toBeUndefined();

    const first = await runScript('create-bootstrap-secrets.ts', args, env);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toContain('target  context "sandbox"');
    expect(first.stdout).toMatch(/^ +REDIS_PASSWORD \(\d+ chars, hmac:[0-9a-f]{8}\): added$/m);
    expect(first.stdout).toMatch(
      /^applied: changed 2 of 2 secret\(s\) in 2 namespace\(s\): 6 added key\(s\)/m,
    );
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
    expect(second.stdout).toContain('secret  infisical/infisical-secrets: unchanged');
    expect(second.stdout.trimEnd().split('\n').at(-1)).toBe(
      'nothing to change: 2 secret(s) already up to date',
    );
    expect([...server.writes.values()].reduce((a, b) => a + b, 0)).toBe(writesBefore);
    expect(rv('infisical-secrets', 'infisical')).toBe(before.infisical);
    expect(rv('cloudflare-api-token', 'cert-manager')).toBe(before.cf);

    const changed = await makeBootstrapFixture({
      values: { ...f.values, REDIS_PASSWORD: 'CANARY-redis-rotated-0123456789' },
      omit: ['INFISICAL_SERVICE_TOKEN'],
    });
    // A server dry run of the change asks the API server, which stores nothing.
    const dryArgs = [
      '--secrets-file',
      changed.secretsFile,
      '--kubeconfig',
      kubeconfig,
      '--dry-run=server',
      '--backend',
      'infisical-v1alpha1',
    ];
    const serverDry = await runScript('create-bootstrap-secrets.ts', dryArgs, {
      ...env,
      SOPS_AGE_KEY_FILE: changed.keyFile,
    });
    expect(serverDry.exitCode, serverDry.stderr).toBe(0);
    expect(server.requests.some((r) => r.method === 'PATCH' && r.query.includes('dryRun=All'))).toBe(true);
    expect(serverDry.stdout).toMatch(/^ +REDIS_PASSWORD .*: changed \(was/m);
    expect(serverDry.stdout).toMatch(
      /^dry run passed \(the API server accepted the apply, stored nothing\): would change 1 of 2/m,
    );
    expect(rv('infisical-secrets', 'infisical')).toBe(before.infisical);

    const third = await runScript(
      'create-bootstrap-secrets.ts',
      ['--secrets-file', changed.secretsFile, '--kubeconfig', kubeconfig, '--backend', 'infisical-v1alpha1'],
      { ...env, SOPS_AGE_KEY_FILE: changed.keyFile },
    );
    expect(third.exitCode).toBe(0);
    expect(third.stdout).toMatch(
      /^ +REDIS_PASSWORD \(31 chars, hmac:[0-9a-f]{8}\): changed \(was \d+ chars/m,
    );
    expect(third.stdout).toMatch(/^ +AUTH_SECRET .*: unchanged$/m);
    expect(third.stdout).toContain('secret  cert-manager/cloudflare-api-token: unchanged');
    expect(third.stdout).toMatch(/^applied: changed 1 of 2 secret\(s\)/m);
    expect(secretData('infisical-secrets', 'infisical')).toEqual({
      ...secretData('infisical-secrets', 'infisical'),
      REDIS_PASSWORD: 'CANARY-redis-rotated-0123456789',
    });
    expect(secretData('infisical-secrets', 'infisical').DB_PASSWORD).toBe(f.values.INFISICAL_DB_PASSWORD);
    expect(rv('infisical-secrets', 'infisical')).not.toBe(before.infisical);
    expect(rv('cloudflare-api-token', 'cert-manager')).toBe(before.cf);
  });

  it('--diff says which live keys server-side apply removes (ours) and which it keeps (another manager set them); the apply does so', async () => {
    const f = await makeBootstrapFixture({ omit: ['INFISICAL_SERVICE_TOKEN'] });
    const kubeconfig = await writeKubeconfig({ dir: f.dir, server: server.url, name: 'diff' });
    const env = kubectlEnv(f, kubectl as string);
    const OURS = 'CANARY-once-ours-0123456789';
    const THEIRS = 'CANARY-someone-elses-0123456789';
    // A Secret in a namespace of its own: this tool applied OLD_KEY once; someone else added EXTRA.
    const seed = async (manager: string, data: Record<string, string>) => {
      const yaml = `apiVersion: v1\nkind: Namespace\nmetadata: {name: diffns}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: infisical-secrets, namespace: diffns}\nstringData: ${JSON.stringify(data)}\n`;
      const r = await execa(
        kubectl as string,
        ['--kubeconfig', kubeconfig, 'apply', '--server-side', `--field-manager=${manager}`, '-f', '-'],
        {
          input: yaml,
          env: { KUBECACHEDIR: env.KUBECACHEDIR, HOME: f.home },
          extendEnv: false,
          reject: false,
        },
      );
      expect(r.exitCode, r.stderr).toBe(0);
    };
    await seed('secrets-flow', { OLD_KEY: OURS, REDIS_PASSWORD: 'CANARY-old-redis-0123456789' });
    await seed('someone-else', { EXTRA: THEIRS });
    const canaries = { ...f.values, OURS, THEIRS };

    // The command's plan comes from the schema, whose namespaces are fixed; a plan aimed at the seeded
    // namespace goes through the same library calls the command makes.
    const { LocalExecutor } = await import('../scripts/lib/exec/local.ts');
    const { readLiveSecretDetails } = await import('../scripts/lib/kube/live-secrets.ts');
    const { diffSecrets } = await import('../scripts/lib/kube/secret-diff.ts');
    const opts = { kubectl: kubectl as string, kubeconfig };
    const cacheBefore = process.env.KUBECACHEDIR;
    process.env.KUBECACHEDIR = env.KUBECACHEDIR;
    const planned = [
      {
        namespace: 'diffns',
        name: 'infisical-secrets',
        entries: [{ name: 'REDIS_PASSWORD', key: 'REDIS_PASSWORD', value: 'CANARY-new-redis-0123456789' }],
      },
      {
        namespace: 'nowhere',
        name: 'absent',
        entries: [{ name: 'K', key: 'K', value: 'CANARY-absent-0123456789' }],
      },
    ];
    const live = await readLiveSecretDetails(new LocalExecutor(), opts, planned).finally(() => {
      if (cacheBefore === undefined) delete process.env.KUBECACHEDIR;
      else process.env.KUBECACHEDIR = cacheBefore;
    });
    expect(live.get('nowhere/absent')).toBeUndefined();
    expect(live.get('diffns/infisical-secrets')?.data).toEqual({
      OLD_KEY: OURS,
      REDIS_PASSWORD: 'CANARY-old-redis-0123456789',
      EXTRA: THEIRS,
    });
    const diffs = diffSecrets(planned, live);
    expect(diffs[0]?.keys.map((k) => [k.name, k.status])).toEqual([
      ['REDIS_PASSWORD', 'changed'],
      ['EXTRA', 'kept'],
      ['OLD_KEY', 'removed'],
    ]);
    expect(diffs[1]).toMatchObject({ exists: false, keys: [{ name: 'K', status: 'added' }] });

    // What server-side apply then really does with them: OLD_KEY goes, EXTRA stays.
    await seed('secrets-flow', { REDIS_PASSWORD: 'CANARY-new-redis-0123456789' });
    const after = server.get('Secret', 'infisical-secrets', 'diffns');
    expect(Object.keys(after?.data ?? {}).sort()).toEqual(['EXTRA', 'REDIS_PASSWORD']);

    // And the command: its --diff of the real Secrets (created fresh here) prints no value.
    const run = await runScript(
      'create-bootstrap-secrets.ts',
      [
        '--secrets-file',
        f.secretsFile,
        '--kubeconfig',
        kubeconfig,
        '--diff',
        '--backend',
        'infisical-v1alpha1',
      ],
      env,
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(findLeaks(run.stdout + run.stderr, canaries)).toEqual([]);
  });

  it("a cluster that cannot be reached: exit 2, kubectl's line said once, and a hint (create, --diff, secrets status)", async () => {
    const f = await makeBootstrapFixture();
    const kubeconfig = await writeKubeconfig({ dir: f.dir, server: 'http://127.0.0.1:1', name: 'gone' });
    const env = {
      PATH: f.binDir,
      HOME: f.home,
      KUBECTL: kubectl as string,
      KUBECACHEDIR: join(f.dir, 'kube-cache'),
      SOPS_AGE_KEY_FILE: f.keyFile,
    };
    // kubectl says its failure once per Secret it was asked about; the operator reads it once.
    const target = targetArgs(f.secretsFile, kubeconfig);
    const runs = [
      await runScript('create-bootstrap-secrets.ts', target, env),
      await runScript('create-bootstrap-secrets.ts', [...target, '--diff'], env),
      await runScript('secrets.ts', ['status', ...target], env),
    ];
    for (const run of runs) {
      expect(run.exitCode, run.stderr).toBe(2);
      expect(run.stderr).toMatch(
        /reading the live Secrets failed \(kubectl get, exit 1\): the cluster cannot be reached/,
      );
      expect(run.stderr.match(/^.*127\.0\.0\.1:1.*connection refused.*$/gm)).toHaveLength(1);
      expect(run.stderr).not.toMatch(/^E\d{4} /m);
      expect(run.stderr).toMatch(
        new RegExp(`^hint: check the context .*kubectl --kubeconfig ${kubeconfig} cluster-info`, 'm'),
      );
      expect(findLeaks(run.stdout + run.stderr, f.values)).toEqual([]);
    }
    expect(runs[2]?.stderr).toMatch(/--no-cluster/);
  });
});
