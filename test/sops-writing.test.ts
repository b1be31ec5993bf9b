/**
 * What every path that writes a SOPS file must hold, read from the files it really writes:
 *
 * - AES-GCM never sees a nonce twice: each `ENC[...]` a writer makes has an IV of its own (two encryptions
 *   of one plaintext, under one key and one key path, differ), across init, set, rotate, recipients and edit;
 * - `recipients remove` replaces the data key: with the key the file had before, nothing in the new file
 *   decrypts;
 * - a file someone else changed between the command's read and its write (or, for init, created after
 *   it looked) is not overwritten: the other writer's bytes stay, the command says so, no temp file is left.
 *
 * In-process (the library each command calls), with real age keys and real files.
 */
import { copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Decrypter } from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { WorkError } from '../scripts/lib/core/errors.ts';
import { editSecrets } from '../scripts/lib/secrets/edit.ts';
import { generateValue } from '../scripts/lib/secrets/generate.ts';
import { initSecrets } from '../scripts/lib/secrets/init.ts';
import { changeRecipients } from '../scripts/lib/secrets/recipients.ts';
import { rotateSecrets } from '../scripts/lib/secrets/rotate.ts';
import { specOf } from '../scripts/lib/secrets/schema.ts';
import { setSecret } from '../scripts/lib/secrets/set.ts';
import { CipherError, decryptValue, encryptValue, parseEnc } from '../scripts/lib/secrets/sops/cipher.ts';
import { decryptSopsFile, encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { parseMetadata } from '../scripts/lib/secrets/sops/metadata.ts';
import { storeFor } from '../scripts/lib/secrets/sops/stores.ts';
import { aadOf, type Branch, Comment, walkBranch } from '../scripts/lib/secrets/sops/tree.ts';
import { type AgeKey, makeAgeKey } from './fixtures/make-sops-fixtures.ts';
import { runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

const ENC = /ENC\[AES256_GCM,[^\]]*\]/g;

/** Every `ENC[...]` in a written file (values, comments and the MAC), parsed. */
function encs(text: string) {
  const found = (text.match(ENC) ?? []).map((raw) => ({ raw, ...parseEnc(raw) }));
  expect(found.length, 'the file holds encrypted values').toBeGreaterThan(0);
  return found;
}

/** A top-level key's `ENC[...]` in a YAML file as written. */
function encOf(text: string, key: string): string {
  const m = new RegExp(`^${key}: (ENC\\[AES256_GCM,[^\\]]*\\])$`, 'm').exec(text);
  expect(m, `${key} is an ENC value`).not.toBeNull();
  return m?.[1] as string;
}

const macOf = (text: string) => /^ {4}mac: (ENC\[[^\]]*\])$/m.exec(text)?.[1] as string;
const ivText = (raw: string) => parseEnc(raw).iv.toString('base64');

/** No IV and no ciphertext twice in one file. */
function expectDistinct(text: string) {
  const all = encs(text);
  expect(new Set(all.map((e) => e.iv.toString('base64'))).size, 'an IV used twice in one file').toBe(
    all.length,
  );
  expect(new Set(all.map((e) => e.data.toString('base64'))).size, 'a ciphertext twice in one file').toBe(
    all.length,
  );
}

/**
 * `after` was written from `before`, changing `changed`: each changed value and the MAC got an IV the old
 * file never used and a new ciphertext, and no IV or ciphertext appears twice in the new file.
 */
function expectFresh(before: string, after: string, changed: readonly string[]) {
  expectDistinct(after);
  const old = new Set(encs(before).map((e) => e.iv.toString('base64')));
  for (const key of changed) {
    expect(old.has(ivText(encOf(after, key))), `${key}: an IV the old file used`).toBe(false);
    if (before.includes(`\n${key}: `) || before.startsWith(`${key}: `))
      expect(encOf(after, key), key).not.toBe(encOf(before, key));
  }
  expect(old.has(ivText(macOf(after))), 'the MAC: an IV the old file used').toBe(false);
}

