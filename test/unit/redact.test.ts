import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { describeSecret, fingerprint, redactor, setFingerprintKey } from '../../scripts/lib/core/redact.ts';
import { Redactor } from '../../scripts/lib/core/redactor.ts';
import { beginRun } from '../../scripts/lib/core/run-context.ts';
import { registerSecrets, valuesToHide } from '../../scripts/lib/secrets/registry.ts';
import { valuesFor } from '../../scripts/lib/secrets/schema.ts';
import { requireTool } from '../helpers/tiers.ts';

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

  it('hides what is registered after a redaction too, the longest still first', () => {
    const r = new Redactor();
    r.register('abcd', 'SHORT');
    expect(r.redact('[xxabcdxx]')).toBe('[xx[REDACTED:SHORT]xx]');
    expect(r.holds('a later-value-9f2e')).toBe(false);
    r.register('xxabcdxx', 'LONG');
    r.register('later-value-9f2e', 'LATER');
    expect(r.holds('a later-value-9f2e')).toBe(true);
    expect(r.redact('[xxabcdxx] later-value-9f2e')).toBe('[[REDACTED:LONG]] [REDACTED:LATER]');
  });

  it('hides each line of a multi-line value', () => {
    const r = new Redactor();
    r.register('line-one\nline-two', 'PEM');
    expect(r.redact('got line-two only')).toBe('got [REDACTED:PEM] only');
  });

  describe('a value that appears more than once: every occurrence is replaced, the rest kept', () => {
    const A = 'CANARY-alpha-0123';
    const B = 'CANARY-bravo-4567';
    const redactor = () => {
      const r = new Redactor();
      r.register(A, 'A');
      r.register(B, 'B');
      return r;
    };
    const cases: [string, string, string][] = [
      ['twice on one line', `x=${A} y=${A} end`, 'x=[REDACTED:A] y=[REDACTED:A] end'],
      ['twice across lines', `one ${A}\ntwo\nthree ${A}!\n`, 'one [REDACTED:A]\ntwo\nthree [REDACTED:A]!\n'],
      [
        'two values interleaved',
        `${A},${B};${A} ${B}\n${B}${A}`,
        '[REDACTED:A],[REDACTED:B];[REDACTED:A] [REDACTED:B]\n[REDACTED:B][REDACTED:A]',
      ],
      ['adjacent to itself', `[${A}${A}${A}]`, '[[REDACTED:A][REDACTED:A][REDACTED:A]]'],
      [
        'in two forms, each twice',
        `${A} ${Buffer.from(A).toString('base64')} ${A} ${Buffer.from(A).toString('base64')}`,
        '[REDACTED:A] [REDACTED:A] [REDACTED:A] [REDACTED:A]',
      ],
    ];
    for (const [what, text, expected] of cases) {
      it(what, () => {
        const r = redactor();
        expect(r.redact(text)).toBe(expected);
        // Redacting what is already redacted changes nothing: no occurrence was left for a second pass.
        expect(r.redact(r.redact(text))).toBe(expected);
      });
    }

    it('one value a prefix of another: each occurrence of either hidden whole', () => {
      const r = new Redactor();
      r.register('CANARY-pre', 'SHORT');
      r.register('CANARY-prefix-long', 'LONG');
      expect(
        r.redact('CANARY-prefix-long CANARY-pre CANARY-prefix-longCANARY-pre\nCANARY-preCANARY-prefix-long'),
      ).toBe(
        '[REDACTED:LONG] [REDACTED:SHORT] [REDACTED:LONG][REDACTED:SHORT]\n[REDACTED:SHORT][REDACTED:LONG]',
      );
    });

    it('a value whose end repeats its start, twice in a row', () => {
      const r = new Redactor();
      r.register('abababab', 'AB');
      expect(r.redact('<abababababababab>')).toBe('<[REDACTED:AB][REDACTED:AB]>');
    });
  });

  it('ignores values too short to be secrets', () => {
    const r = new Redactor();
    r.register('ab');
    expect(r.redact('ab cd')).toBe('ab cd');
  });
});

