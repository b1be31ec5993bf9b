/**
 * The native decryptor on hostile and broken files: each one ends in an InputError (exit 2) that
 * names the problem and the limit, never a RangeError, a stack overflow or a stack trace, through
 * the library and through `scripts/sops.ts decrypt`. Parsing is linear (40,000 keys in seconds,
 * where a quadratic duplicate-key check took minutes); the times are printed, never asserted.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../scripts/lib/core/errors.ts';
import {
  decryptSopsFile,
  decryptSopsText,
  encryptSops,
  type SopsFormat,
} from '../scripts/lib/secrets/sops/index.ts';
import { storeFor } from '../scripts/lib/secrets/sops/stores.ts';
import {
  DOTENV_DOC,
  FLAT_DOC,
  isolatedEnv,
  makeSopsFixtures,
  runSopsCli,
  type SopsFixtures,
  secretStrings,
} from './fixtures/make-sops-fixtures.ts';

let fx: SopsFixtures;
let json = '';
beforeAll(async () => {
  fx = await makeSopsFixtures();
  json = await encryptSops([FLAT_DOC], { recipients: [fx.key.recipient], format: 'json' });
});
afterAll(() => rmSync(fx.dir, { recursive: true, force: true }));

const withKey = () => isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: fx.key.keysFile });
const secrets = () => [...secretStrings(FLAT_DOC), ...secretStrings(DOTENV_DOC)];
const text = (name: 'flat' | 'dotenv') => readFileSync(fx.files[name], 'utf8');
const EXT: Record<SopsFormat, string> = { yaml: 'yaml', json: 'json', dotenv: 'env', binary: 'txt' };

const nested = (depth: number, format: 'yaml' | 'json') =>
  format === 'yaml'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** A top-level key added to an encrypted file (JSON: as its first key; YAML: as its last line). */