/** Successive versions of a file, each changing REDIS_PASSWORD: its IVs and the MAC's, all different. */
function expectNoIvAgain(texts: readonly string[]) {
  const ivs = texts.flatMap((t) => [ivText(encOf(t, 'REDIS_PASSWORD')), ivText(macOf(t))]);
  expect(new Set(ivs).size, 'an IV used again by a later write').toBe(ivs.length);
}

const hex = () => generateValue({ kind: 'hex', bytes: 16 }) as string;

async function fixture() {
  const dir = tempDir('sf-sops-writing-');
  const k1 = await makeAgeKey(dir, 'k1.txt');
  const k2 = await makeAgeKey(dir, 'k2.txt');
  const file = join(dir, 'bootstrap.sops.yaml');
  const env = (key: AgeKey = k1) => ({
    HOME: dir,
    PATH: process.env.PATH ?? '',
    SOPS_AGE_KEY_FILE: key.keysFile,
  });
  const values = {
    REDIS_PASSWORD: hex(),
    INFISICAL_DB_PASSWORD: hex(),
    AUTHENTIK_POSTGRESQL_PASSWORD: hex(),
  };
  const write = async (recipients = [k1.recipient]) =>
    writeFileSync(file, await encryptSops(values, { recipients, format: 'yaml' }), { mode: 0o600 });
  await write();
  const text = () => readFileSync(file, 'utf8');
  const decrypt = async (key: AgeKey = k1) =>
    (await decryptSopsFile(file, { env: env(key) })).documents[0] as Record<string, unknown>;
  return { dir, k1, k2, file, env, values, write, text, decrypt };
}

