/**
 * `secrets set KEY`: the value from stdin only, a minimal diff (only KEY's ENC[...], lastmodified and mac
 * change), refusals (unknown key, malformed value, never-rotated key) leaving the file untouched, and the
 * result read back by the native decryptor and by the real sops library.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { decryptSopsFile, encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { copyVector, makeAgeKey, YAML_VECTORS } from './fixtures/make-sops-fixtures.ts';
import { runScriptInPty } from './helpers/pty.ts';
import { realSopsDecrypt, realSopsDecryptBin } from './helpers/real-sops.ts';
import { runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTool } from './helpers/tiers.ts';

const CANARY = {
  FINGERPRINT_KEY: Buffer.alloc(32, 7).toString('base64'),
  REDIS_PASSWORD: 'canary0redis0aaaaaaaaaaaaaaaaaaa',
  INFISICAL_ENCRYPTION_KEY: 'c0ffee00c0ffee00c0ffee00c0ffee00',
  AUTHENTIK_TOKEN: `canaryAuthentikToken${'Z'.repeat(30)}`,
};
const NEW_POSTGRES = 'canary1postgres1bbbbbbbbbbbbbbbb';
const NEW_REDIS = 'canary2redis2cccccccccccccccccccc';

async function fixture() {
  const dir = tempDir('sf-secrets-set-');
  const key = await makeAgeKey(dir);
  const file = join(dir, 'bootstrap.sops.yaml');
  writeFileSync(file, await encryptSops(CANARY, { recipients: [key.recipient], format: 'yaml' }), {
    mode: 0o600,
  });
  const env = { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1', SOPS_AGE_KEY_FILE: key.keysFile };
  const set = (args: string[], value: string) =>
    runScript('secrets.ts', ['set', ...args, '--secrets-file', file], env, { input: value });
  const decrypt = async () =>
    (await decryptSopsFile(file, { env: { SOPS_AGE_KEY_FILE: key.keysFile } })).documents[0];
  return { dir, key, file, set, decrypt };
}

/** The lines of a SOPS YAML file with lastmodified and mac blanked: what must stay byte-identical. */
const stable = (text: string) =>
  text.split('\n').map((l) => (/^\s+(lastmodified|mac): /.test(l) ? '(recomputed)' : l));

const noCanary = (r: { stdout: string; stderr: string }, values: string[]) => {
  for (const v of values) expect(r.stdout + r.stderr).not.toContain(v);
};

