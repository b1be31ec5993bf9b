import { describe, expect, it } from 'vitest';
import { k8sConsumersFor } from '../../scripts/lib/secrets/schema.ts';
import { findProblems, formatProblems, splitProblems } from '../../scripts/lib/secrets/validate.ts';

const K8S = k8sConsumersFor('infisical-v1alpha1');

const good = {
  INFISICAL_DB_PASSWORD: 'db-password-0123456789',
  INFISICAL_ENCRYPTION_KEY: '0123456789abcdef0123456789abcdef',
  INFISICAL_AUTH_SECRET: 'auth-secret-0123456789abcdef0123456789',
  REDIS_PASSWORD: 'redis-password-0123',
  CLOUDFLARE_API_TOKEN: 'cf_0123456789abcdefghijklmnopqrstuvwxyz',
};

describe('findProblems', () => {
  it('accepts a complete, well-formed set', () => {
    expect(findProblems(good, K8S)).toEqual([]);
  });

  it('reports every missing and malformed key together, never the value', () => {
    const secret = 'zz-not-hex-zz-zz-zz-zz-zz-zz-zz-';
    const problems = findProblems(
      { ...good, REDIS_PASSWORD: undefined, CLOUDFLARE_API_TOKEN: '', INFISICAL_ENCRYPTION_KEY: secret },
      K8S,
    );
    expect(problems.map((p) => [p.key, p.kind])).toEqual([
      ['CLOUDFLARE_API_TOKEN', 'missing'],
      ['INFISICAL_ENCRYPTION_KEY', 'malformed'],
      ['REDIS_PASSWORD', 'missing'],
    ]);
    const text = formatProblems(problems);
    expect(text).toContain('k8s Secret infisical-secrets');
    expect(text).toContain('32 hex characters');
    expect(text).not.toContain(secret);
  });

  it('rejects copy-paste slips: a trailing newline, surrounding spaces, control characters', () => {
    for (const slip of [`${good.REDIS_PASSWORD}\n`, ` ${good.REDIS_PASSWORD}`, 'redis\tpassword-0123']) {
      const [problem] = findProblems({ ...good, REDIS_PASSWORD: slip }, K8S);
      expect(problem?.key).toBe('REDIS_PASSWORD');
      expect(problem?.kind).toBe('malformed');
    }
  });

  it('checks optional keys only when present', () => {
    expect(findProblems({ ...good, INFISICAL_SERVICE_TOKEN: 'nope' }, K8S).map((p) => p.key)).toEqual([
      'INFISICAL_SERVICE_TOKEN',
    ]);
    expect(findProblems({ ...good, INFISICAL_SERVICE_TOKEN: 'st.abc.def.ghi' }, K8S)).toEqual([]);
  });

  it("warns, without refusing, about a hand-made token not in its vendor's format; --strict refuses it", () => {
    // A Cloudflare token of an unfamiliar shape (a vendor may change its format): used, with a warning.
    const odd = { ...good, CLOUDFLARE_API_TOKEN: 'cf-token-of-a-new-kind' };
    const [warning] = findProblems(odd, K8S);
    expect(warning).toMatchObject({ key: 'CLOUDFLARE_API_TOKEN', severity: 'warning' });
    expect(warning?.detail).toMatch(/^unexpected format: expected .*used as it is; --strict refuses it/);
    expect(splitProblems(findProblems(odd, K8S)).errors).toEqual([]);
    const [strict] = findProblems(odd, K8S, { strict: true });
    expect(strict).toMatchObject({ key: 'CLOUDFLARE_API_TOKEN', kind: 'malformed', severity: 'error' });
    // A value the suite generates stays an error: its format is ours, not a vendor's.
    const generated = findProblems({ ...good, INFISICAL_ENCRYPTION_KEY: 'g'.repeat(32) }, K8S);
    expect(generated.map((p) => p.severity)).toEqual(['error']);
    // A copy-paste slip in a vendor token is an error too: it breaks the consumer whatever the format.
    const slip = findProblems({ ...good, CLOUDFLARE_API_TOKEN: `${good.CLOUDFLARE_API_TOKEN}\n` }, K8S);
    expect(slip.map((p) => p.severity)).toEqual(['error']);
  });

  it('checks presence only when asked (the keyless dry run)', () => {
    const present = Object.fromEntries(Object.keys(good).map((k) => [k, 'x']));
    expect(findProblems(present, K8S, { presenceOnly: true })).toEqual([]);
    const { REDIS_PASSWORD: _, ...rest } = present;
    expect(findProblems(rest, K8S, { presenceOnly: true }).map((p) => p.key)).toEqual(['REDIS_PASSWORD']);
  });

  it("checks only the backend's Secrets: OpenBao needs no Infisical key, and its unseal key is optional", () => {
    const openbao = k8sConsumersFor('openbao');
    const cf = { CLOUDFLARE_API_TOKEN: good.CLOUDFLARE_API_TOKEN };
    expect(findProblems(cf, openbao)).toEqual([]);
    expect(findProblems(cf, openbao, { presenceOnly: true })).toEqual([]);
    // The same values for an Infisical backend miss every Infisical key.
    expect(findProblems(cf, k8sConsumersFor('infisical')).map((p) => `${p.key} ${p.kind}`)).toEqual([
      'INFISICAL_DB_PASSWORD missing',
      'INFISICAL_ENCRYPTION_KEY missing',
      'INFISICAL_AUTH_SECRET missing',
      'REDIS_PASSWORD missing',
    ]);
    // An unseal key that is present is checked (a wrong length is a warning: it is made by hand).
    const short = findProblems({ ...cf, OPENBAO_UNSEAL_KEY: Buffer.alloc(16).toString('base64') }, openbao);
    expect(short.map((p) => [p.key, p.severity])).toEqual([['OPENBAO_UNSEAL_KEY', 'warning']]);
    expect(
      findProblems({ ...cf, OPENBAO_UNSEAL_KEY: Buffer.alloc(32, 1).toString('base64') }, openbao),
    ).toEqual([]);
    // An Infisical key that is malformed is not OpenBao's business.
    expect(findProblems({ ...cf, INFISICAL_ENCRYPTION_KEY: 'not-hex' }, openbao)).toEqual([]);
  });

  it('checks the machine identity id only with the infisical backend', () => {
    const bad = { ...good, INFISICAL_IDENTITY_ID: 'not-a-uuid' };
    expect(findProblems(bad, k8sConsumersFor('infisical')).map((p) => p.key)).toEqual([
      'INFISICAL_IDENTITY_ID',
    ]);
    expect(findProblems(bad, k8sConsumersFor('infisical-v1alpha1'))).toEqual([]);
  });
});
