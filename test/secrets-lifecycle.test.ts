/**
 * The SOPS file's lifecycle without the sops binary: `rotate`, `recipients` (list / add / remove, with the
 * `.sops.yaml` rule kept in step) and `init --fill`, each with the smallest diff (every ENC[...] it did not
 * change byte-identical), no value in the output, and every file read back natively and by the real sops
 * library. The removed recipient's identity can open nothing in the new file.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generateValue } from '../scripts/lib/secrets/generate.ts';
import { SECRET_SCHEMA, type SecretSpec, specOf } from '../scripts/lib/secrets/schema.ts';
import { decryptSopsFile, encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { copyVector, makeAgeKey, YAML_VECTORS } from './fixtures/make-sops-fixtures.ts';
import { realSopsDecrypt, realSopsDecryptBin } from './helpers/real-sops.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

const SPECS = SECRET_SCHEMA as readonly SecretSpec[];

/** Every generatable key with a canary-marked value of its own format, plus two hand-set ones. */
function canaryValues(): Record<string, string> {
  const values: Record<string, string> = {};
  for (const spec of SPECS) {
    const v = generateValue(spec.generate);
    if (v) values[spec.key] = v;
  }
  values.PROXMOX_PASSWORD = 'canary-proxmox-root-password';
  values.CLOUDFLARE_API_TOKEN = `canaryCf${'Q'.repeat(32)}`;
  return values;
}

async function fixture(omit: string[] = []) {
  const dir = tempDir('sf-lifecycle-');
  const k1 = await makeAgeKey(dir, 'k1.txt');
  const k2 = await makeAgeKey(dir, 'k2.txt');
  mkdirSync(join(dir, 'secrets'));
  const file = join(dir, 'secrets', 'bootstrap.sops.yaml');
  const values = canaryValues();
  for (const k of omit) delete values[k];
  writeFileSync(file, await encryptSops(values, { recipients: [k1.recipient], format: 'yaml' }), {
    mode: 0o600,
  });
  const env = (keys = k1.keysFile) => ({
    PATH: process.env.PATH ?? '',
    HOME: dir,
    NO_COLOR: '1',
    SOPS_AGE_KEY_FILE: keys,
  });
  // Relative paths, run from the fixture's directory: as an operator runs it in the repository.
  const run = (args: string[], keys?: string) =>
    runScript('secrets.ts', [...args, '--secrets-file', 'secrets/bootstrap.sops.yaml'], env(keys), {
      cwd: dir,
    });
  const decrypt = async (keys = k1.keysFile) =>
    (await decryptSopsFile(file, { env: { SOPS_AGE_KEY_FILE: keys, HOME: dir } })).documents[0] as Record<
      string,
      string
    >;
  return { dir, k1, k2, file, values, env, run, decrypt };
}

