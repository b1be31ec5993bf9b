/**
 * The real kubectl against the fake API server (scripts/lib/sandbox/kube-apiserver.ts): the commands the
 * product runs must behave as they would against a cluster, or tests built on the fake prove nothing.
 * kubectl runs with default validation (`--validate=strict`), as the product runs it.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeKubeApiServer,
  type KubeObject,
  startFakeKubeApiServer,
} from '../scripts/lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTool } from './helpers/tiers.ts';

const kubectlBin = requireTool('kubectl', 'the fake kube-apiserver driven by the real kubectl');

const b64 = (s: string) => Buffer.from(s).toString('base64');
const SSA = ['apply', '--server-side', '--field-manager=secrets-flow', '-f', '-'];

/** A Namespace (unless `withNamespace` is false) and then a Secret in it, as the product renders them. */
function manifest(
  namespace: string,
  data: Record<string, string>,
  { name = 'db', withNamespace = true }: { name?: string; withNamespace?: boolean } = {},
): string {
  const ns = `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\n`;
  const entries = Object.entries(data).map(([k, v]) => `  ${k}: ${b64(v)}`);
  return `${withNamespace ? ns : ''}apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ${namespace}
  annotations:
    argocd.argoproj.io/sync-options: Prune=false
type: Opaque
data:
${entries.join('\n')}
`;
}

/** What a changed data value must leave alone: everything but `data`, the resourceVersion and entry times. */
function allButDataAndVersion(obj: KubeObject | undefined): KubeObject {
  const { data: _data, ...rest } = obj ?? {};
  const { resourceVersion: _rv, managedFields, ...metadata } = rest.metadata ?? {};
  return { ...rest, metadata, owners: managedFields?.map(({ time: _time, ...entry }: KubeObject) => entry) };
}

