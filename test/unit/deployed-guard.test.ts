/**
 * The never-rotate guard of provisioning (checkGuardedSecrets in scripts/lib/bifrost/deployed.ts, called by
 * provision-bifrost before anything is uploaded): every secret the README names as one that must not change
 * after the first deploy is refused when changed, against a record of either version, unless
 * --allow-rotate names it; and another FINGERPRINT_KEY is refused since nothing could be compared.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkGuardedSecrets,
  type DeployedRecord,
  GUARDED_SECRETS,
  HostFingerprints,
} from '../../scripts/lib/bifrost/deployed.ts';

const KEY = 'fingerprint-key-0123456789abcdef';
const values: Record<string, string> = {
  CLOUDFLARE_API_TOKEN: 'cf-token-0123456789',
  AUTHENTIK_TOKEN: 'ak-token-0123456789',
  AUTHENTIK_SECRET_KEY: 'ak-secret-key-0123456789',
  AUTHENTIK_POSTGRESQL_PASSWORD: 'ak-pg-password-0123456789',
  NB_DATA_STORE_KEY: Buffer.alloc(32, 7).toString('base64'),
  NB_RELAY_SECRET: 'relay-secret-0123456789',
};
// README "Provisioning the Bifrost VPS", step 2.
const MUST_NOT_CHANGE = [
  'AUTHENTIK_POSTGRESQL_PASSWORD',
  'AUTHENTIK_SECRET_KEY',
  'NB_DATA_STORE_KEY',
  'NB_RELAY_SECRET',
];

/** The record a first deploy of `values` leaves (version 2). */
function firstDeploy(): DeployedRecord {
  const fp = HostFingerprints.forHost(KEY, undefined);
  const { guarded } = checkGuardedSecrets(values, undefined, [], fp);
  return {
    version: 2,
    salt: fp.salt,
    keyCheck: fp.keyCheck,
    bundleDigest: 'digest',
    secrets: fp.secretsOf(values),
    guarded,
    deployedAt: new Date(0).toISOString(),
    by: 'test',
  };
}

/** A record as the first release wrote it: plain SHA-256 of each value. */
function legacyDeploy(): DeployedRecord {
  const sha = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex');
  const guarded = Object.fromEntries(MUST_NOT_CHANGE.map((k) => [k, sha(values[k] as string)]));
  return { bundleDigest: 'digest', secrets: {}, guarded, deployedAt: new Date(0).toISOString(), by: 'test' };
}

const check = (record: DeployedRecord, changed: Record<string, string>, allow: string[] = [], key = KEY) =>
  checkGuardedSecrets({ ...values, ...changed }, record, allow, HostFingerprints.forHost(key, record));

describe('the never-rotate guard of provisioning', () => {
  it('guards exactly the secrets the README names', () => {
    expect(GUARDED_SECRETS.map((s) => s.key).sort()).toEqual(MUST_NOT_CHANGE);
    expect(Object.keys(firstDeploy().guarded).sort()).toEqual(MUST_NOT_CHANGE);
  });

  for (const [what, record] of [
    ['a version 2 record', firstDeploy],
    ['a version 1 (plain SHA-256) record', legacyDeploy],
  ] as const) {
    it(`refuses each of them changed against ${what}, unless --allow-rotate names it`, () => {
      expect(check(record(), {}).rotated).toEqual([]);
      for (const key of MUST_NOT_CHANGE) {
        const changed = { [key]: `${values[key]}-changed` };
        expect(() => check(record(), changed), key).toThrow(
          new RegExp(`nothing uploaded: secrets that must not change have changed:\\n  - ${key}: differs`),
        );
        expect(() => check(record(), changed, ['NB_PROXY_TOKEN']), key).toThrow(/must not change/);
        expect(check(record(), changed, [key]).rotated).toEqual([key]);
      }
      // Two changed at once: both named, nothing allowed by naming only one.
      const both = { NB_DATA_STORE_KEY: 'other-store-key-0123', NB_RELAY_SECRET: 'other-relay-0123' };
      expect(() => check(record(), both, ['NB_RELAY_SECRET'])).toThrow(/NB_DATA_STORE_KEY: differs/);
      // A free secret changes freely.
      expect(check(record(), { CLOUDFLARE_API_TOKEN: 'new-cf-token-0123' }).rotated).toEqual([]);
    });
  }

  it('refuses another FINGERPRINT_KEY (nothing could be compared) unless --allow-rotate FINGERPRINT_KEY', () => {
    const record = firstDeploy();
    const otherKey = 'another-fingerprint-key-0123456789';
    expect(() => check(record, {}, [], otherKey)).toThrow(/FINGERPRINT_KEY is not the key/);
    expect(() => check(record, {}, ['NB_DATA_STORE_KEY'], otherKey)).toThrow(
      /FINGERPRINT_KEY is not the key/,
    );
    expect(check(record, {}, ['FINGERPRINT_KEY'], otherKey).rotated).toEqual(['FINGERPRINT_KEY']);
  });

  it('salts each host: one value under one key is recorded differently for two hosts, and each record keeps its salt', () => {
    const a = HostFingerprints.forHost(KEY, undefined);
    const b = HostFingerprints.forHost(KEY, undefined);
    expect(a.salt).toMatch(/^[0-9a-f]{32}$/);
    expect(a.salt).not.toBe(b.salt);
    const recordA = a.secretsOf(values);
    const recordB = b.secretsOf(values);
    expect(Object.keys(recordA).length).toBeGreaterThan(0);
    for (const [key, recorded] of Object.entries(recordA)) expect(recordB[key], key).not.toBe(recorded);
    // Read back from the host, a record is compared under its own salt.
    const record = firstDeploy();
    expect(HostFingerprints.forHost(KEY, record).secretsOf(values)).toEqual(record.secrets);
  });

  it('without a record, compares with the live env file that holds each (.secrets.env or .env) and names it', () => {
    const fp = HostFingerprints.forHost(KEY, undefined);
    const live = {
      '.secrets.env': `NB_DATA_STORE_KEY=${values.NB_DATA_STORE_KEY}\nNB_RELAY_SECRET=${values.NB_RELAY_SECRET}\n`,
      '.env': `AUTHENTIK_SECRET_KEY=${values.AUTHENTIK_SECRET_KEY}\nAUTHENTIK_POSTGRESQL_PASSWORD=${values.AUTHENTIK_POSTGRESQL_PASSWORD}\n`,
    };
    const withoutRecord = (
      changed: Record<string, string>,
      allow: string[] = [],
      files: Record<string, string> = live,
    ) => checkGuardedSecrets({ ...values, ...changed }, undefined, allow, fp, files);
    expect(withoutRecord({}).rotated).toEqual([]);
    for (const [key, file] of [
      ['NB_DATA_STORE_KEY', '.secrets.env'],
      ['AUTHENTIK_SECRET_KEY', '.env'],
    ]) {
      const changed = { [key as string]: 'changed-0123456789' };
      expect(() => withoutRecord(changed), key).toThrow(
        `  - ${key}: differs from the value in the host's live ${file} (compared with the live file because the host's deploy record .deployed.json is missing or unreadable)`,
      );
      expect(withoutRecord(changed, [key as string]).rotated).toEqual([key]);
      // A first deploy: nothing on the host to compare with.
      expect(withoutRecord(changed, [], {}).rotated).toEqual([]);
    }
  });
});
