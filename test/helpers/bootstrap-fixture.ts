/**
 * A bootstrap SOPS file made at test time: a fresh age key, canary values for every schema key (each
 * unique, each passing its format check, several with characters that break naive quoting), encrypted
 * with the project's own SOPS encryptor. Nothing here is committed; every test gets its own directory.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { encodedForms, Redactor } from '../../scripts/lib/core/redactor.ts';
import { valuesToHide } from '../../scripts/lib/secrets/registry.ts';
import { SECRET_KEYS } from '../../scripts/lib/secrets/schema.ts';
import { encryptSops } from '../../scripts/lib/secrets/sops/index.ts';
import { tempDir } from './temp.ts';

const alnum = (n: number) =>
  [...randomBytes(n)]
    .map((b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[b % 62])
    .join('');
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Values that pass every format check; each contains a random part, so finding one anywhere is a leak. */
export function canaryValues(): Record<string, string> {
  const tag = alnum(6);
  return {
    HCLOUD_TOKEN: `CANARYhcloud${tag}${alnum(46)}`,
    PROXMOX_PASSWORD: `CANARY-proxmox-${tag} "q" 'a' $HOME \\n & | ; <x>`,
    CLOUDFLARE_API_TOKEN: `CANARY_cf_${tag}_${alnum(30)}`,
    AUTHENTIK_TOKEN: `CANARYak${tag}${alnum(46)}`,
    AUTHENTIK_SECRET_KEY: `CANARY-aksk-${tag}-${randomBytes(48).toString('base64')}`,
    AUTHENTIK_POSTGRESQL_PASSWORD: `CANARY-akpg-${tag}-${hex(8)}`,
    AUTHENTIK_GITHUB_SECRET: hex(20),
    NB_DATA_STORE_KEY: randomBytes(32).toString('base64'),
    NB_RELAY_SECRET: `CANARY-relay-${tag}-${randomBytes(24).toString('base64')}`,
    NB_OWNER_PASSWORD: `CANARY-owner-${tag} "q" $x ${alnum(12)}`,
    NB_PROXY_TOKEN: `nbx_${alnum(36)}`,
    NB_BIFROST_SETUP_KEY: randomUUID().toUpperCase(),
    INFISICAL_DB_PASSWORD: `CANARY-db:${tag}/p@ss?w#rd&"'\\$(x)%`,
    INFISICAL_ENCRYPTION_KEY: hex(16),
    INFISICAL_AUTH_SECRET: `CANARY-auth-${tag}-${hex(16)}`,
    REDIS_PASSWORD: `CANARY-redis-${tag}-${hex(8)}`,
    INFISICAL_SERVICE_TOKEN: `st.CANARY${tag}.${alnum(24)}.${alnum(24)}`,
    INFISICAL_IDENTITY_ID: randomUUID(),
    OPENBAO_UNSEAL_KEY: randomBytes(32).toString('base64'),
    FINGERPRINT_KEY: randomBytes(32).toString('base64'),
  };
}

/**
 * Every form a canary could leak in, for the values and every value derived from them (the connection
 * URI built from the DB password): the same registry and encodings the product's redactor uses, so the
 * tests cannot have a blind spot the redactor lacks, nor the other way round.
 */
export function leakForms(values: Record<string, string>): { key: string; form: string }[] {
  return Object.entries(valuesToHide(values)).flatMap(([key, v]) =>
    encodedForms(v)
      .filter((form) => form.length >= Redactor.minLength)
      .map((form) => ({ key, form })),
  );
}

export function findLeaks(text: string, values: Record<string, string>): string[] {
  const found = leakForms(values)
    .filter(({ form }) => text.includes(form))
    .map(({ key }) => key);
  // Independent of the registry above: decode every base64-looking run and look for each value in its
  // raw, URL-encoded or JSON form inside (a derived value the registry missed still shows up here).
  for (const run of text.match(/[A-Za-z0-9+/]{16,}={0,2}/g) ?? []) {
    const decoded = Buffer.from(run, 'base64').toString('utf8');
    for (const [key, v] of Object.entries(values)) {
      const forms = [v, encodeURIComponent(v), JSON.stringify(v).slice(1, -1)];
      if (v.length >= 8 && forms.some((form) => decoded.includes(form))) found.push(`${key} (inside base64)`);
    }
  }
  return [...new Set(found)];
}

export interface BootstrapFixture {
  dir: string;
  secretsFile: string;
  keyFile: string;
  recipient: string;
  values: Record<string, string>;
  /** A bin directory holding only `node`, so no sops or kubectl from the machine leaks into a test. */
  binDir: string;
  /** An empty HOME and TMPDIR: nothing from the developer's machine is read, nothing left is missed. */
  home: string;
  tmp: string;
}

/** The environment of a command run against a cluster with `kubectl`: only the fixture's own places. */
export function kubectlEnv(f: BootstrapFixture, kubectl: string): Record<string, string> {
  return {
    PATH: f.binDir,
    HOME: f.home,
    TMPDIR: f.tmp,
    KUBECTL: kubectl,
    // kubectl's discovery cache, kept out of ~/.kube.
    KUBECACHEDIR: join(f.dir, 'kube-cache'),
    SOPS_AGE_KEY_FILE: f.keyFile,
    NO_COLOR: '1',
  };
}

export async function makeBootstrapFixture(
  opts: { values?: Record<string, string | undefined>; omit?: readonly string[] } = {},
): Promise<BootstrapFixture> {
  const dir = tempDir('sf-fixture-');
  const identity = await generateIdentity();
  const recipient = await identityToRecipient(identity);
  const keyFile = join(dir, 'keys.txt');
  writeFileSync(keyFile, `# test key\n${identity}\n`, { mode: 0o600 });
  const values = { ...canaryValues(), ...opts.values } as Record<string, string | undefined>;
  for (const key of opts.omit ?? []) delete values[key];
  const plain = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
  const secretsFile = join(dir, 'bootstrap.sops.yaml');
  writeFileSync(secretsFile, await encryptSops(plain, { recipients: [recipient], format: 'yaml' }), {
    mode: 0o600,
  });
  const binDir = join(dir, 'bin');
  mkdirSync(binDir);
  symlinkSync(process.execPath, join(binDir, 'node'));
  const home = join(dir, 'home');
  const tmp = join(dir, 'tmp');
  mkdirSync(home);
  mkdirSync(tmp);
  chmodSync(dir, 0o700);
  return { dir, secretsFile, keyFile, recipient, values: plain, binDir, home, tmp };
}

/** Every key of the schema; lets tests assert that a run touched all of them. */
export const ALL_KEYS = SECRET_KEYS;

/** The keys only the Infisical backends' Secrets read, in schema order: OpenBao needs none of them. */
export const INFISICAL_ONLY_KEYS = [
  'INFISICAL_DB_PASSWORD',
  'INFISICAL_ENCRYPTION_KEY',
  'INFISICAL_AUTH_SECRET',
  'REDIS_PASSWORD',
  'INFISICAL_SERVICE_TOKEN',
  'INFISICAL_IDENTITY_ID',
];
