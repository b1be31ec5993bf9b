import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { applyArgv } from '../../scripts/lib/kube/kubectl.ts';
import { bootstrapManifests, planBootstrapSecrets, toYamlStream } from '../../scripts/lib/kube/manifests.ts';

const values = {
  INFISICAL_DB_PASSWORD: `pw"with'quotes\\and: colons # and $dollars`,
  INFISICAL_ENCRYPTION_KEY: '0123456789abcdef0123456789abcdef',
  INFISICAL_AUTH_SECRET: 'auth',
  REDIS_PASSWORD: 'redis',
  CLOUDFLARE_API_TOKEN: 'cf',
};

describe('bootstrap manifests', () => {
  it('puts namespaces first, then both design-page Secrets with base64 data and the Prune=false annotation', () => {
    const manifests = bootstrapManifests(planBootstrapSecrets(values), { kind: 'apply' });
    expect(manifests.map((m) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`)).toEqual([
      'Namespace//cert-manager',
      'Namespace//infisical',
      'Secret/infisical/infisical-secrets',
      'Secret/cert-manager/cloudflare-api-token',
    ]);
    const infisical = manifests[2] as (typeof manifests)[number];
    expect(infisical.metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-options': 'Prune=false' });
    expect(infisical.stringData).toBeUndefined();
    const decoded = Object.fromEntries(
      Object.entries(infisical.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
    expect(decoded).toEqual({
      DB_PASSWORD: values.INFISICAL_DB_PASSWORD,
      DB_CONNECTION_URI: `postgresql://infisical:${encodeURIComponent(values.INFISICAL_DB_PASSWORD)}@postgresql:5432/infisical`,
      AUTH_SECRET: 'auth',
      ENCRYPTION_KEY: values.INFISICAL_ENCRYPTION_KEY,
      REDIS_PASSWORD: 'redis',
    });
  });

  it('adds infisical-service-token only when INFISICAL_SERVICE_TOKEN is set', () => {
    expect(planBootstrapSecrets(values).map((s) => s.name)).not.toContain('infisical-service-token');
    const withToken = planBootstrapSecrets({ ...values, INFISICAL_SERVICE_TOKEN: 'st.a.b.c' });
    const token = withToken.find((s) => s.name === 'infisical-service-token');
    expect(token?.namespace).toBe('infisical');
    expect(token?.entries.map((e) => e.name)).toEqual(['infisicalToken']);
  });

  it('serialises to a YAML stream that parses back to the same objects, whatever the values hold', () => {
    const manifests = bootstrapManifests(planBootstrapSecrets(values), { kind: 'apply' });
    const docs = parseAllDocuments(toYamlStream(manifests)).map((d) => d.toJS());
    expect(docs).toEqual(manifests);
  });

  it('previews carry what `show` returns and no value', () => {
    const manifests = bootstrapManifests(planBootstrapSecrets(values), {
      kind: 'preview',
      show: (e) => `<${e.key}>`,
    });
    const text = toYamlStream(manifests);
    expect(text).toContain('DB_PASSWORD: <INFISICAL_DB_PASSWORD>');
    expect(text).not.toMatch(/^data:/m);
    for (const v of Object.values(values)) expect(text).not.toContain(Buffer.from(v).toString('base64'));
  });
});

describe('kubectl argv', () => {
  it('applies server-side with our field manager, manifests on stdin', () => {
    expect(applyArgv({ kubectl: 'kubectl' })).toEqual([
      'kubectl',
      'apply',
      '--server-side',
      '--field-manager=secrets-flow',
      '--force-conflicts',
      '-f',
      '-',
    ]);
  });

  it('a server dry run is the real apply plus --dry-run=server', () => {
    expect(applyArgv({ kubectl: 'k', serverDryRun: true, context: 'c', kubeconfig: '/kc' })).toEqual([
      'k',
      '--kubeconfig',
      '/kc',
      '--context',
      'c',
      'apply',
      '--server-side',
      '--field-manager=secrets-flow',
      '--force-conflicts',
      '--dry-run=server',
      '-f',
      '-',
    ]);
  });
});