describe('secrets set', () => {
  it('adds a new key and changes an existing one; only their ENC[...] lines change', async () => {
    const f = await fixture();
    chmodSync(f.file, 0o640);
    const before = readFileSync(f.file, 'utf8');

    const added = await f.set(['AUTHENTIK_POSTGRESQL_PASSWORD'], `${NEW_POSTGRES}\n`);
    expect(added.exitCode, added.stderr).toBe(0);
    expect(added.stdout + added.stderr).toMatch(
      /added\s+AUTHENTIK_POSTGRESQL_PASSWORD \(32 chars, hmac:[0-9a-f]{8}\)/,
    );
    const afterAdd = readFileSync(f.file, 'utf8');
    const b = stable(before);
    const a = stable(afterAdd);
    const sopsAt = b.indexOf('sops:');
    // Appended at the end of the top-level map; everything else (the ENC[...] of every other key too) as it was.
    expect(a.slice(0, sopsAt)).toEqual(b.slice(0, sopsAt));
    expect(a[sopsAt]).toMatch(/^AUTHENTIK_POSTGRESQL_PASSWORD: ENC\[AES256_GCM,/);
    expect(a.slice(sopsAt + 1)).toEqual(b.slice(sopsAt));
    expect(afterAdd).not.toMatch(/lastmodified: "?1970/);

    const changed = await f.set(['REDIS_PASSWORD', '--json'], NEW_REDIS);
    expect(changed.exitCode, changed.stderr).toBe(0);
    const result = JSON.parse(changed.stdout);
    expect(result).toMatchObject({
      ok: true,
      key: 'REDIS_PASSWORD',
      action: 'changed',
      length: NEW_REDIS.length,
    });
    expect(result.fingerprint).toMatch(/^hmac:[0-9a-f]{8}$/);
    const afterChange = readFileSync(f.file, 'utf8');
    const c = stable(afterChange);
    const differing = c.flatMap((line, i) => (line === a[i] ? [] : [i]));
    expect(differing).toHaveLength(1);
    expect(a[differing[0] as number]).toMatch(/^REDIS_PASSWORD: ENC\[/);
    expect(c[differing[0] as number]).toMatch(/^REDIS_PASSWORD: ENC\[/);

    const expected = { ...CANARY, REDIS_PASSWORD: NEW_REDIS, AUTHENTIK_POSTGRESQL_PASSWORD: NEW_POSTGRES };
    expect(await f.decrypt()).toEqual(expected);
    expect(Object.keys((await f.decrypt()) as object)).toEqual(Object.keys(expected));
    expect(statSync(f.file).mode & 0o777).toBe(0o640);
    noCanary(added, [...Object.values(CANARY), NEW_POSTGRES, NEW_REDIS]);
    noCanary(changed, [...Object.values(CANARY), NEW_POSTGRES, NEW_REDIS]);

    // The same value again: nothing written.
    const same = await f.set(['REDIS_PASSWORD'], NEW_REDIS);
    expect(same.exitCode).toBe(0);
    expect(same.stdout + same.stderr).toMatch(/unchanged/);
    expect(readFileSync(f.file, 'utf8')).toBe(afterChange);

    if (realSopsDecryptBin) expect(await realSopsDecrypt(f.file, f.key.keysFile)).toEqual(expected);
  });

  it('refuses a key not in the schema unless --allow-unknown', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await f.set(['NOT_A_KNOWN_KEY'], 'canary-unknown-value');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/NOT_A_KNOWN_KEY is not in the schema/);
    expect(readFileSync(f.file)).toEqual(before);
    const ok = await f.set(['NOT_A_KNOWN_KEY', '--allow-unknown'], 'canary-unknown-value');
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(((await f.decrypt()) as Record<string, string>).NOT_A_KNOWN_KEY).toBe('canary-unknown-value');
    noCanary(r, ['canary-unknown-value']);
    noCanary(ok, ['canary-unknown-value']);
  });

  it('a misspelt key gets "did you mean" (edit distance over the schema); --allow-unknown still takes it as typed', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const token = `canary4hcloud4${'e'.repeat(50)}`;
    const typo = await f.set(['HCLOUD_TOKN'], token);
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr).toMatch(/^error: HCLOUD_TOKN is not in the schema; did you mean HCLOUD_TOKEN\?$/m);
    expect(typo.stderr).toMatch(
      /^hint: set HCLOUD_TOKEN instead; or, if HCLOUD_TOKN is meant, pass --allow-unknown$/m,
    );
    const lower = await f.set(['redis_password'], token);
    expect(lower.stderr).toMatch(/did you mean REDIS_PASSWORD\?/);
    // Nothing close: no guess.
    const far = await f.set(['MY_OWN_SETTING'], token);
    expect(far.stderr).toMatch(/^error: MY_OWN_SETTING is not in the schema$/m);
    expect(readFileSync(f.file)).toEqual(before);

    // A misspelt --allow-rotate would let nothing through: refused before the file is opened.
    const allow = await f.set(
      ['INFISICAL_ENCRYPTION_KEY', '--allow-rotate', 'INFISICAL_ENCRYPTON_KEY'],
      token,
    );
    expect(allow.exitCode).toBe(2);
    expect(allow.stderr).toMatch(
      /--allow-rotate INFISICAL_ENCRYPTON_KEY is not in the schema; did you mean INFISICAL_ENCRYPTION_KEY\?/,
    );
    expect(readFileSync(f.file)).toEqual(before);

    const ok = await f.set(['HCLOUD_TOKN', '--allow-unknown'], token);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(((await f.decrypt()) as Record<string, string>).HCLOUD_TOKN).toBe(token);
    for (const r of [typo, lower, far, allow, ok]) noCanary(r, [token]);
  });

  it('refuses a malformed value with the file untouched (bytes and mtime)', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const mtime = statSync(f.file).mtimeMs;
    for (const [key, value] of [
      ['REDIS_PASSWORD', 'canaryShort'],
      ['REDIS_PASSWORD', 'canary-two-newlines-aaaaaaaaaa\n\n'],
      ['INFISICAL_ENCRYPTION_KEY', 'canary-not-hex-not-hex-not-hex-x'],
      ['REDIS_PASSWORD', '\n'],
    ] as const) {
      const r = await f.set([key], value);
      expect(r.exitCode, `${key} ${JSON.stringify(value)}`).toBe(2);
      expect(r.stderr).toMatch(/malformed|empty/);
      noCanary(r, [value.trim()].filter(Boolean));
    }
    expect(readFileSync(f.file)).toEqual(before);
    expect(statSync(f.file).mtimeMs).toBe(mtime);
  });

  it('a vendor token in an unexpected format is a warning, refused under --strict', async () => {
    const f = await fixture();
    const token = 'canaryHetznerTokenOfTheWrongLength';
    const strict = await f.set(['HCLOUD_TOKEN', '--strict'], token);
    expect(strict.exitCode).toBe(2);
    const warned = await f.set(['HCLOUD_TOKEN'], token);
    expect(warned.exitCode, warned.stderr).toBe(0);
    expect(warned.stderr).toMatch(/unexpected format/);
    expect(((await f.decrypt()) as Record<string, string>).HCLOUD_TOKEN).toBe(token);
    noCanary(strict, [token]);
    noCanary(warned, [token]);
  });

  it('refuses to change a never-rotated key unless --allow-rotate KEY', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const value = 'deadbeefdeadbeefdeadbeefdeadbeef';
    const r = await f.set(['INFISICAL_ENCRYPTION_KEY'], value);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/never rotated.*--allow-rotate INFISICAL_ENCRYPTION_KEY/s);
    expect(readFileSync(f.file)).toEqual(before);
    const other = await f.set(['INFISICAL_ENCRYPTION_KEY', '--allow-rotate', 'REDIS_PASSWORD'], value);
    expect(other.exitCode).toBe(2);
    const ok = await f.set(['INFISICAL_ENCRYPTION_KEY', '--allow-rotate', 'INFISICAL_ENCRYPTION_KEY'], value);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(((await f.decrypt()) as Record<string, string>).INFISICAL_ENCRYPTION_KEY).toBe(value);
    noCanary(r, [value, CANARY.INFISICAL_ENCRYPTION_KEY]);
    noCanary(ok, [value, CANARY.INFISICAL_ENCRYPTION_KEY]);
  });

  it('an age key source set but unusable is a warning naming it (never its content) while another key opens the file; the refusal names it when none does', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    // The working key where sops looks by default; a missing SOPS_AGE_KEY_FILE and a cut-short SOPS_AGE_KEY.
    const configDir = join(f.dir, '.config', 'sops', 'age');
    mkdirSync(configDir, { recursive: true });
    copyFileSync(f.key.keysFile, join(configDir, 'keys.txt'));
    const missing = join(f.dir, 'no-such-keys.txt');
    const cutShort = 'AGE-SECRET-KEY-1CANARYCUTSHORT0QQQQ';
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: f.dir,
      NO_COLOR: '1',
      SOPS_AGE_KEY_FILE: missing,
      SOPS_AGE_KEY: cutShort,
    };
    const ok = await runScript('secrets.ts', ['set', 'REDIS_PASSWORD', '--secrets-file', f.file], env, {
      input: NEW_REDIS,
    });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).toContain(
      `warning: SOPS_AGE_KEY_FILE=${missing} does not exist: ignored (another age key opened ${f.file})`,
    );
    expect(ok.stderr).toMatch(
      /^warning: SOPS_AGE_KEY line 1 is not a valid age secret key \(cut short or mistyped\?\): ignored/m,
    );
    expect(((await f.decrypt()) as Record<string, string>).REDIS_PASSWORD).toBe(NEW_REDIS);

    // No key that works: the refusal still names both, and nothing is written.
    rmSync(join(configDir, 'keys.txt'));
    const afterOk = readFileSync(f.file);
    const none = await runScript('secrets.ts', ['set', 'REDIS_PASSWORD', '--secrets-file', f.file], env, {
      input: CANARY.REDIS_PASSWORD,
    });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no age identity decrypts the data key/);
    expect(none.stderr).toContain(`problem: SOPS_AGE_KEY_FILE=${missing} does not exist`);
    expect(none.stderr).toMatch(/problem: SOPS_AGE_KEY line 1 is not a valid age secret key/);
    expect(readFileSync(f.file)).toEqual(afterOk);
    expect(afterOk).not.toEqual(before);
    for (const r of [ok, none]) noCanary(r, [cutShort, 'CANARYCUTSHORT', f.key.identity, NEW_REDIS]);
  });

  it('never takes the value from the command line, and never echoes one given there', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await f.set(['REDIS_PASSWORD', 'canary3argv3dddddddddddddddddddd'], '');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/never from the command line/);
    noCanary(r, ['canary3argv3dddddddddddddddddddd']);
    expect(readFileSync(f.file)).toEqual(before);
  });
});

