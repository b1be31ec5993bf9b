/**
 * Warnings an operator needs: a SOPS file or an age keys file that group or other users can read
 * (with the chmod that fixes it), and the once-per-run notice that a mac_only_encrypted file's
 * unencrypted values are not covered by its MAC. Through the library (`warnings`) and on stderr.
 */
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { decryptSopsFile, encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { loadSecrets } from '../scripts/lib/secrets/source.ts';
import {
  FLAT_DOC,
  isolatedEnv,
  makeSopsFixtures,
  runSopsCli,
  type SopsFixtures,
  secretStrings,
} from './fixtures/make-sops-fixtures.ts';
import { findLeaks, makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';

let fx: SopsFixtures;
let macOnly = '';
beforeAll(async () => {
  fx = await makeSopsFixtures();
  macOnly = join(fx.dir, 'mac-only.sops.yaml');
  const doc = { API_TOKEN: 'canary-mac-only-token', note_unencrypted: 'canary-visible' };
  writeFileSync(
    macOnly,
    await encryptSops([doc], { recipients: [fx.key.recipient], format: 'yaml', macOnlyEncrypted: true }),
    {
      mode: 0o600,
    },
  );
});
afterAll(() => rmSync(fx.dir, { recursive: true, force: true }));

const sops = runSopsCli;

/** A copy of the flat fixture with `mode`, and a keys file copy with `keyMode`. */
function copies(name: string, mode: number, keyMode: number): { file: string; keys: string } {
  const file = join(fx.dir, `${name}.sops.yaml`);
  const keys = join(fx.dir, `${name}-keys.txt`);
  copyFileSync(fx.files.flat, file);
  copyFileSync(fx.key.keysFile, keys);
  chmodSync(file, mode);
  chmodSync(keys, keyMode);
  return { file, keys };
}

const noValues = (text: string) => {
  for (const secret of secretStrings(FLAT_DOC)) expect(text).not.toContain(secret);
};

describe('files others can read', () => {
  it('a 0644 SOPS file and a 0644 keys file each get a warning with the exact fix; stdout stays the plaintext', async () => {
    const { file, keys } = copies('open', 0o644, 0o644);
    const r = await sops(['decrypt', file], isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: keys, NO_COLOR: '1' }));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(
      `warning: the SOPS file ${file} is open to its group and all other users (mode 0644); fix: chmod 600 ${file}`,
    );
    expect(r.stderr).toContain(
      `warning: the age key file ${keys} is open to its group and all other users (mode 0644); fix: chmod 600 ${keys}`,
    );
    expect(r.stdout).toContain('API_TOKEN: canary-api-5d0c77e1');
    noValues(r.stderr);
  });

  it('0600 files get no warning', async () => {
    const { file, keys } = copies('closed', 0o600, 0o600);
    const r = await sops(['decrypt', file], isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: keys }));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('the default keys file ($XDG_CONFIG_HOME/sops/age/keys.txt) is checked too, group-readable is enough', async () => {
    const { file } = copies('xdg', 0o600, 0o600);
    const config = join(fx.dir, 'xdg');
    const keys = join(config, 'sops', 'age', 'keys.txt');
    mkdirSync(join(config, 'sops', 'age'), { recursive: true });
    copyFileSync(fx.key.keysFile, keys);
    chmodSync(keys, 0o640);
    const decrypted = await decryptSopsFile(file, { env: isolatedEnv(fx.dir, { XDG_CONFIG_HOME: config }) });
    expect(decrypted.warnings).toEqual([
      `the age key file ${keys} is open to its group (mode 0640); fix: chmod 600 ${keys}`,
    ]);
  });

  it('loadSecrets carries them, and create-bootstrap-secrets and secrets check print them', async () => {
    const b = await makeBootstrapFixture();
    try {
      chmodSync(b.secretsFile, 0o604);
      const env = {
        PATH: b.binDir,
        HOME: b.home,
        TMPDIR: b.tmp,
        SOPS_AGE_KEY_FILE: b.keyFile,
        NO_COLOR: '1',
      };
      const loaded = await loadSecrets({
        secretsFile: b.secretsFile,
        fromEnv: false,
        required: [],
        env,
        executor: new LocalExecutor(),
      });
      const warning = `the SOPS file ${b.secretsFile} is open to all other users (mode 0604); fix: chmod 600 ${b.secretsFile}`;
      expect(loaded.warnings).toEqual([warning]);
      const [check, create] = await Promise.all([
        runScript('secrets.ts', ['check', '--secrets-file', b.secretsFile], env),
        runScript('create-bootstrap-secrets.ts', ['--dry-run', '--secrets-file', b.secretsFile], env),
      ]);
      for (const r of [check, create]) {
        expect(r.stderr).toContain(`warning: ${warning}`);
        expect(findLeaks(r.stdout + r.stderr, b.values)).toEqual([]);
      }
    } finally {
      rmSync(b.dir, { recursive: true, force: true });
    }
  }, 120_000); // several CLI runs of the suite, each a cold Node start: bounded, not timed
});

describe('mac_only_encrypted', () => {
  const NOTICE =
    'sets mac_only_encrypted: its MAC covers only the encrypted values, so its unencrypted values could be changed, added, removed or reordered without any error (sops behaves the same)';

  it('says once per run that the unencrypted values are not authenticated', async () => {
    const r = await sops(['decrypt', macOnly], isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: fx.key.keysFile }));
    expect(r.exitCode).toBe(0);
    expect(r.stderr.split(NOTICE)).toHaveLength(2);
    expect(r.stderr).toContain(`warning: ${macOnly} ${NOTICE}`);
    expect(r.stderr).not.toContain('canary-mac-only-token');
  });

  it('is in the library result, and not for an ordinary file', async () => {
    const env = isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: fx.key.keysFile });
    expect((await decryptSopsFile(macOnly, { env })).warnings).toEqual([`${macOnly} ${NOTICE}`]);
    expect((await decryptSopsFile(fx.files.flat, { env })).warnings).toEqual([]);
  });
});
