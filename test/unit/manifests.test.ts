import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { applyArgv } from '../../scripts/lib/kube/kubectl.ts';
import {
  bootstrapManifests,
  planBootstrapSecrets,
  toYamlStream,
  unplannedSecrets,
} from '../../scripts/lib/kube/manifests.ts';
import { BACKEND_IDS, type BackendId } from '../../scripts/lib/secrets/backend-id.ts';

const values = {
  INFISICAL_DB_PASSWORD: `pw"with'quotes\\and: colons # and $dollars`,
  INFISICAL_ENCRYPTION_KEY: '0123456789abcdef0123456789abcdef',
  INFISICAL_AUTH_SECRET: 'auth',
  REDIS_PASSWORD: 'redis',
  CLOUDFLARE_API_TOKEN: 'cf',
};

// Keys set in later phases, for the backends whose Secrets they fill.
const LATER = {
  INFISICAL_IDENTITY_ID: '1b2c3d4e-0000-4000-8000-000000000000',
  OPENBAO_UNSEAL_KEY: Buffer.alloc(32, 9).toString('base64'),
};

describe('bootstrap manifests', () => {
  it('puts namespaces first, then both design-page Secrets with base64 data and the Prune=false annotation', () => {
    const manifests = bootstrapManifests(planBootstrapSecrets(values, 'infisical'), { kind: 'apply' });
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

  it('infisical-v1alpha1 adds infisical-service-token only when INFISICAL_SERVICE_TOKEN is set', () => {
    const names = (v: Record<string, string>) =>
      planBootstrapSecrets(v, 'infisical-v1alpha1').map((s) => s.name);
    expect(names(values)).toEqual(['infisical-secrets', 'cloudflare-api-token']);
    // Exactly the three Secrets the command made before backends existed, in the same order.
    expect(names({ ...values, INFISICAL_SERVICE_TOKEN: 'st.a.b.c', ...LATER })).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
      'infisical-service-token',
    ]);
    const withToken = planBootstrapSecrets(
      { ...values, INFISICAL_SERVICE_TOKEN: 'st.a.b.c' },
      'infisical-v1alpha1',
    );
    const token = withToken.find((s) => s.name === 'infisical-service-token');
    expect(token?.namespace).toBe('infisical');
    expect(token?.entries.map((e) => e.name)).toEqual(['infisicalToken']);
  });

  it('infisical (v1beta1) adds infisical-machine-identity only when INFISICAL_IDENTITY_ID is set, never the service token', () => {
    const all = { ...values, ...LATER };
    const plan = planBootstrapSecrets(all, 'infisical');
    expect(plan.map((s) => `${s.namespace}/${s.name}`)).toEqual([
      'infisical/infisical-secrets',
      'cert-manager/cloudflare-api-token',
      'infisical/infisical-machine-identity',
    ]);
    expect(plan[2]?.entries).toEqual([
      { name: 'identityId', key: 'INFISICAL_IDENTITY_ID', value: LATER.INFISICAL_IDENTITY_ID },
    ]);
    const without = { ...all, INFISICAL_IDENTITY_ID: undefined };
    expect(planBootstrapSecrets(without, 'infisical').map((s) => s.name)).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
    ]);
    expect(unplannedSecrets(without, 'infisical')).toEqual([
      { namespace: 'infisical', name: 'infisical-machine-identity', keys: ['INFISICAL_IDENTITY_ID'] },
    ]);
    expect(unplannedSecrets(all, 'infisical')).toEqual([]);
  });

  it('openbao plans cloudflare-api-token and openbao-unseal-key, never an Infisical Secret', () => {
    const all = { ...values, INFISICAL_SERVICE_TOKEN: 'st.a.b.c', ...LATER };
    const plan = planBootstrapSecrets(all, 'openbao');
    expect(plan.map((s) => `${s.namespace}/${s.name}`)).toEqual([
      'cert-manager/cloudflare-api-token',
      'openbao/openbao-unseal-key',
    ]);
    expect(plan[1]?.entries).toEqual([
      { name: 'unseal-key', key: 'OPENBAO_UNSEAL_KEY', value: LATER.OPENBAO_UNSEAL_KEY },
    ]);
    const manifests = bootstrapManifests(plan, { kind: 'apply' });
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      'Namespace/cert-manager',
      'Namespace/openbao',
      'Secret/cloudflare-api-token',
      'Secret/openbao-unseal-key',
    ]);
    expect(toYamlStream(manifests)).not.toMatch(/infisical/i);
    // Without the unseal key (before `bao operator init`): only the Cloudflare token, and it says why.
    const early = { CLOUDFLARE_API_TOKEN: 'cf' };
    expect(planBootstrapSecrets(early, 'openbao').map((s) => s.name)).toEqual(['cloudflare-api-token']);
    expect(unplannedSecrets(early, 'openbao')).toEqual([
      { namespace: 'openbao', name: 'openbao-unseal-key', keys: ['OPENBAO_UNSEAL_KEY'] },
    ]);
  });

  it('every backend plans cloudflare-api-token, and only its own Secrets', () => {
    const all = { ...values, INFISICAL_SERVICE_TOKEN: 'st.a.b.c', ...LATER };
    const planned = Object.fromEntries(
      BACKEND_IDS.map((b: BackendId) => [b, planBootstrapSecrets(all, b).map((s) => s.name)]),
    );
    for (const b of BACKEND_IDS) expect(planned[b], b).toContain('cloudflare-api-token');
    expect(planned['infisical-v1alpha1']).not.toContain('infisical-machine-identity');
    expect(planned.infisical).not.toContain('infisical-service-token');
    expect(planned.openbao).not.toContain('infisical-secrets');
  });

  it('serialises to a YAML stream that parses back to the same objects, whatever the values hold', () => {
    const manifests = bootstrapManifests(planBootstrapSecrets(values, 'infisical'), { kind: 'apply' });
    const docs = parseAllDocuments(toYamlStream(manifests)).map((d) => d.toJS());
    expect(docs).toEqual(manifests);
  });

  it('previews carry what `show` returns and no value', () => {
    const manifests = bootstrapManifests(planBootstrapSecrets(values, 'infisical'), {
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
