import { describe, expect, it } from 'vitest';
import { generateValue } from '../../scripts/lib/secrets/generate.ts';
import { SECRET_SCHEMA, type SecretSpec } from '../../scripts/lib/secrets/schema.ts';

describe('generateValue', () => {
  it('makes values that pass their own format check, different every time', () => {
    for (const spec of SECRET_SCHEMA as readonly SecretSpec[]) {
      const a = generateValue(spec.generate);
      if (spec.generate.kind === 'manual') {
        expect(a, spec.key).toBeUndefined();
        continue;
      }
      expect(a, spec.key).toBeDefined();
      expect(generateValue(spec.generate)).not.toBe(a);
      if (spec.format) expect(spec.format.test(a as string), spec.key).toBe(true);
    }
  });

  it('matches the openssl shapes', () => {
    expect(generateValue({ kind: 'hex', bytes: 16 })).toMatch(/^[0-9a-f]{32}$/);
    expect(Buffer.from(generateValue({ kind: 'base64', bytes: 32 }) as string, 'base64')).toHaveLength(32);
    expect(generateValue({ kind: 'random-chars', length: 60 })).toMatch(/^[A-Za-z0-9]{60}$/);
  });
});
