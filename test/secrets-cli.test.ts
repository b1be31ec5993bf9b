/**
 * scripts/secrets.ts: init → decrypt round trip, --fill keeping existing values, check's table and exit
 * codes, and the "What Lives Where" table, all as real processes with a fresh age key.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { SECRET_SCHEMA } from '../scripts/lib/secrets/schema.ts';
import { decryptSopsFile } from '../scripts/lib/secrets/sops/index.ts';
import { makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

async function keyPair() {
  const dir = tempDir('sf-secrets-');
  const identity = await generateIdentity();
  const keyFile = join(dir, 'keys.txt');
  writeFileSync(keyFile, `${identity}\n`, { mode: 0o600 });
  return { dir, keyFile, recipient: await identityToRecipient(identity) };
}

const env = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  HOME: tmpdir(),
  NO_COLOR: '1',
  ...extra,
});

describe('secrets init', () => {
  it('generates every generatable key, encrypted to the recipient; the native decryptor reads it back', async () => {
    const k = await keyPair();
    const file = join(k.dir, 'bootstrap.sops.yaml');
    const r = await runScript(
      'secrets.ts',
      ['init', '--recipient', k.recipient, '--file', file, '--json'],
      env(),
    );
    expect(r.exitCode).toBe(0);
    const generatable = SECRET_SCHEMA.filter((s) => s.generate.kind !== 'manual').map((s) => s.key);
    expect(JSON.parse(r.stdout).added).toEqual(generatable);
    const doc = (await decryptSopsFile(file, { env: { SOPS_AGE_KEY_FILE: k.keyFile } }))
      .documents[0] as Record<string, string>;
    expect(Object.keys(doc)).toEqual(generatable);
    for (const spec of SECRET_SCHEMA) {
      if (spec.generate.kind !== 'manual' && 'format' in spec && spec.format)
        expect(spec.format.test(doc[spec.key] ?? ''), spec.key).toBe(true);
    }
    // No generated value reaches the output.
    for (const v of Object.values(doc)) expect(r.stdout + r.stderr).not.toContain(v);
    // Refuses to overwrite.
    const again = await runScript('secrets.ts', ['init', '--recipient', k.recipient, '--file', file], env());
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/exists already/);
  });

  it('--fill adds only the missing keys and keeps every existing value', async () => {
    const k = await keyPair();
    const file = join(k.dir, 'bootstrap.sops.yaml');
    const { encryptSops } = await import('../scripts/lib/secrets/sops/index.ts');
    writeFileSync(
      file,
      await encryptSops(
        { REDIS_PASSWORD: 'kept-redis-0123456789', CUSTOM_KEY: 'kept-custom' },
        { recipients: [k.recipient], format: 'yaml' },
      ),
    );
    const r = await runScript(
      'secrets.ts',
      ['init', '--fill', '--file', file, '--json'],
      env({ SOPS_AGE_KEY_FILE: k.keyFile }),
    );
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.exitCode).toBe(0);
    const doc = (await decryptSopsFile(file, { env: { SOPS_AGE_KEY_FILE: k.keyFile } }))
      .documents[0] as Record<string, string>;
    expect(doc.REDIS_PASSWORD).toBe('kept-redis-0123456789');
    expect(doc.CUSTOM_KEY).toBe('kept-custom');
    expect(doc.NB_DATA_STORE_KEY).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    // A file from before the owner was seeded gets its password.
    expect(doc.NB_OWNER_PASSWORD).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(JSON.parse(r.stdout).added).toContain('NB_OWNER_PASSWORD');
    expect(JSON.parse(r.stdout).added).not.toContain('REDIS_PASSWORD');
    expect(readFileSync(file, 'utf8')).toContain(k.recipient);
  });
});

describe('secrets check', () => {
  it('lists every key with status and length, never a value; exit 2 while required keys are missing', async () => {
    const k = await keyPair();
    const file = join(k.dir, 'bootstrap.sops.yaml');
    await runScript('secrets.ts', ['init', '--recipient', k.recipient, '--file', file], env());
    const r = await runScript('secrets.ts', ['check', '--file', file], env({ SOPS_AGE_KEY_FILE: k.keyFile }));
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toMatch(/^NB_DATA_STORE_KEY\s+ok\s+44\s/m);
    expect(r.stdout).toMatch(/^HCLOUD_TOKEN\s+missing\s/m);
    expect(r.stdout).toMatch(/^NB_PROXY_TOKEN\s+optional\s/m);
    expect(r.stdout).toMatch(/^NB_OWNER_PASSWORD\s+ok\s+32\s/m);
    const doc = (await decryptSopsFile(file, { env: { SOPS_AGE_KEY_FILE: k.keyFile } }))
      .documents[0] as Record<string, string>;
    for (const v of Object.values(doc)) expect(r.stdout + r.stderr).not.toContain(v);
  });

  it('a file from before FINGERPRINT_KEY: the hint names `init --fill`, which adds it and nothing else', async () => {
    const f = await makeBootstrapFixture({ omit: ['FINGERPRINT_KEY'] });
    const fenv = env({ SOPS_AGE_KEY_FILE: f.keyFile, HOME: f.home });
    const r = await runScript('secrets.ts', ['check', '--file', f.secretsFile], fenv);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toMatch(/^FINGERPRINT_KEY\s+missing\s/m);
    expect(r.stderr).toMatch(
      /^hint: add FINGERPRINT_KEY with `node --import tsx scripts\/secrets.ts init --fill/m,
    );
    const before = readFileSync(f.secretsFile, 'utf8');
    expect((await runScript('secrets.ts', ['init', '--fill', '--file', f.secretsFile], fenv)).exitCode).toBe(
      0,
    );
    const after = await runScript('secrets.ts', ['check', '--file', f.secretsFile], fenv);
    expect(after.exitCode, after.stderr).toBe(0);
    expect(after.stdout).toMatch(/^FINGERPRINT_KEY\s+ok\s+44\s/m);
    expect(readFileSync(f.secretsFile, 'utf8')).not.toBe(before);
  });

  it('follows the runtime backend: OpenBao needs no Infisical key, the default needs them', async () => {
    const f = await makeBootstrapFixture({
      omit: ['INFISICAL_DB_PASSWORD', 'INFISICAL_ENCRYPTION_KEY', 'INFISICAL_AUTH_SECRET', 'REDIS_PASSWORD'],
    });
    const fenv = env({ SOPS_AGE_KEY_FILE: f.keyFile, HOME: f.home });
    const bao = await runScript(
      'secrets.ts',
      ['check', '--file', f.secretsFile, '--backend', 'openbao'],
      fenv,
    );
    expect(bao.exitCode, bao.stderr).toBe(0);
    expect(bao.stdout).toContain('backend openbao (--backend)');
    expect(bao.stdout).not.toMatch(/^INFISICAL_/m);
    expect(bao.stdout).toMatch(/^OPENBAO_UNSEAL_KEY\s+ok\s/m);
    const infisical = await runScript(
      'secrets.ts',
      ['check', '--file', f.secretsFile, '--backend', 'infisical', '--json'],
      fenv,
    );
    expect(infisical.exitCode).toBe(2);
    const keys = JSON.parse(infisical.stdout).keys as { key: string; status: string }[];
    expect(keys.filter((k) => k.status === 'missing').map((k) => k.key)).toEqual([
      'INFISICAL_DB_PASSWORD',
      'INFISICAL_ENCRYPTION_KEY',
      'INFISICAL_AUTH_SECRET',
      'REDIS_PASSWORD',
    ]);
    // v1beta1 reads the machine identity, not the service token.
    expect(keys.map((k) => k.key)).toContain('INFISICAL_IDENTITY_ID');
    expect(keys.map((k) => k.key)).not.toContain('INFISICAL_SERVICE_TOKEN');
    rmSync(f.dir, { recursive: true, force: true });
  });

  it('without an age key checks key names only', async () => {
    const k = await keyPair();
    const file = join(k.dir, 'bootstrap.sops.yaml');
    await runScript('secrets.ts', ['init', '--recipient', k.recipient, '--file', file], env());
    const r = await runScript('secrets.ts', ['check', '--file', file, '--json'], env({ HOME: k.dir }));
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(r.stdout).source.kind).toBe('key-names-only');
    // A key source that is set but unusable is why: said, naming it, not passed over.
    const missing = join(k.dir, 'moved-keys.txt');
    const named = await runScript(
      'secrets.ts',
      ['check', '--file', file],
      env({ HOME: k.dir, SOPS_AGE_KEY_FILE: missing }),
    );
    expect(named.exitCode).toBe(2);
    expect(named.stderr).toContain(
      `warning: SOPS_AGE_KEY_FILE=${missing} does not exist: no usable age key, so only key names are read`,
    );
  });
});

describe('terminal escapes in a SOPS file', () => {
  it("a key name's ESC, BEL and CSI are shown escaped in the error, never sent raw; --json stays valid", async () => {
    const k = await keyPair();
    const file = join(k.dir, 'bootstrap.sops.yaml');
    const { encryptSops } = await import('../scripts/lib/secrets/sops/index.ts');
    const hostile = 'EVIL\x1b]0;pwned\x07\x1b[2J\x9b31mKEY';
    const text = await encryptSops(
      { REDIS_PASSWORD: 'kept-redis-0123456789', [hostile]: 'canary-hostile-value' },
      { recipients: [k.recipient], format: 'yaml' },
    );
    // The hostile key's value tampered with (its ciphertext's first character changed): the error names its key path.
    const line = text.split('\n').find((l) => l.startsWith('"EVIL')) ?? '';
    const tampered = line.replace(/data:(.)/, (_m, c: string) => `data:${c === 'A' ? 'B' : 'A'}`);
    expect(tampered).not.toBe(line);
    writeFileSync(file, text.replace(line, tampered), { mode: 0o600 });
    const r = await runScript('secrets.ts', ['check', '--file', file], env({ SOPS_AGE_KEY_FILE: k.keyFile }));
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain('key path EVIL\\x1b]0;pwned\\x07\\x1b[2J\\u009b31mKEY does not decrypt');
    for (const c of ['\x1b', '\x07', '\x9b']) expect(r.stdout + r.stderr).not.toContain(c);

    const json = await runScript(
      'secrets.ts',
      ['check', '--file', file, '--json'],
      env({ SOPS_AGE_KEY_FILE: k.keyFile }),
    );
    for (const c of ['\x1b', '\x07', '\x9b']) expect(json.stdout + json.stderr).not.toContain(c);
    // The JSON result names the key as it is: the escapes are JSON's own.
    expect(JSON.parse(json.stdout).error).toContain(`key path ${hostile} does not decrypt`);
  });
});

describe('secrets where', () => {
  it('prints the What Lives Where table from the schema', async () => {
    const r = await runScript('secrets.ts', ['where'], env());
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/\| `NB_DATA_STORE_KEY` \| SOPS → \.secrets\.env \| Phase 0 \| \*\*No\*\*/);
    expect(r.stdout).toMatch(/\| `AUTHENTIK_TOKEN` \| SOPS → \.secrets\.env as AUTHENTIK_BOOTSTRAP_TOKEN/);
    expect(r.stdout).toMatch(
      /\| `CLOUDFLARE_API_TOKEN` \| SOPS → k8s Secret cloudflare-api-token \+ \.secrets\.env as CF_DNS_API_TOKEN/,
    );
    expect(r.stdout).toMatch(
      /\| `NB_OWNER_PASSWORD` \| SOPS → \.secrets\.env as NB_OWNER_PASSWORD_HASH \(hashed: bcrypt, cost 10; never the value\) \| Phase 0 \| Yes \(provisioning recreates netbird-server, which replaces the owner's stored password/,
    );
  });
});
