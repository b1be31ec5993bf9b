import { describe, expect, it } from 'vitest';
import {
  CONSUMERS,
  describeGenerator,
  type Generator,
  k8sConsumersFor,
  keysFor,
  namesFor,
  SECRET_KEYS,
  SECRET_SCHEMA,
  specOf,
  valuesFor,
} from '../../scripts/lib/secrets/schema.ts';

// Every key the design page names (its "Bootstrap Secrets" section), plus the optional service token.
const DESIGN_PAGE_KEYS = [
  'HCLOUD_TOKEN',
  'PROXMOX_PASSWORD',
  'CLOUDFLARE_API_TOKEN',
  'AUTHENTIK_TOKEN',
  'AUTHENTIK_SECRET_KEY',
  'AUTHENTIK_POSTGRESQL_PASSWORD',
  'AUTHENTIK_GITHUB_SECRET',
  'NB_DATA_STORE_KEY',
  'NB_RELAY_SECRET',
  'NB_PROXY_TOKEN',
  'NB_BIFROST_SETUP_KEY',
  'INFISICAL_DB_PASSWORD',
  'INFISICAL_ENCRYPTION_KEY',
  'INFISICAL_AUTH_SECRET',
  'REDIS_PASSWORD',
];

describe('secret schema', () => {
  it("holds exactly the design page keys plus the runtime backends' keys, FINGERPRINT_KEY and NB_OWNER_PASSWORD, once each", () => {
    expect([...SECRET_KEYS].sort()).toEqual(
      [
        ...DESIGN_PAGE_KEYS,
        'INFISICAL_SERVICE_TOKEN',
        'INFISICAL_IDENTITY_ID',
        'OPENBAO_UNSEAL_KEY',
        'FINGERPRINT_KEY',
        // Not on the design page: it seeds NetBird's first admin, so /setup is never offered.
        'NB_OWNER_PASSWORD',
      ].sort(),
    );
    expect(new Set(SECRET_KEYS).size).toBe(SECRET_KEYS.length);
  });

  it('every use names a known consumer', () => {
    for (const spec of SECRET_SCHEMA) {
      expect(spec.uses.length, spec.key).toBeGreaterThan(0);
      for (const use of spec.uses) expect(Object.keys(CONSUMERS), spec.key).toContain(use.consumer);
    }
  });

  it('records the renames of the Bifrost .secrets.env', () => {
    const env = { CLOUDFLARE_API_TOKEN: 'cf', AUTHENTIK_TOKEN: 'ak', NB_RELAY_SECRET: 'relay' };
    const names = valuesFor('bifrost-secrets-env', env).map((e) => [e.name, e.value]);
    expect(names).toEqual([
      ['CF_DNS_API_TOKEN', 'cf'],
      ['AUTHENTIK_BOOTSTRAP_TOKEN', 'ak'],
      ['NB_RELAY_SECRET', 'relay'],
    ]);
  });

  it('says which keys each consumer requires, and keeps the later-phase NetBird keys optional', () => {
    const secretsEnv = keysFor(['bifrost-secrets-env']);
    expect(secretsEnv.required).toEqual([
      'CLOUDFLARE_API_TOKEN',
      'AUTHENTIK_TOKEN',
      'NB_DATA_STORE_KEY',
      'NB_RELAY_SECRET',
      'NB_OWNER_PASSWORD',
    ]);
    expect(secretsEnv.optional).toEqual(['NB_PROXY_TOKEN', 'NB_BIFROST_SETUP_KEY']);
    // The original made NB_BIFROST_SETUP_KEY required in .env and broke every first deploy.
    expect(keysFor(['bifrost-dot-env']).optional).toEqual(['NB_BIFROST_SETUP_KEY']);
    const k8s = keysFor(k8sConsumersFor('infisical-v1alpha1'));
    expect(k8s.required.sort()).toEqual(
      [
        'CLOUDFLARE_API_TOKEN',
        'INFISICAL_AUTH_SECRET',
        'INFISICAL_DB_PASSWORD',
        'INFISICAL_ENCRYPTION_KEY',
        'REDIS_PASSWORD',
      ].sort(),
    );
    expect(k8s.optional).toEqual(['INFISICAL_SERVICE_TOKEN']);
  });

  it("lists each runtime backend's Kubernetes Secrets, and the keys each requires", () => {
    expect(k8sConsumersFor('infisical-v1alpha1')).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
      'infisical-service-token',
    ]);
    expect(k8sConsumersFor('infisical')).toEqual([
      'infisical-secrets',
      'cloudflare-api-token',
      'infisical-machine-identity',
    ]);
    expect(k8sConsumersFor('openbao')).toEqual(['cloudflare-api-token', 'openbao-unseal-key']);
    expect(keysFor(k8sConsumersFor('infisical'))).toEqual({
      required: [
        'CLOUDFLARE_API_TOKEN',
        'INFISICAL_DB_PASSWORD',
        'INFISICAL_ENCRYPTION_KEY',
        'INFISICAL_AUTH_SECRET',
        'REDIS_PASSWORD',
      ],
      optional: ['INFISICAL_IDENTITY_ID'],
    });
    // With OpenBao, none of Infisical's keys is needed, nor reported missing.
    expect(keysFor(k8sConsumersFor('openbao'))).toEqual({
      required: ['CLOUDFLARE_API_TOKEN'],
      optional: ['OPENBAO_UNSEAL_KEY'],
    });
    expect(namesFor('infisical-machine-identity')).toEqual([
      { name: 'identityId', key: 'INFISICAL_IDENTITY_ID', required: false },
    ]);
    expect(namesFor('openbao-unseal-key')).toEqual([
      { name: 'unseal-key', key: 'OPENBAO_UNSEAL_KEY', required: false },
    ]);
    const ns = (c: keyof typeof CONSUMERS) => (CONSUMERS[c] as { namespace?: string }).namespace;
    expect(ns('infisical-machine-identity')).toBe('infisical');
    expect(ns('openbao-unseal-key')).toBe('openbao');
    expect(valuesFor('openbao-unseal-key', { OPENBAO_UNSEAL_KEY: 'k' })).toEqual([
      { name: 'unseal-key', key: 'OPENBAO_UNSEAL_KEY', value: 'k' },
    ]);
  });

  it('the backend keys are set by hand in Phase 2; the unseal key is rotated only after a rekey', () => {
    for (const key of ['INFISICAL_IDENTITY_ID', 'OPENBAO_UNSEAL_KEY']) {
      expect(specOf(key)?.generate.kind, key).toBe('manual');
      expect(specOf(key)?.setDuring, key).toMatch(/^Phase 2 /);
    }
    expect(specOf('INFISICAL_IDENTITY_ID')?.rotation.kind).toBe('free');
    const rotation = specOf('OPENBAO_UNSEAL_KEY')?.rotation;
    expect(rotation?.kind).toBe('disruptive');
    expect(rotation?.kind === 'disruptive' && rotation.effect).toMatch(/bao operator rekey/);
  });

  it('derives DB_CONNECTION_URI with the password URL-encoded', () => {
    const entries = valuesFor('infisical-secrets', { INFISICAL_DB_PASSWORD: 'p@ss/w:rd?#&' });
    expect(entries.map((e) => e.name)).toEqual(['DB_PASSWORD', 'DB_CONNECTION_URI']);
    expect(entries[1]?.value).toBe(
      'postgresql://infisical:p%40ss%2Fw%3Ard%3F%23%26@postgresql:5432/infisical',
    );
    const [, uri] = valuesFor('infisical-secrets', { INFISICAL_DB_PASSWORD: 'a b%c' });
    expect(new URL(uri?.value ?? '').password).toBe('a%20b%25c');
  });

  it('marks NB_DATA_STORE_KEY as never rotated and NB_RELAY_SECRET as disruptive', () => {
    expect(specOf('NB_DATA_STORE_KEY')?.rotation.kind).toBe('never');
    expect(specOf('NB_RELAY_SECRET')?.rotation.kind).toBe('disruptive');
    expect(specOf('CLOUDFLARE_API_TOKEN')?.rotation.kind).toBe('free');
  });

  it('describes generators the way the design page does', () => {
    expect(describeGenerator(specOf('AUTHENTIK_SECRET_KEY')?.generate as Generator)).toBe(
      'openssl rand -base64 48',
    );
    expect(describeGenerator(specOf('NB_DATA_STORE_KEY')?.generate as Generator)).toBe(
      'openssl rand -base64 32',
    );
    expect(describeGenerator(specOf('INFISICAL_ENCRYPTION_KEY')?.generate as Generator)).toBe(
      'openssl rand -hex 16',
    );
    expect(describeGenerator(specOf('AUTHENTIK_TOKEN')?.generate as Generator)).toBe('60 random characters');
    expect(describeGenerator(specOf('HCLOUD_TOKEN')?.generate as Generator)).toMatch(/^set by hand: /);
  });

  it('format checks accept what the generators make and reject other shapes', () => {
    const ok: Record<string, string> = {
      NB_DATA_STORE_KEY: Buffer.alloc(32, 7).toString('base64'),
      INFISICAL_ENCRYPTION_KEY: 'a'.repeat(32),
      AUTHENTIK_SECRET_KEY: Buffer.alloc(48, 1).toString('base64'),
      NB_PROXY_TOKEN: `nbx_${'A1'.repeat(18)}`,
      NB_BIFROST_SETUP_KEY: '1B2C3D4E-0000-4000-8000-000000000000',
      HCLOUD_TOKEN: 'x'.repeat(64),
      INFISICAL_IDENTITY_ID: '1b2c3d4e-0000-4000-8000-000000000000',
      OPENBAO_UNSEAL_KEY: Buffer.alloc(32, 3).toString('base64'),
    };
    const bad: Record<string, string> = {
      NB_DATA_STORE_KEY: Buffer.alloc(16, 7).toString('base64'),
      INFISICAL_ENCRYPTION_KEY: 'g'.repeat(32),
      AUTHENTIK_SECRET_KEY: 'short',
      NB_PROXY_TOKEN: `nbp_${'A1'.repeat(18)}`,
      NB_BIFROST_SETUP_KEY: 'not-a-uuid',
      HCLOUD_TOKEN: 'x'.repeat(63),
      INFISICAL_IDENTITY_ID: 'my-identity',
      OPENBAO_UNSEAL_KEY: Buffer.alloc(16, 3).toString('base64'),
    };
    for (const [key, value] of Object.entries(ok)) expect(specOf(key)?.format?.test(value), key).toBe(true);
    for (const [key, value] of Object.entries(bad)) expect(specOf(key)?.format?.test(value), key).toBe(false);
    // `bao operator init` prints a 33-byte share with Shamir (several shares), 32 bytes with one.
    expect(specOf('OPENBAO_UNSEAL_KEY')?.format?.test(Buffer.alloc(33, 3).toString('base64'))).toBe(true);
    expect(specOf('OPENBAO_UNSEAL_KEY')?.format?.test(Buffer.alloc(34, 3).toString('base64'))).toBe(false);
  });
});
