/**
 * Whatever loads a secret registers it with the redactor before handing it back, so no caller can print
 * a value it forgot to register. Each way loadSecrets can obtain values is called in-process from a
 * state with nothing registered, and right after the call (no other call made) every canary and every
 * derived value is hidden in all the forms the leak tests search for. A guard makes a new exported
 * function of source.ts or of the native decryptor be classified here before the suite passes, so a new
 * loader cannot slip past.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hasFingerprintKey, redactor } from '../../scripts/lib/core/redact.ts';
import { beginRun } from '../../scripts/lib/core/run-context.ts';
import { LocalExecutor } from '../../scripts/lib/exec/local.ts';
import * as decrypt from '../../scripts/lib/secrets/sops/decrypt.ts';
import * as source from '../../scripts/lib/secrets/source.ts';
import { type BootstrapFixture, leakForms, makeBootstrapFixture } from '../helpers/bootstrap-fixture.ts';

let fx: BootstrapFixture;
beforeAll(async () => {
  fx = await makeBootstrapFixture();
});
beforeEach(() => void beginRun());

/** What the redactor still lets through of the loaded values: names of the values whose forms survive. */
function unhidden(values: Record<string, string>): string[] {
  const forms = leakForms(values);
  const text = forms.map((f) => `<${f.form}>`).join('\n');
  const redacted = redactor.redact(text);
  return [...new Set(forms.filter((f) => redacted.includes(f.form)).map((f) => f.key))];
}

const baseEnv = () => ({ PATH: fx.binDir, HOME: fx.home, TMPDIR: fx.tmp, SOPS_AGE_KEY_FILE: fx.keyFile });

async function load(extra: { fromEnv?: boolean; env?: NodeJS.ProcessEnv } = {}) {
  return source.loadSecrets({
    secretsFile: fx.secretsFile,
    fromEnv: extra.fromEnv ?? false,
    required: [],
    env: extra.env ?? baseEnv(),
    executor: new LocalExecutor(),
  });
}

describe('loadSecrets registers what it returns', () => {
  it('from the SOPS file with the native decryptor: every value and derived value hidden in every form', async () => {
    expect(redactor.holds(fx.values.HCLOUD_TOKEN ?? '')).toBe(false);
    const loaded = await load();
    expect(loaded.kind).toBe('native');
    expect(Object.keys(loaded.values).sort()).toEqual(Object.keys(fx.values).sort());
    expect(unhidden(loaded.values)).toEqual([]);
    expect(hasFingerprintKey()).toBe(true);
  });

  it('from the environment (--from-env): every value and derived value hidden in every form', async () => {
    const loaded = await load({ fromEnv: true, env: { ...baseEnv(), ...fx.values } });
    expect(loaded.kind).toBe('environment');
    expect(Object.keys(loaded.values).sort()).toEqual(Object.keys(fx.values).sort());
    expect(unhidden(loaded.values)).toEqual([]);
    expect(hasFingerprintKey()).toBe(true);
  });

  it('through the sops binary: every value and derived value hidden in every form', async () => {
    // A stand-in sops that prints the decrypted document, as `sops --decrypt --output-type json` does.
    const plain = join(fx.dir, 'plain.json');
    writeFileSync(plain, JSON.stringify(fx.values), { mode: 0o600 });
    const sops = join(fx.dir, 'sops-stand-in');
    writeFileSync(sops, `#!/bin/sh\nexec cat '${plain}'\n`, { mode: 0o700 });
    const loaded = await load({ env: { ...baseEnv(), SOPS: sops } });
    expect(loaded.kind).toBe('sops-binary');
    expect(Object.keys(loaded.values).sort()).toEqual(Object.keys(fx.values).sort());
    expect(unhidden(loaded.values)).toEqual([]);
  });
});

// Each exported loader of the native decryptor, called the way its callers call it; `values` maps the
// file's top-level keys to what it returned.
const DECRYPT_LOADERS: Record<string, () => Promise<Record<string, unknown>>> = {
  decryptSopsFile: async () =>
    (await decrypt.decryptSopsFile(fx.secretsFile, { env: baseEnv() })).documents[0] as Record<
      string,
      unknown
    >,
};

describe('the native decryptor registers what it decrypts', () => {
  for (const [name, call] of Object.entries(DECRYPT_LOADERS)) {
    it(`${name}: every value and derived value hidden right after the call`, async () => {
      expect(redactor.holds(fx.values.HCLOUD_TOKEN ?? '')).toBe(false);
      const doc = await call();
      const values = Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, String(v)]));
      expect(values).toEqual(fx.values);
      expect(unhidden(values)).toEqual([]);
      expect(hasFingerprintKey()).toBe(true);
    });
  }
});

describe('a new way to load secrets cannot skip registration', () => {
  // Every exported function of source.ts, by what it returns. A new export fails here until it is
  // listed: as a loader (then it gets a test above) or as returning no secret value.
  const LOADERS = ['loadSecrets'];
  const NO_VALUES: string[] = [];

  it('every exported function of source.ts is a registering loader or returns no value', () => {
    const functions = Object.entries(source)
      .filter(([, v]) => typeof v === 'function')
      .map(([name]) => name)
      .sort();
    expect(functions).toEqual([...LOADERS, ...NO_VALUES].sort());
  });

  // The same for the native decryptor: its loaders are tested above; the rest read key names, notices
  // or the still-encrypted text.
  const DECRYPT_NO_VALUES = ['macOnlyNotices', 'readPlainKeyNames', 'readSopsFile'];
  // Trees for callers that register what they keep (loadSecrets, the SOPS writer) or print the
  // plaintext on purpose (`sops decrypt`).
  const DECRYPT_TREES = ['decryptToTree', 'decryptFileToTree', 'decryptSopsText'];

  it('every exported function of the native decryptor is a registering loader or returns no value', () => {
    const functions = Object.entries(decrypt)
      .filter(([, v]) => typeof v === 'function')
      .map(([name]) => name)
      .sort();
    expect(functions).toEqual(
      [...Object.keys(DECRYPT_LOADERS), ...DECRYPT_NO_VALUES, ...DECRYPT_TREES].sort(),
    );
  });
});