function withKeyAdded(format: 'yaml' | 'json', key: string, value: string): string {
  return format === 'yaml'
    ? `${text('flat')}${key}: ${value}\n`
    : json.replace(/^\{/, `{"${key}": ${value},`);
}

function setLine(original: string, re: RegExp, line: string): string {
  if (!re.test(original)) throw new Error(`test setup: no line matches ${re}`);
  return original.replace(re, line);
}

const ENC = (data: string, cipher = 'AES256_GCM', type = 'str') =>
  `ENC[${cipher},data:${data},iv:${'A'.repeat(43)}=,tag:${'B'.repeat(22)}==,type:${type}]`;

interface Case {
  name: string;
  format: SopsFormat;
  make: () => string;
  message: RegExp;
}

const cases: Case[] = [
  {
    // JSON only: the count is the shared Budget's, and a 200,000-item YAML file takes seconds to parse.
    name: 'json: more than 200,000 list items',
    format: 'json',
    make: () => withKeyAdded('json', 'many_unencrypted', `[${'1,'.repeat(200_000)}1]`),
    message: /: more than 200000 keys and list items \(limit: 200000\), the last at many_unencrypted/,
  },
  ...(['yaml', 'json'] as const).flatMap((format): Case[] => [
    {
      name: `${format}: nesting 150 levels deep`,
      format,
      make: () => withKeyAdded(format, 'deep_unencrypted', nested(150, format)),
      message: /: maps and lists nest more than 100 levels deep at deep_unencrypted.* \(limit: 100\)$/,
    },
    {
      name: `${format}: nesting 20,000 levels deep`,
      format,
      make: () => withKeyAdded(format, 'deep_unencrypted', nested(20_000, format)),
      message:
        /: maps and lists nest (more than 100 levels deep at .*|too deeply to read) \(limit: 100( levels)?\)$/,
    },
    {
      name: `${format}: a value of 5 MB`,
      format,
      make: () => withKeyAdded(format, 'huge', `"${ENC('A'.repeat(5_000_000))}"`),
      message: /: the value at huge is 5000\d{3} characters long \(limit: 1048576, 1 MiB\)$/,
    },
    {
      name: `${format}: an unsupported SOPS version (4.0.0)`,
      format,
      make: () =>
        format === 'yaml'
          ? setLine(text('flat'), /^ {4}version: .*$/m, '    version: 4.0.0')
          : setLine(json, /"version": ".*?"/, '"version": "4.0.0"'),
      message: /: unsupported SOPS version 4\.0\.0: this reader knows 3\.x only$/,
    },
    {
      name: `${format}: an unsupported cipher (AES256_CBC)`,
      format,
      make: () =>
        format === 'yaml'
          ? setLine(text('flat'), /^API_TOKEN: ENC\[AES256_GCM,/m, 'API_TOKEN: ENC[AES256_CBC,')
          : setLine(json, /"API_TOKEN": "ENC\[AES256_GCM,/, '"API_TOKEN": "ENC[AES256_CBC,'),
      message: /: the value at key path API_TOKEN is encrypted with the unsupported SOPS cipher AES256_CBC/,
    },
  ]),
  {
    name: 'dotenv: a line of 5 MB',
    format: 'dotenv',
    make: () => `${text('dotenv')}huge=${ENC('A'.repeat(5_000_000))}\n`,
    message: /: the value at line \d+ is 5000\d{3} characters long \(limit: 1048576, 1 MiB\)$/,
  },
  {
    name: 'dotenv: sops_version= (empty)',
    format: 'dotenv',
    make: () => setLine(text('dotenv'), /^sops_version=.*$/m, 'sops_version='),
    message: /: unsupported SOPS version \(sops\.version is empty\)/,
  },
  {
    name: 'dotenv: a garbage sops_version',
    format: 'dotenv',
    make: () => setLine(text('dotenv'), /^sops_version=.*$/m, 'sops_version=\u001b[31mbanana'),
    message: /: unsupported SOPS version \(sops\.version is malformed\): not a version sops writes$/,
  },
  {
    name: 'dotenv: no sops_mac',
    format: 'dotenv',
    make: () => setLine(text('dotenv'), /^sops_mac=.*\n/m, ''),
    message: /: File has no MAC \(sops\.mac is missing\)/,
  },
  {
    name: 'dotenv: a garbage sops_age__list_0__map_recipient',
    format: 'dotenv',
    make: () =>
      setLine(
        text('dotenv'),
        /^sops_age__list_0__map_recipient=.*$/m,
        'sops_age__list_0__map_recipient=!garbage!',
      ),
    message: /: sops\.age\[0\]\.recipient is not an age recipient \(age1…\) or an SSH public key$/,
  },
  {
    name: 'dotenv: a metadata line nested under a value (sops_mac__map_x)',
    format: 'dotenv',
    make: () => `${text('dotenv')}sops_mac__map_x=1\n`,
    message: /: the metadata line sops_mac__map_x nests under a value another line sets$/,
  },
  {
    name: 'dotenv: a metadata list index that skips ahead',
    format: 'dotenv',
    make: () => `${text('dotenv')}sops_age__list_99999999__map_enc=x\n`,
    message:
      /: the metadata line sops_age__list_99999999__map_enc has a list index that is not the next number in its list$/,
  },
  {
    name: 'dotenv: a truncated ENC value',
    format: 'dotenv',
    make: () => setLine(text('dotenv'), /^(API_TOKEN=ENC\[AES256_GCM,data:[^,]*),.*$/m, '$1'),
    message: /: the value at key path API_TOKEN is not an ENC\[AES256_GCM,…\] value$/,
  },
  {
    name: 'dotenv: an ENC value of garbage (commas, no base64)',
    format: 'dotenv',
    make: () =>
      setLine(
        text('dotenv'),
        /^API_TOKEN=.*$/m,
        `API_TOKEN=ENC[AES256_GCM,data:${',iv:,tag:'.repeat(3_000)}`,
      ),
    message: /: the value at key path API_TOKEN is not an ENC\[AES256_GCM,…\] value$/,
  },
  {
    name: 'dotenv: an unsupported cipher',
    format: 'dotenv',
    make: () => setLine(text('dotenv'), /^API_TOKEN=ENC\[AES256_GCM,/m, 'API_TOKEN=ENC[CHACHA20,'),
    message: /: the value at key path API_TOKEN is encrypted with the unsupported SOPS cipher CHACHA20/,
  },
];

function expectNoValues(output: string): void {
  for (const secret of secrets()) expect(output).not.toContain(secret);
}

describe('hostile and broken files: exit 2 with the problem named, never a crash', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const path = join(fx.dir, `case.sops.${EXT[c.format]}`);
      writeFileSync(path, c.make(), { mode: 0o600 });

      const err = await decryptSopsFile(path, { env: withKey() }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).message).toMatch(c.message);
      expectNoValues((err as InputError).message);

      const r = await runSopsCli(['decrypt', path], withKey());
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toBe('');
      const [first = ''] = r.stderr.split('\n');
      expect(first.replace(/^error: /, '')).toMatch(c.message);
      expect(r.stderr).toMatch(/^hint: /m);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stderr).not.toMatch(/RangeError|Maximum call stack|TypeError/);
      expectNoValues(r.stderr);
    });
  }

  it('still refuses a repeated key, in a document and in the sops metadata', () => {
    expect(() => storeFor('yaml').loadEncryptedFile('a: 1\nb: 2\na: 3\n', 'x.yaml')).toThrow(
      'x.yaml is not valid YAML: DUPLICATE_KEY at line 3, column 1',
    );
    const meta = 'a: 1\nsops:\n  mac: x\n  age: []\n  mac: y\n';
    expect(() => storeFor('yaml').loadEncryptedFile(meta, 'x.yaml')).toThrow(
      'x.yaml is not valid YAML: DUPLICATE_KEY at line 5, column 3',
    );
  });
});

describe('parsing is linear', () => {
  const KEYS = 40_000;
  let big = '';
  beforeAll(async () => {
    const doc = Object.fromEntries(
      Array.from({ length: KEYS }, (_, i) => [`KEY_${i}`, `canary-linear-${i}`]),
    );
    const started = performance.now();
    big = await encryptSops([doc], { recipients: [fx.key.recipient], format: 'yaml' });
    console.log(`encrypting ${KEYS} keys took ${Math.round(performance.now() - started)} ms`);
  }, 120_000);

  // The signal is the default test timeout: the quadratic duplicate-key check took minutes here.
  it(`parses a YAML file of ${KEYS} keys`, () => {
    const started = performance.now();
    const parsed = storeFor('yaml').loadEncryptedFile(big, 'big.sops.yaml');
    console.log(`parsing ${KEYS} YAML keys took ${Math.round(performance.now() - started)} ms`);
    expect(parsed.branches[0]?.items).toHaveLength(KEYS);
  });

  it(`decrypts a YAML file of ${KEYS} keys`, async () => {
    const started = performance.now();
    const decrypted = await decryptSopsText(big, { path: 'big.sops.yaml', identities: [fx.key.identity] });
    console.log(`decrypting ${KEYS} YAML keys took ${Math.round(performance.now() - started)} ms`);
    expect(Object.keys(decrypted.documents[0] as object)).toHaveLength(KEYS);
  });
});
