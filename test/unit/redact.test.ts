import { describe, expect, it } from 'vitest';
import { describeSecret, fingerprint, Redactor } from '../../scripts/lib/redact.ts';

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
  it('are stable, short and do not contain the value', () => {
    expect(fingerprint('secret')).toBe(fingerprint('secret'));
    expect(fingerprint('secret')).toMatch(/^sha256:[0-9a-f]{8}$/);
    expect(describeSecret('KEY', 'héllo')).toBe(`KEY (5 chars, ${fingerprint('héllo')})`);
  });
});