describe('every ENC[...] a writer makes has its own IV', () => {
  it('encryptValue: one plaintext, one key, one key path, encrypted again and again: no IV or ciphertext twice', () => {
    const key = new Uint8Array(32).fill(9);
    for (const value of ['same plaintext', 12345n, true, 1.5, new Comment(' a comment')]) {
      const made = Array.from({ length: 40 }, () => encryptValue(key, value, 'REDIS_PASSWORD:'));
      const parsed = made.map((m) => parseEnc(m));
      expect(new Set(parsed.map((p) => p.iv.toString('base64'))).size, String(value)).toBe(made.length);
      expect(new Set(parsed.map((p) => p.data.toString('base64'))).size, String(value)).toBe(made.length);
      // Each still opens to the plaintext: the IV is the one the value was sealed with.
      for (const m of made) expect(decryptValue(key, m, 'REDIS_PASSWORD:').value).toEqual(value);
    }
  });

  it('encryptValue: the IV is random in every byte (not a counter, a clock or a few random bytes padded), so no later run repeats one', () => {
    const key = new Uint8Array(32).fill(9);
    const ivs = Array.from({ length: 2000 }, () => parseEnc(encryptValue(key, 'same plaintext', 'K:')).iv);
    expect(new Set(ivs.map((iv) => iv.toString('base64'))).size).toBe(ivs.length);
    // 2000 random bytes take nearly all 256 values at each position (fewer than 200: odds below 1e-40);
    // a counter, a timestamp or a short random prefix leaves most positions fixed.
    const length = ivs[0]?.length ?? 0;
    expect(length).toBe(32);
    for (let at = 0; at < length; at++)
      expect(new Set(ivs.map((iv) => iv[at])).size, `IV byte ${at}`).toBeGreaterThan(200);
  });

  it('init and encryptSops: one plaintext under many keys and in a list (one AAD), two files of one document', async () => {
    const f = await fixture();
    const same = hex();
    const doc = { A: same, B: same, C: same, LIST: [same, same, same], NESTED: { A: same, B: [same, same] } };
    const one = await encryptSops(doc, { recipients: [f.k1.recipient], format: 'yaml' });
    const two = await encryptSops(doc, { recipients: [f.k1.recipient], format: 'yaml' });
    expectDistinct(one);
    expectDistinct(`${one}\n${two}`);
    const created = join(f.dir, 'new.sops.yaml');
    await initSecrets({ file: created, recipient: f.k1.recipient, fill: false });
    const init = readFileSync(created, 'utf8');
    expectDistinct(init);
    expectDistinct(`${init}\n${one}`);
  });

  it('set: a new value, then another, then the first again: each write fresh, the first value not sealed alike twice', async () => {
    const f = await fixture();
    const first = f.text();
    const other = hex();
    const steps = [other, f.values.REDIS_PASSWORD, other];
    const texts = [first];
    for (const value of steps) {
      await setSecret({ file: f.file, key: 'REDIS_PASSWORD', value, env: f.env() });
      texts.push(f.text());
      expectFresh(texts.at(-2) as string, f.text(), ['REDIS_PASSWORD']);
    }
    // The same plaintext at the same key path under the same data key, written twice: two ciphertexts.
    expect(encOf(texts[2] as string, 'REDIS_PASSWORD')).not.toBe(encOf(first, 'REDIS_PASSWORD'));
    expect(encOf(texts[3] as string, 'REDIS_PASSWORD')).not.toBe(encOf(texts[1] as string, 'REDIS_PASSWORD'));
    expectNoIvAgain(texts);
    // A new key gets a fresh IV too; the unchanged ones keep their ENC[...] (the smallest diff).
    await setSecret({ file: f.file, key: 'REDIS_PASSWORD', value: hex(), env: f.env() });
    const before = f.text();
    await setSecret({ file: f.file, key: 'AUTHENTIK_TOKEN', value: `x${'Z'.repeat(49)}`, env: f.env() });
    expectFresh(before, f.text(), ['AUTHENTIK_TOKEN']);
    expect(encOf(f.text(), 'INFISICAL_DB_PASSWORD')).toBe(encOf(before, 'INFISICAL_DB_PASSWORD'));
    expect((await f.decrypt()).INFISICAL_DB_PASSWORD).toBe(f.values.INFISICAL_DB_PASSWORD);
  });

  it('rotate, init --fill and recipients add/remove: changed values and the MAC under IVs the file never had', async () => {
    const f = await fixture();
    let before = f.text();
    await rotateSecrets({ file: f.file, keys: ['REDIS_PASSWORD', 'INFISICAL_DB_PASSWORD'], env: f.env() });
    expectFresh(before, f.text(), ['REDIS_PASSWORD', 'INFISICAL_DB_PASSWORD']);

    before = f.text();
    const filled = await initSecrets({ file: f.file, fill: true, env: f.env() });
    expect(filled.added.length).toBeGreaterThan(0);
    expectFresh(before, f.text(), filled.added);

    before = f.text();
    await changeRecipients({ file: f.file, action: 'add', recipient: f.k2.recipient, env: f.env() });
    expectFresh(before, f.text(), []);

    before = f.text();
    await changeRecipients({ file: f.file, action: 'remove', recipient: f.k1.recipient, env: f.env() });
    const after = f.text();
    // A new data key: every value re-encrypted, none under an IV of the old file.
    const keys = Object.keys(await f.decrypt(f.k2));
    expectFresh(before, after, keys);
  });

  it('edit: a value changed, then changed back: fresh IVs, the first ciphertext not made again', async () => {
    const f = await fixture();
    const runtime = tempDir('sf-sops-writing-runtime-');
    const editor = join(f.dir, 'editor.sh');
    const valueFile = join(f.dir, 'value');
    // Puts the value the test left in valueFile in REDIS_PASSWORD (the environment would not carry it: a
    // known secret's value is kept out of the editor's environment under any name).
    writeFileSync(
      editor,
      `#!/bin/sh\nv=$(cat '${valueFile}')\nsed -i "s/^REDIS_PASSWORD: .*/REDIS_PASSWORD: $v/" "$1"\n`,
      { mode: 0o755 },
    );
    const warned: string[] = [];
    const edit = (value: string) => {
      writeFileSync(valueFile, value);
      return editSecrets({
        file: f.file,
        env: { ...f.env(), EDITOR: editor, XDG_RUNTIME_DIR: runtime },
        ui: { info: () => {}, warn: (line) => warned.push(line) },
        terminal: false,
      });
    };
    const first = f.text();
    const other = hex();
    expect((await edit(other)).action).toBe('written');
    const second = f.text();
    expectFresh(first, second, ['REDIS_PASSWORD']);
    expect((await edit(f.values.REDIS_PASSWORD)).action).toBe('written');
    expectFresh(second, f.text(), ['REDIS_PASSWORD']);
    expect(encOf(f.text(), 'REDIS_PASSWORD')).not.toBe(encOf(first, 'REDIS_PASSWORD'));
    expectNoIvAgain([first, second, f.text()]);
    expect((await f.decrypt()).REDIS_PASSWORD).toBe(f.values.REDIS_PASSWORD);
    expect(warned).toEqual([]);
  });
});