// fluxcd's file encrypts only data/stringData: a new top-level key would be plaintext, and set refuses it.
describe.skipIf(!realSopsDecryptBin)('secrets set on a file sops wrote (shared/vectors/sops)', () => {
  for (const v of YAML_VECTORS.filter((x) => x.topLevelEncrypted)) {
    it(`${v.dir}/${v.name}: one value set, every other line kept, the real sops library reads the result`, async () => {
      const dir = tempDir('sf-secrets-set-vector-');
      const { file, keys } = copyVector(v, dir, 'age-keys.txt');
      const before = readFileSync(file, 'utf8');
      const original = (await realSopsDecrypt(file, keys)) as Record<string, unknown>;
      const env = { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1', SOPS_AGE_KEY_FILE: keys };
      const r = await runScript(
        'secrets.ts',
        ['set', 'canary_key', '--allow-unknown', '--secrets-file', file],
        env,
        { input: 'canary-vector-value\n' },
      );
      expect(r.exitCode, r.stderr).toBe(0);
      noCanary(r, ['canary-vector-value']);
      const after = readFileSync(file, 'utf8');
      // One line added before sops:, every line of the file kept in its order.
      const [a, b] = [stable(after), stable(before)];
      const at = a.findIndex((l) => l.startsWith('canary_key: ENC['));
      expect(at).toBe(b.indexOf(b.find((l) => /^sops:/.test(l)) ?? ''));
      expect([...a.slice(0, at), ...a.slice(at + 1)]).toEqual(b);
      expect(await realSopsDecrypt(file, keys)).toEqual({ ...original, canary_key: 'canary-vector-value' });
    });
  }
});

describe('setSecret (library): what it leaves to sops', () => {
  it('refuses a JSON file, several YAML documents, a nested value and a missing age key, writing nothing', async () => {
    const { setSecret } = await import('../scripts/lib/secrets/set.ts');
    const dir = tempDir('sf-secrets-set-lib-');
    const key = await makeAgeKey(dir);
    const env = { SOPS_AGE_KEY_FILE: key.keysFile, HOME: dir };
    const recipients = [key.recipient];
    const write = async (name: string, docs: Record<string, unknown>[], format: 'yaml' | 'json') => {
      const file = join(dir, name);
      writeFileSync(file, await encryptSops(docs, { recipients, format }), { mode: 0o600 });
      return file;
    };
    const cases: [string, string, RegExp][] = [
      [await write('a.sops.json', [CANARY], 'json'), 'REDIS_PASSWORD', /YAML SOPS files only/],
      [await write('multi.sops.yaml', [CANARY, { x: 'y' }], 'yaml'), 'REDIS_PASSWORD', /2 YAML documents/],
      [
        await write('nested.sops.yaml', [{ REDIS_PASSWORD: { inner: 'canary-nested' } }], 'yaml'),
        'REDIS_PASSWORD',
        /not a string/,
      ],
    ];
    for (const [file, k, message] of cases) {
      const before = readFileSync(file);
      await expect(setSecret({ file, key: k, value: NEW_REDIS, env })).rejects.toThrow(message);
      expect(readFileSync(file)).toEqual(before);
    }
    const flat = await write('flat.sops.yaml', [CANARY], 'yaml');
    await expect(
      setSecret({ file: flat, key: 'REDIS_PASSWORD', value: NEW_REDIS, env: { HOME: dir } }),
    ).rejects.toThrow(/no age identity decrypts the data key/);
    // lastmodified is the clock's time (pinned here), to the second; the file reads back with the new value.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-02T03:04:05.678Z'));
    const done = await setSecret({ file: flat, key: 'REDIS_PASSWORD', value: NEW_REDIS, env }).finally(() =>
      vi.useRealTimers(),
    );
    expect(done).toMatchObject({ action: 'changed', length: NEW_REDIS.length });
    expect(readFileSync(flat, 'utf8')).toMatch(/^ {4}lastmodified: "2030-01-02T03:04:05Z"$/m);
    expect(
      ((await decryptSopsFile(flat, { env })).documents[0] as Record<string, string>).REDIS_PASSWORD,
    ).toBe(NEW_REDIS);
  });
});

const python = requireTool('python3', 'the terminal prompt test (a pseudo-terminal)');

describe.skipIf(!python)('secrets set on a terminal', () => {
  it('asks with a prompt that does not echo what is typed', async () => {
    const f = await fixture();
    const typed = 'canary4typed4eeeeeeeeeeeeeeeeeeee';
    // The command asks; the answer is typed; what the terminal showed must not hold it.
    const r = await runScriptInPty({
      python: python as string,
      prompt: 'not echoed',
      answer: typed,
      script: 'secrets.ts',
      args: ['set', 'REDIS_PASSWORD', '--secrets-file', f.file],
      env: { PATH: process.env.PATH ?? '', HOME: f.dir, NO_COLOR: '1', SOPS_AGE_KEY_FILE: f.key.keysFile },
    });
    expect(r.exitCode, String(r.stdout)).toBe(0);
    expect(String(r.stdout)).toMatch(/value for REDIS_PASSWORD \(not echoed\)/);
    expect(String(r.stdout)).toMatch(/changed\s+REDIS_PASSWORD \(33 chars/);
    expect(String(r.stdout)).not.toContain(typed);
    expect(((await f.decrypt()) as Record<string, string>).REDIS_PASSWORD).toBe(typed);
  });
});
