import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { describeSecret, fingerprint, Redactor, setFingerprintKey } from '../../scripts/lib/redact.ts';
import { registerSecrets, valuesToHide } from '../../scripts/lib/secrets/registry.ts';
import { infisicalDbConnectionUri } from '../../scripts/lib/secrets/schema.ts';

describe('Redactor', () => {
  it('hides a value in every form it travels in', () => {
    const r = new Redactor();
    const value = 'p@ss "word"/&';
    r.register(value, 'DB_PASSWORD');
    const forms = [
      value,
      Buffer.from(value).toString('base64'),
      encodeURIComponent(value),
      JSON.stringify(value),
    ];
    for (const form of forms) {
      const out = r.redact(`before ${form} after`);
      expect(out).toContain('[REDACTED:DB_PASSWORD]');
      expect(out).not.toContain(value);
    }
    // Each form is replaced whole: nothing of it is left beside the label (a base64 form hidden only
    // up to its last, padded group would still show the value's last bytes).
    const whole = (form: string) => r.redact(`before ${form} after`);
    expect(whole(value)).toBe('before [REDACTED:DB_PASSWORD] after');
    expect(whole(Buffer.from(value).toString('base64'))).toBe('before [REDACTED:DB_PASSWORD] after');
    expect(whole(encodeURIComponent(value))).toBe('before [REDACTED:DB_PASSWORD] after');
    expect(whole(JSON.stringify(value))).toBe('before "[REDACTED:DB_PASSWORD]" after');
  });

  it('replaces the longest secret first, so one inside another is hidden whole', () => {
    const r = new Redactor();
    r.register('abcd', 'SHORT');
    r.register('xxabcdxx', 'LONG');
    expect(r.redact('[xxabcdxx]')).toBe('[[REDACTED:LONG]]');
  });

  it('hides each line of a multi-line value', () => {
    const r = new Redactor();
    r.register('line-one\nline-two', 'PEM');
    expect(r.redact('got line-two only')).toBe('got [REDACTED:PEM] only');
  });

  it('ignores values too short to be secrets', () => {
    const r = new Redactor();
    r.register('ab');
    expect(r.redact('ab cd')).toBe('ab cd');
  });
});

describe('fingerprints', () => {
  afterEach(() => setFingerprintKey(undefined));

  it('are keyed: stable under one key, different under another, absent without a key', () => {
    setFingerprintKey('key-one-0123456789');
    const one = fingerprint('secret');
    expect(one).toBe(fingerprint('secret'));
    expect(one).toMatch(/^hmac:[0-9a-f]{8}$/);
    // Not a plain hash: the first 8 hex digits of SHA-256("secret") never show.
    expect(one).not.toContain(createHash('sha256').update('secret').digest('hex').slice(0, 8));
    setFingerprintKey('key-two-0123456789');
    expect(fingerprint('secret')).not.toBe(one);
    expect(describeSecret('KEY', 'héllo')).toBe(`KEY (5 chars, ${fingerprint('héllo')})`);
    setFingerprintKey(undefined);
    expect(fingerprint('secret')).toBeUndefined();
    expect(describeSecret('KEY', 'héllo')).toBe('KEY (5 chars)');
  });
});

describe('derived values', () => {
  it('are registered with every encoding, so the base64 of a connection URI is hidden too', () => {
    const r = new Redactor();
    const password = 'p@ss:w/rd-0123';
    registerSecrets({ INFISICAL_DB_PASSWORD: password }, r);
    const uri = infisicalDbConnectionUri(password);
    expect(Object.values(valuesToHide({ INFISICAL_DB_PASSWORD: password }))).toContain(uri);
    const b64 = Buffer.from(uri).toString('base64');
    expect(r.redact(`data: ${b64}`)).toBe('data: [REDACTED:DB_CONNECTION_URI]');
  });

  it('hides a value base64-encoded inside a longer text, at every alignment', () => {
    const r = new Redactor();
    const value = 'CANARY-0123456789abcdef';
    r.register(value, 'V');
    for (const prefix of ['', 'a', 'ab', 'abc', 'KEY=']) {
      const encoded = Buffer.from(`${prefix}${value}\nNEXT=1\n`).toString('base64');
      const shown = r.redact(encoded);
      expect(shown).toContain('[REDACTED:V]');
      // What is left around the label cannot hold the value.
      for (const part of shown.split('[REDACTED:V]')) {
        expect(Buffer.from(part, 'base64').toString('latin1')).not.toContain(value.slice(2, -2));
      }
    }
  });
});