/** `KEY: ENC[...]` lines by key: the ciphertext each value has in the file. */
function encLines(text: string): Map<string, string> {
  return new Map(
    text.split('\n').flatMap((l) => {
      const m = /^([A-Za-z_][A-Za-z0-9_]*): (ENC\[.*)$/.exec(l);
      return m ? [[m[1] as string, m[2] as string] as const] : [];
    }),
  );
}

const noValues = (r: { stdout: string; stderr: string }, values: Record<string, string>) => {
  for (const [k, v] of Object.entries(values)) expect(r.stdout + r.stderr, k).not.toContain(v);
};

async function sopsReads(file: string, keys: string, expected: unknown) {
  if (realSopsDecryptBin) expect(await realSopsDecrypt(file, keys)).toEqual(expected);
}

describe('secrets rotate', () => {
  it('new values by each generator; every other ENC[...] byte-identical; says what to redeploy', async () => {
    const f = await fixture();
    const before = readFileSync(f.file, 'utf8');
    const keys = ['REDIS_PASSWORD', 'NB_RELAY_SECRET', 'AUTHENTIK_SECRET_KEY'];
    const r = await f.run(['rotate', ...keys, '--bundle', join(PROJECT_ROOT, 'cloud/bifrost')]);
    expect(r.exitCode, r.stderr).toBe(0);
    const after = readFileSync(f.file, 'utf8');
    const [old, now] = [encLines(before), encLines(after)];
    expect([...now.keys()]).toEqual([...old.keys()]);
    for (const [key, enc] of now) {
      if (keys.includes(key)) expect(enc, key).not.toBe(old.get(key));
      else expect(enc, key).toBe(old.get(key));
    }
    const decrypted = await f.decrypt();
    for (const key of keys) {
      expect(decrypted[key]).not.toBe(f.values[key]);
      expect(specOf(key)?.format?.test(decrypted[key] as string), key).toBe(true);
    }
    expect(decrypted).toEqual({ ...f.values, ...Object.fromEntries(keys.map((k) => [k, decrypted[k]])) });
    // What to redeploy: the Secret and its key, the host file, the services from the bundle's compose file.
    expect(r.stdout).toMatch(/REDIS_PASSWORD\s+→ k8s Secret infisical\/infisical-secrets as REDIS_PASSWORD/);
    expect(r.stdout).toMatch(
      /NB_RELAY_SECRET\s+→ Bifrost \.secrets\.env as NB_RELAY_SECRET; restarts .*netbird-server/,
    );
    expect(r.stdout).toMatch(
      /AUTHENTIK_SECRET_KEY\s+→ Bifrost \.env as AUTHENTIK_SECRET_KEY; restarts authentik-server, authentik-worker/,
    );
    expect(r.stdout).toMatch(/create-bootstrap-secrets/);
    expect(r.stdout).toMatch(/provision-bifrost/);
    expect(r.stderr).toMatch(/NB_RELAY_SECRET: every NetBird peer disconnects/);
    noValues(r, { ...f.values, ...decrypted });
    await sopsReads(f.file, f.k1.keysFile, decrypted);
  });

  it('refuses a hand-set key (naming set), a never-rotated one (unless --allow-rotate KEY) and an unknown one; file untouched', async () => {
    const f = await fixture();
    const before = readFileSync(f.file, 'utf8');
    const manual = await f.run(['rotate', 'REDIS_PASSWORD', 'CLOUDFLARE_API_TOKEN']);
    expect(manual.exitCode).toBe(2);
    expect(manual.stderr).toMatch(/CLOUDFLARE_API_TOKEN is set by hand/);
    expect(manual.stderr).toMatch(/secrets\.ts set CLOUDFLARE_API_TOKEN/);
    const never = await f.run(['rotate', 'NB_DATA_STORE_KEY']);
    expect(never.exitCode).toBe(2);
    expect(never.stderr).toMatch(/NB_DATA_STORE_KEY is never rotated: the NetBird database/);
    // The way past names the key, as set and edit say it.
    expect(never.stderr).toMatch(/^hint: .*pass --allow-rotate NB_DATA_STORE_KEY$/m);
    const unknown = await f.run(['rotate', 'NOT_A_KEY', 'REDIS_PASWORD', 'nb_relay_secret']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/NOT_A_KEY is not in the schema$/m);
    expect(unknown.stderr).toMatch(/REDIS_PASWORD is not in the schema; did you mean REDIS_PASSWORD\?/);
    expect(unknown.stderr).toMatch(/nb_relay_secret is not in the schema; did you mean NB_RELAY_SECRET\?/);
    // A name in --allow-rotate the schema does not know would let nothing through: refused, with a guess.
    const typo = await f.run(['rotate', 'NB_DATA_STORE_KEY', '--allow-rotate', 'NB_DATA_STORE_KY']);
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr).toMatch(
      /--allow-rotate NB_DATA_STORE_KY is not in the schema; did you mean NB_DATA_STORE_KEY\?/,
    );
    const other = await f.run(['rotate', 'NB_DATA_STORE_KEY', '--allow-rotate', 'REDIS_PASSWORD']);
    expect(other.exitCode).toBe(2);
    expect(other.stderr).toMatch(/NB_DATA_STORE_KEY is never rotated/);
    const dry = await f.run(['rotate', 'REDIS_PASSWORD', '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would rotate\s+REDIS_PASSWORD/);
    expect(readFileSync(f.file, 'utf8')).toBe(before);

    const allowed = await f.run(['rotate', 'NB_DATA_STORE_KEY', '--allow-rotate', 'NB_DATA_STORE_KEY']);
    expect(allowed.exitCode, allowed.stderr).toBe(0);
    const now = await f.decrypt();
    expect(now.NB_DATA_STORE_KEY).not.toBe(f.values.NB_DATA_STORE_KEY);
    for (const r of [manual, never, unknown, typo, other, dry, allowed]) noValues(r, { ...f.values, ...now });
  });
});

describe('secrets recipients', () => {
  it('add wraps the data key for one more recipient (no ENC[...] changes); remove re-encrypts everything', async () => {
    const f = await fixture();
    // The creation rule that names the file, as init writes it.
    writeFileSync(
      join(f.dir, '.sops.yaml'),
      `# keep this comment\ncreation_rules:\n  - path_regex: ^secrets/.*\\.sops\\.yaml$\n    age: >-\n      ${f.k1.recipient}\n`,
    );
    const listed = await f.run(['recipients', '--json']);
    expect(listed.exitCode, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).rows).toEqual([
      { recipient: f.k1.recipient, yours: true, inRule: true },
    ]);

    const before = readFileSync(f.file, 'utf8');
    const added = await f.run(['recipients', 'add', f.k2.recipient]);
    expect(added.exitCode, added.stderr).toBe(0);
    const afterAdd = readFileSync(f.file, 'utf8');
    expect(encLines(afterAdd)).toEqual(encLines(before));
    // Only the new age entry, lastmodified and mac differ. lastmodified has whole seconds: an add within
    // the second the fixture was written leaves its text as it was, so it may or may not be among them.
    const beforeLines = before.split('\n');
    const extra = afterAdd.split('\n').filter((l) => !beforeLines.includes(l));
    expect(extra[0]).toBe(`        - recipient: ${f.k2.recipient}`);
    const changedKeys = extra.filter((l) => /^ {4}\S/.test(l)).map((l) => l.trim().split(':')[0]);
    expect(changedKeys).toContain('mac');
    expect(changedKeys.every((k) => k === 'mac' || k === 'lastmodified')).toBe(true);
    const lastModified = (text: string) => Date.parse(parse(text).sops.lastmodified);
    expect(lastModified(afterAdd)).toBeGreaterThanOrEqual(lastModified(before));
    expect(await f.decrypt(f.k2.keysFile)).toEqual(f.values);
    await sopsReads(f.file, f.k2.keysFile, f.values);
    const rule = readFileSync(join(f.dir, '.sops.yaml'), 'utf8');
    expect(rule).toMatch(/^# keep this comment/);
    expect(parse(rule).creation_rules[0].age.split(',')).toEqual([f.k1.recipient, f.k2.recipient]);
    const again = await f.run(['recipients', 'add', f.k2.recipient]);
    expect(again.stdout).toMatch(/unchanged/);
    expect(readFileSync(f.file, 'utf8')).toBe(afterAdd);

    const removed = await f.run(['recipients', 'remove', f.k1.recipient], f.k2.keysFile);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.stderr).toMatch(/rotate them/);
    const afterRemove = readFileSync(f.file, 'utf8');
    const [old, now] = [encLines(afterAdd), encLines(afterRemove)];
    for (const [key, enc] of now) expect(enc, key).not.toBe(old.get(key));
    expect(afterRemove).not.toContain(f.k1.recipient);
    expect(await f.decrypt(f.k2.keysFile)).toEqual(f.values);
    await sopsReads(f.file, f.k2.keysFile, f.values);
    // The removed identity opens nothing: natively, and for the real sops.
    await expect(f.decrypt(f.k1.keysFile)).rejects.toThrow(/no age identity decrypts the data key/);
    if (realSopsDecryptBin) await expect(realSopsDecrypt(f.file, f.k1.keysFile)).rejects.toThrow(/refused/);
    // Nor does the old data key: every value is under a new one.
    const check = await runScript('secrets.ts', ['check', '--secrets-file', f.file], f.env(f.k1.keysFile));
    expect(check.exitCode).toBe(2);
    expect(parse(readFileSync(join(f.dir, '.sops.yaml'), 'utf8')).creation_rules[0].age).toBe(f.k2.recipient);
    for (const r of [listed, added, again, removed]) noValues(r, f.values);
  });

  it('refuses to remove the last recipient, a secret key given as a recipient, and garbage; file untouched', async () => {
    const f = await fixture();
    const before = readFileSync(f.file, 'utf8');
    const last = await f.run(['recipients', 'remove', f.k1.recipient]);
    expect(last.exitCode).toBe(2);
    expect(last.stderr).toMatch(/only recipient/);
    const secretKey = f.k2.identity;
    const secret = await f.run(['recipients', 'add', secretKey]);
    expect(secret.exitCode).toBe(2);
    expect(secret.stderr).toMatch(/SECRET key, not a recipient/);
    expect(secret.stdout + secret.stderr).not.toContain(secretKey);
    const garbage = await f.run(['recipients', 'add', 'age1notarecipient']);
    expect(garbage.exitCode).toBe(2);
    const absent = await f.run(['recipients', 'remove', f.k2.recipient]);
    expect(absent.stdout).toMatch(/unchanged/);
    expect(readFileSync(f.file, 'utf8')).toBe(before);
  });

  it('refuses a SOPS file in another format before reading it, naming the sops command that does the job', async () => {
    const f = await fixture();
    const json = join(f.dir, 'secrets', 'other.sops.json');
    const text = await encryptSops(f.values, { recipients: [f.k1.recipient], format: 'json' });
    writeFileSync(json, text, { mode: 0o600 });
    const cases: [string[], string][] = [
      [['recipients'], `sops updatekeys ${json}`],
      [['recipients', 'add', f.k2.recipient], `sops updatekeys ${json}`],
      [['init', '--fill'], `sops ${json})`],
    ];
    for (const [args, sops] of cases) {
      const r = await runScript('secrets.ts', [...args, '--secrets-file', json], f.env());
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`${json}: `);
      expect(r.stderr).toMatch(/YAML SOPS files only/);
      expect(r.stderr).toContain(`the sops binary does it for other formats (${sops}`);
      noValues(r, f.values);
    }
    expect(readFileSync(json, 'utf8')).toBe(text);
  });
});