/** The data key an identity unwraps from a file's age entries. */
async function dataKeyOf(text: string, key: AgeKey): Promise<Uint8Array> {
  const { armor } = await import('age-encryption');
  const meta = parseMetadata(storeFor('yaml').loadEncryptedFile(text, 'f.sops.yaml').metadata, 'f.sops.yaml');
  const decrypter = new Decrypter();
  decrypter.addIdentity(key.identity);
  for (const entry of meta.ageEntries) {
    try {
      return await decrypter.decrypt(armor.decode(entry.enc));
    } catch {
      // Not this identity's entry.
    }
  }
  throw new Error('no entry opens with that identity');
}

/** Each encrypted leaf of the file's document with its AAD, and the MAC with its own (lastmodified). */
function sealed(text: string): { where: string; enc: string; aad: string }[] {
  const store = storeFor('yaml').loadEncryptedFile(text, 'f.sops.yaml');
  const out: { where: string; enc: string; aad: string }[] = [];
  walkBranch(store.branches[0] as Branch, (leaf, place) => {
    if (typeof leaf === 'string' && leaf.startsWith('ENC['))
      out.push({ where: place.where, enc: leaf, aad: aadOf(place.path) });
    return leaf;
  });
  const sops = store.metadata as { mac: string; lastmodified: string };
  out.push({ where: 'sops.mac', enc: sops.mac, aad: String(sops.lastmodified) });
  return out;
}

describe('recipients remove replaces the data key', () => {
  it('with the data key the file had before the removal, no value of the new file (nor its MAC) decrypts', async () => {
    const f = await fixture();
    await f.write([f.k1.recipient, f.k2.recipient]);
    const before = f.text();
    const oldKey = await dataKeyOf(before, f.k1);
    // The old key opens the old file: what follows tests the key, not a broken decryption.
    const oldSealed = sealed(before);
    for (const s of oldSealed) expect(() => decryptValue(oldKey, s.enc, s.aad), s.where).not.toThrow();

    await changeRecipients({ file: f.file, action: 'remove', recipient: f.k1.recipient, env: f.env(f.k2) });
    const after = f.text();
    const newKey = await dataKeyOf(after, f.k2);
    expect(Buffer.from(newKey).equals(Buffer.from(oldKey)), 'the data key is the old one').toBe(false);
    const now = sealed(after);
    expect(now.length).toBe(oldSealed.length);
    for (const s of now) {
      expect(() => decryptValue(newKey, s.enc, s.aad), s.where).not.toThrow();
      let failure: unknown;
      try {
        decryptValue(oldKey, s.enc, s.aad);
      } catch (err) {
        failure = err;
      }
      expect(failure, `${s.where} decrypts with the old data key`).toBeInstanceOf(CipherError);
      expect((failure as CipherError).reason).toBe('auth');
    }
    expect(await f.decrypt(f.k2)).toEqual(f.values);
    await expect(f.decrypt(f.k1)).rejects.toThrow(/no age identity decrypts the data key/);
  });
});

