import { describe, expect, it } from 'vitest';
import { findProblems, formatProblems } from '../../scripts/lib/secrets/validate.ts';

const K8S = ['infisical-secrets', 'cloudflare-api-token', 'infisical-service-token'] as const;

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

  it('checks presence only when asked (the keyless dry run)', () => {
    const present = Object.fromEntries(Object.keys(good).map((k) => [k, 'x']));
    expect(findProblems(present, K8S, { presenceOnly: true })).toEqual([]);
    const { REDIS_PASSWORD: _, ...rest } = present;
    expect(findProblems(rest, K8S, { presenceOnly: true }).map((p) => p.key)).toEqual(['REDIS_PASSWORD']);
  });
});