describe.skipIf(!kubectlBin)('fake kube-apiserver driven by the real kubectl', () => {
  let server: FakeKubeApiServer;
  let dir: string;
  let env: Record<string, string>;
  const timings: { args: string; ms: number }[] = [];

  async function kubectl(args: string[], input = '') {
    const started = performance.now();
    const result = await execa(kubectlBin ?? 'kubectl', args, {
      input,
      env,
      reject: false,
      timeout: 20_000,
    });
    timings.push({ args: args.join(' '), ms: Math.round(performance.now() - started) });
    return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
  }

  beforeAll(async () => {
    server = await startFakeKubeApiServer();
    dir = tempDir('fake-kube-');
    const kubeconfig = await writeKubeconfig({ server: server.url, dir, name: 'fake', token: 'dummy' });
    // KUBECACHEDIR keeps kubectl's discovery cache out of ~/.kube.
    env = { KUBECONFIG: kubeconfig, KUBECACHEDIR: join(dir, 'cache') };
  });

  afterAll(async () => {
    const total = timings.reduce((sum, t) => sum + t.ms, 0);
    const slowest = timings.reduce((a, b) => (b.ms > a.ms ? b : a), { args: '', ms: 0 });
    console.log(
      `kubectl: ${timings.length} calls, ${total} ms in total, slowest ${slowest.ms} ms (${slowest.args})`,
    );
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes a 0600 kubeconfig', async () => {
    expect((await stat(env.KUBECONFIG as string)).mode & 0o777).toBe(0o600);
  });

  it('server-side apply creates namespace then secret; a rerun changes nothing; one changed value changes only it', async () => {
    const first = await kubectl(SSA, manifest('apps', { password: 'hunter2', username: 'admin' }));
    expect(first, first.stderr).toMatchObject({ exitCode: 0, stderr: '' });
    expect(first.stdout).toBe('namespace/apps serverside-applied\nsecret/db serverside-applied');
    // Default validation: kubectl read the OpenAPI v3 document and left strict validation to the server.
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.path)).toEqual([
      '/api/v1/namespaces/apps',
      '/api/v1/namespaces/apps/secrets/db',
    ]);
    for (const p of patches) {
      expect(p.contentType).toBe('application/apply-patch+yaml');
      expect(new URLSearchParams(p.query).get('fieldValidation')).toBe('Strict');
    }

    const created = server.get('Secret', 'db', 'apps');
    expect(created?.data).toEqual({ password: b64('hunter2'), username: b64('admin') });
    expect(created?.metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-options': 'Prune=false' });
    expect(created?.metadata.managedFields).toMatchObject([{ manager: 'secrets-flow', operation: 'Apply' }]);
    expect(server.get('Namespace', 'apps')?.status).toEqual({ phase: 'Active' });
    expect(server.writes.get('Secret/apps/db')).toBe(1);
    expect(server.writes.get('Namespace//apps')).toBe(1);

    // kubectl says "serverside-applied" every time, so the stored state is what shows a no-op.
    const again = await kubectl(SSA, manifest('apps', { password: 'hunter2', username: 'admin' }));
    expect(again.exitCode, again.stderr).toBe(0);
    expect(server.get('Secret', 'db', 'apps')).toEqual(created);
    expect(server.writes.get('Secret/apps/db')).toBe(1);
    expect(server.writes.get('Namespace//apps')).toBe(1);

    const changed = await kubectl(SSA, manifest('apps', { password: 'hunter3', username: 'admin' }));
    expect(changed.exitCode, changed.stderr).toBe(0);
    const after = server.get('Secret', 'db', 'apps');
    expect(after?.data).toEqual({ password: b64('hunter3'), username: b64('admin') });
    expect(Number(after?.metadata.resourceVersion)).toBeGreaterThan(
      Number(created?.metadata.resourceVersion),
    );
    expect(allButDataAndVersion(after)).toEqual(allButDataAndVersion(created));
    expect(server.writes.get('Secret/apps/db')).toBe(2);
    expect(server.writes.get('Namespace//apps')).toBe(1);

    // A key the manager stops applying is removed: it owned it alone.
    const dropped = await kubectl(SSA, manifest('apps', { password: 'hunter3' }));
    expect(dropped.exitCode, dropped.stderr).toBe(0);
    expect(server.get('Secret', 'db', 'apps')?.data).toEqual({ password: b64('hunter3') });
  });

  it('kubectl get -o json returns the stored object', async () => {
    await kubectl(SSA, manifest('getter', { token: 't0ken' }));
    const got = await kubectl(['get', 'secret', '-n', 'getter', 'db', '-o', 'json']);
    expect(got.exitCode, got.stderr).toBe(0);
    // kubectl leaves managedFields out unless --show-managed-fields is given.
    const { managedFields, ...metadata } = server.get('Secret', 'db', 'getter')?.metadata ?? {};
    expect(managedFields).toHaveLength(1);
    expect(JSON.parse(got.stdout)).toEqual({ ...server.get('Secret', 'db', 'getter'), metadata });
  });

  it('server-side dry run stores nothing', async () => {
    await kubectl(SSA, manifest('dry', { a: '1' }));
    const secrets = server.list('Secret');
    const writes = new Map(server.writes);
    const changed = manifest('dry', { a: '2' });
    const added = manifest('dry', { b: '3' }, { name: 'other', withNamespace: false });
    const dry = await kubectl([...SSA, '--dry-run=server'], `${changed}---\n${added}`);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('secret/other serverside-applied (server dry run)');
    expect(
      server.requests
        .filter((r) => r.method === 'PATCH')
        .slice(-3)
        .map((r) => r.query),
    ).toEqual(Array(3).fill(expect.stringContaining('dryRun=All')));
    expect(server.list('Secret')).toEqual(secrets);
    expect(server.writes).toEqual(writes);

    // As on a real server, a dry-run namespace does not exist for the secrets after it.
    const fresh = await kubectl([...SSA, '--dry-run=server'], manifest('dry-fresh', { c: '4' }));
    expect(fresh.exitCode).toBe(1);
    expect(fresh.stdout).toBe('namespace/dry-fresh serverside-applied (server dry run)');
    expect(fresh.stderr).toContain('namespaces "dry-fresh" not found');
    expect(server.get('Namespace', 'dry-fresh')).toBeUndefined();
  });

  it('client-side kubectl apply creates, leaves unchanged, and configures', async () => {
    const docs = (value: string) => manifest('csa', { key: value });
    const created = await kubectl(['apply', '-f', '-'], docs('v1'));
    expect(created, created.stderr).toMatchObject({ exitCode: 0, stderr: '' });
    expect(created.stdout).toBe('namespace/csa created\nsecret/db created');
    const stored = server.get('Secret', 'db', 'csa');
    expect(stored?.metadata.annotations).toHaveProperty(['kubectl.kubernetes.io/last-applied-configuration']);
    expect(stored?.metadata.managedFields).toMatchObject([
      { manager: 'kubectl-client-side-apply', operation: 'Update' },
    ]);

    const same = await kubectl(['apply', '-f', '-'], docs('v1'));
    expect(same.stdout).toBe('namespace/csa unchanged\nsecret/db unchanged');
    const changed = await kubectl(['apply', '-f', '-'], docs('v2'));
    expect(changed.stdout).toBe('namespace/csa unchanged\nsecret/db configured');
    expect(server.get('Secret', 'db', 'csa')?.data).toEqual({ key: b64('v2') });
    // kubectl had everything it needed from the OpenAPI v3 document.
    expect(server.requests.some((r) => r.path === '/openapi/v2')).toBe(false);

    // Server-side apply then takes over, migrating ownership with a JSON patch, without warnings.
    const takeover = await kubectl(SSA, docs('v2'));
    expect(takeover, takeover.stderr).toMatchObject({ exitCode: 0, stderr: '' });
    const owned = server.get('Secret', 'db', 'csa');
    expect(owned?.metadata.managedFields.map((m: { manager: string }) => m.manager)).toEqual([
      'secrets-flow',
    ]);
    expect(owned?.metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-options': 'Prune=false' });
  });

  it('a secret in a missing namespace fails with NotFound and stores nothing', async () => {
    const result = await kubectl(SSA, manifest('nowhere', { a: '1' }, { withNamespace: false }));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('Error from server (NotFound): namespaces "nowhere" not found');
    expect(server.get('Secret', 'db', 'nowhere')).toBeUndefined();
  });

  it('refuses unknown fields, as a real server does under default validation', async () => {
    const result = await kubectl(SSA, manifest('strict', { a: '1' }).replace('type: Opaque', 'typo: Opaque'));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('unknown field "typo"');
    expect(server.get('Secret', 'db', 'strict')).toBeUndefined();
  });

  it('answers protobuf with 415, which is why callers use apply', async () => {
    const result = await kubectl(['create', 'namespace', 'proto']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('does not speak protobuf');
  });
});

// Paths kubectl does not take in the tests above, driven over plain HTTP (no kubectl needed).
describe('fake kube-apiserver over HTTP', () => {
  let server: FakeKubeApiServer;
  beforeAll(async () => {
    server = await startFakeKubeApiServer();
  });
  afterAll(() => server.close());

  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(server.url + path, {
      method,
      headers: { 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, warning: res.headers.get('warning'), body: await res.json() };
  };
  const apply = (name: string, secret: KubeObject, query = 'fieldManager=t&fieldValidation=Strict') =>
    call(
      'PATCH',
      `/api/v1/namespaces/ns/secrets/${name}?${query}`,
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name },
        ...secret,
      },
      'application/apply-patch+yaml',
    );

  it('answers errors with Status objects like the real server', async () => {
    expect((await call('GET', '/api/v1/namespaces/ns/secrets/x')).body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'secrets "x" not found',
      reason: 'NotFound',
      details: { name: 'x', kind: 'secrets' },
      code: 404,
    });
    const proto = await call('POST', '/api/v1/namespaces', {}, 'application/vnd.kubernetes.protobuf');
    expect(proto.body).toMatchObject({ kind: 'Status', code: 415, reason: 'UnsupportedMediaType' });
    expect(
      await call('POST', '/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'ns' },
      }),
    ).toMatchObject({ status: 201 });

    expect(await apply('bad', { data: { k: 'not base64!' } })).toMatchObject({
      status: 400,
      body: { reason: 'BadRequest' },
    });
    expect(await apply('bad', { data: { 'bad key': 'YQ==' } })).toMatchObject({
      status: 422,
      body: { reason: 'Invalid' },
    });
  });

  it('merges stringData into data, honours immutable, and warns about unknown fields under Warn', async () => {
    expect(await apply('s', { stringData: { k: 'v' }, immutable: true })).toMatchObject({
      status: 201,
      body: { data: { k: b64('v') } },
    });
    expect(await apply('s', { stringData: { k: 'w' }, immutable: true })).toMatchObject({
      status: 422,
      body: { message: expect.stringContaining('field is immutable') },
    });
    const warned = await apply('w', { typo: 1 }, 'fieldManager=t&fieldValidation=Warn');
    expect(warned).toMatchObject({ status: 201, warning: '299 - "unknown field \\"typo\\""' });
    expect(server.get('Secret', 'w', 'ns')).not.toHaveProperty('typo');
  });
});