describe('a file changed by someone else while the command works is not overwritten', () => {
  /**
   * The other writer: SOPS_AGE_KEY_CMD, which every command runs after it has read the file and before it
   * writes, puts another sops-written version of the file in place (same inode, same size, the old
   * mtime put back: only the bytes tell) and then hands over the key.
   */
  async function racing() {
    const f = await fixture();
    await f.write([f.k1.recipient, f.k2.recipient]);
    const k3 = await makeAgeKey(f.dir, 'k3.txt');
    const other = join(f.dir, 'other.sops.yaml');
    copyFileSync(f.file, other);
    await setSecret({ file: other, key: 'REDIS_PASSWORD', value: hex(), env: f.env() });
    const otherText = readFileSync(other, 'utf8');
    expect(otherText.length).toBe(f.text().length);
    const stamp = join(f.dir, 'stamp');
    const keyCmd = join(f.dir, 'key-cmd.sh');
    writeFileSync(
      keyCmd,
      `#!/bin/sh\ntouch -r '${f.file}' '${stamp}'\ncat '${other}' > '${f.file}'\ntouch -r '${stamp}' '${f.file}'\ncat '${f.k1.keysFile}'\n`,
      { mode: 0o755 },
    );
    const env = { HOME: f.dir, PATH: process.env.PATH ?? '', SOPS_AGE_KEY_CMD: keyCmd };
    return { ...f, k3, otherText, env };
  }

  const commands: [string, (r: Awaited<ReturnType<typeof racing>>) => Promise<unknown>][] = [
    ['set', (r) => setSecret({ file: r.file, key: 'REDIS_PASSWORD', value: hex(), env: r.env })],
    ['rotate', (r) => rotateSecrets({ file: r.file, keys: ['REDIS_PASSWORD'], env: r.env })],
    ['init --fill', (r) => initSecrets({ file: r.file, fill: true, env: r.env })],
    [
      'recipients add',
      (r) => changeRecipients({ file: r.file, action: 'add', recipient: r.k3.recipient, env: r.env }),
    ],
    [
      'recipients remove',
      (r) => changeRecipients({ file: r.file, action: 'remove', recipient: r.k2.recipient, env: r.env }),
    ],
  ];
  for (const [name, run] of commands) {
    it(`${name}: refused (exit 1) naming the file; the other writer's bytes stay; no temp file`, async () => {
      const r = await racing();
      const { ino, mtimeMs } = statSync(r.file);
      let failure: unknown;
      try {
        await run(r);
      } catch (err) {
        failure = err;
      }
      expect(failure).toBeInstanceOf(WorkError);
      expect((failure as Error).message).toBe(
        `${r.file} changed while this command was working; nothing was written`,
      );
      expect(r.text()).toBe(r.otherText);
      // Same inode and mtime: the other writer's own write, which nothing replaced.
      expect(statSync(r.file)).toMatchObject({ ino, mtimeMs });
      expect(readdirSync(r.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });
  }

  it('set on the command line: exit 1, the error naming the file and what to do; theirs kept', async () => {
    const r = await racing();
    const run = await runScript('secrets.ts', ['set', 'REDIS_PASSWORD', '--secrets-file', r.file], r.env, {
      input: hex(),
    });
    expect(run.exitCode, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      `error: ${r.file} changed while this command was working; nothing was written`,
    );
    expect(run.stderr).toMatch(/^hint: run it again$/m);
    expect(r.text()).toBe(r.otherText);
    expect(readdirSync(r.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('init: a file someone else creates while it encrypts is kept (exit 1), not replaced; no temp file', async () => {
    const f = await fixture();
    const file = join(f.dir, 'new.sops.yaml');
    const theirs = f.text();
    // initSecrets looks for the file before its first await, then encrypts (age, asynchronously): the
    // other writer's file appears in between.
    const running = initSecrets({ file, recipient: f.k1.recipient, fill: false });
    writeFileSync(file, theirs, { mode: 0o600 });
    let failure: unknown;
    try {
      await running;
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(WorkError);
    expect((failure as Error).message).toBe(
      `${file} was created by someone else while init was working; nothing was written`,
    );
    expect(readFileSync(file, 'utf8')).toBe(theirs);
    expect(readdirSync(f.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('the key command runs after the file is read (what the tests above rely on)', async () => {
    const r = await racing();
    // Without the race the same key command lets the same write through.
    const keyCmd = join(r.dir, 'plain-key-cmd.sh');
    writeFileSync(keyCmd, `#!/bin/sh\ncat '${r.k1.keysFile}'\n`, { mode: 0o755 });
    const value = hex();
    await setSecret({
      file: r.file,
      key: 'REDIS_PASSWORD',
      value,
      env: { ...r.env, SOPS_AGE_KEY_CMD: keyCmd },
    });
    expect((await r.decrypt()).REDIS_PASSWORD).toBe(value);
    expect(specOf('REDIS_PASSWORD')?.rotation.kind).not.toBe('never');
  });
});