describe('secrets init --fill', () => {
  it('adds only the missing keys: every existing ENC[...] line stays byte-identical', async () => {
    const f = await fixture(['REDIS_PASSWORD', 'FINGERPRINT_KEY']);
    const before = readFileSync(f.file, 'utf8');
    const r = await f.run(['init', '--fill', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).added.sort()).toEqual(['FINGERPRINT_KEY', 'REDIS_PASSWORD']);
    const after = readFileSync(f.file, 'utf8');
    const [old, now] = [encLines(before), encLines(after)];
    for (const [key, enc] of old) expect(now.get(key), key).toBe(enc);
    expect([...now.keys()].slice(-2).sort()).toEqual(['FINGERPRINT_KEY', 'REDIS_PASSWORD']);
    const decrypted = await f.decrypt();
    expect(decrypted).toMatchObject(f.values);
    await sopsReads(f.file, f.k1.keysFile, decrypted);
    noValues(r, decrypted);
    // Nothing missing: nothing written.
    const again = await f.run(['init', '--fill']);
    expect(again.stdout + again.stderr).toMatch(/nothing to add/);
    expect(readFileSync(f.file, 'utf8')).toBe(after);
  });

  it('without --recipient, a new file follows the .sops.yaml creation rule', async () => {
    const dir = tempDir('sf-lifecycle-rule-');
    const k = await makeAgeKey(dir, 'k.txt');
    writeFileSync(
      join(dir, '.sops.yaml'),
      `creation_rules:\n  - path_regex: secrets/\n    age: ${k.recipient}\n`,
    );
    const env = { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1', SOPS_AGE_KEY_FILE: k.keysFile };
    const r = await runScript('secrets.ts', ['init', '--secrets-file', 'secrets/b.sops.yaml'], env, {
      cwd: dir,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/from .*\.sops\.yaml/);
    const doc = (await decryptSopsFile(join(dir, 'secrets/b.sops.yaml'), { env })).documents[0];
    expect(Object.keys(doc as object)).toContain('REDIS_PASSWORD');
    await sopsReads(join(dir, 'secrets/b.sops.yaml'), k.keysFile, doc);
  });
});

/** Files sops itself wrote: recipients add, then remove, round-trip through the real sops library. */
describe.skipIf(!realSopsDecryptBin)('recipients on files sops wrote (shared/vectors/sops)', () => {
  for (const v of YAML_VECTORS) {
    it(`${v.dir}/${v.name}: add keeps every value's ciphertext, remove re-encrypts; sops reads both`, async () => {
      const dir = tempDir('sf-lifecycle-vector-');
      const { file, keys } = copyVector(v, dir);
      const original = await realSopsDecrypt(file, keys);
      const k2 = await makeAgeKey(dir, 'k2.txt');
      const env = (k: string) => ({
        PATH: process.env.PATH ?? '',
        HOME: dir,
        NO_COLOR: '1',
        SOPS_AGE_KEY_FILE: k,
      });
      const before = readFileSync(file, 'utf8');
      const add = await runScript(
        'secrets.ts',
        ['recipients', 'add', k2.recipient, '--secrets-file', file],
        env(keys),
        {
          cwd: dir,
        },
      );
      expect(add.exitCode, add.stderr).toBe(0);
      const after = readFileSync(file, 'utf8');
      const encs = (t: string) => t.match(/ENC\[AES256_GCM,[^\]]*\]/g) ?? [];
      // Every value's ciphertext kept (the mac's is the last and is recomputed).
      expect(encs(after).slice(0, -1)).toEqual(encs(before).slice(0, -1));
      expect(await realSopsDecrypt(file, k2.keysFile)).toEqual(original);

      const old = (parse(after).sops.age as { recipient: string }[])[0]?.recipient as string;
      const remove = await runScript(
        'secrets.ts',
        ['recipients', 'remove', old, '--secrets-file', file],
        env(k2.keysFile),
        {
          cwd: dir,
        },
      );
      expect(remove.exitCode, remove.stderr).toBe(0);
      expect(await realSopsDecrypt(file, k2.keysFile)).toEqual(original);
      await expect(realSopsDecrypt(file, keys)).rejects.toThrow(/refused/);
    });
  }
});