describe('encodings made by real encoders', () => {
  // One canary per character an encoder treats specially, and one holding them all.
  const specials = [' ', '/', '+', '@', ':', '\\', '%', "'", '"', '?', '&', '~', '*', '\n'];
  const values: Record<string, string> = {
    ALL: "CANARY all: sp ace/sl+pl@at\\bs%pc'qu?q&a~t*",
    // Both quotes: repr escapes its own quote (') where JSON escapes the other; a control byte as \x01.
    QUOTES: `CANARY-'single'-"double"-\\-\x01-\x7f-\x9b-\u00a0-end`,
    ...Object.fromEntries(specials.map((c, i) => [`CH${i}`, `CANARY-${i}-x${c}y-${c}${c}-end`])),
  };

  /** Go's escaping from its documented rule: every byte but letters, digits and `kept` as %XX (upper-case hex). */
  const goEscape = (v: string, kept: RegExp) =>
    [...Buffer.from(v, 'utf8')]
      .map((b) =>
        /[A-Za-z0-9]/.test(String.fromCharCode(b)) || kept.test(String.fromCharCode(b))
          ? String.fromCharCode(b)
          : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
      )
      .join('');

  const python3 = requireTool(
    'python3',
    "Python's own URL encoders, repr and json.dumps in the redactor test",
  );

  /** Each value through Python's own encoders, run as a child (values on stdin); none without python3. */
  function pythonForms(): Record<string, Record<string, string>> {
    if (!python3) return {};
    const script = `
import json, sys, urllib.parse
values = json.load(sys.stdin)
out = {}
for k, v in values.items():
    out[k] = {
        'quote': urllib.parse.quote(v),
        'quote-safe-none': urllib.parse.quote(v, safe=''),
        'quote_plus': urllib.parse.quote_plus(v),
        'urlencode': urllib.parse.urlencode({'p': v})[2:],
        'repr': repr(v)[1:-1],
        'json.dumps': json.dumps(v)[1:-1],
        'repr-in-list': repr([v])[2:-2],
    }
json.dump(out, sys.stdout)
`;
    return JSON.parse(execFileSync(python3, ['-c', script], { input: JSON.stringify(values) }).toString());
  }

  it('hides every variant in one text, keeping everything else', () => {
    const python = pythonForms();
    const r = new Redactor();
    for (const [name, v] of Object.entries(values)) r.register(v, name);
    const lines: { line: string; expected: string }[] = [];
    for (const [name, v] of Object.entries(values)) {
      const variants: Record<string, string> = {
        encodeURIComponent: encodeURIComponent(v),
        encodeURI: encodeURI(v),
        URLSearchParams: new URLSearchParams({ p: v }).toString().slice(2),
        'URL userinfo': new URL(`http://u:${encodeURIComponent(v)}@h/`).password,
        // url.UserPassword: unreserved and $&+,;= kept (RFC 3986 §3.2.1, less the ':' Go escapes).
        'Go userinfo': goEscape(v, /[-_.~$&+,;=]/),
        // url.PathEscape: unreserved and : @ & = + $ kept.
        'Go PathEscape': goEscape(v, /[-_.~:@&=+$]/),
        'lower-case %xx': encodeURIComponent(v).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
        'JSON in JSON': JSON.stringify(JSON.stringify(v)).slice(3, -3),
        base64url: Buffer.from(v).toString('base64url'),
        hex: Buffer.from(v).toString('hex'),
        ...python[name],
      };
      for (const [how, form] of Object.entries(variants)) {
        lines.push({
          line: `<${name} ${how}> ${form} </${how}>`,
          expected: `<${name} ${how}> [REDACTED:${name}] </${how}>`,
        });
      }
    }
    const shown = r.redact(lines.map((l) => l.line).join('\n')).split('\n');
    // Each form is replaced whole (every encoder here escapes a newline, so one form is one line).
    lines.forEach(({ line, expected }, i) => {
      expect(shown[i], line).toBe(expected);
    });
  });
});

describe('fingerprints', () => {
  afterEach(() => void beginRun());

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
    beginRun();
    expect(fingerprint('secret')).toBeUndefined();
    expect(describeSecret('KEY', 'héllo')).toBe('KEY (5 chars)');
  });
});

describe('derived values', () => {
  it('are registered with every encoding, so the base64 of a connection URI is hidden too', () => {
    beginRun();
    const password = 'p@ss:w/rd-0123';
    registerSecrets({ INFISICAL_DB_PASSWORD: password });
    const uri = valuesFor('infisical-secrets', { INFISICAL_DB_PASSWORD: password }).find(
      (e) => e.name === 'DB_CONNECTION_URI',
    )?.value as string;
    expect(uri).toContain('@postgresql:5432/infisical');
    expect(Object.values(valuesToHide({ INFISICAL_DB_PASSWORD: password }))).toContain(uri);
    const b64 = Buffer.from(uri).toString('base64');
    expect(redactor.redact(`data: ${b64}`)).toBe('data: [REDACTED:DB_CONNECTION_URI]');
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
