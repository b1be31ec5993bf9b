/**
 * The owner's password reaches the Bifrost host only as a bcrypt hash: made at the cost NetBird's Dex uses,
 * checked by libcrypt (not the library that made it), and kept while it verifies so an unchanged
 * password renders an unchanged .secrets.env.
 */
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../scripts/lib/bifrost/env-file.ts';
import { renderBifrostEnvFiles } from '../../scripts/lib/bifrost/render-env.ts';
import { BCRYPT } from '../../scripts/lib/secrets/password-hash.ts';
import { deliveredValue, type SecretUse, specOf } from '../../scripts/lib/secrets/schema.ts';
import { bcryptCost, libcryptVerifies } from '../helpers/bcrypt-check.ts';

/** The cost NetBird's Dex uses (its DefaultCost) and the README states. */
const DEX_COST = 10;
const PASSWORD = 'CANARY-owner "q" $x ü-0123456789';
const ownerUse = specOf('NB_OWNER_PASSWORD')?.uses[0] as SecretUse;

describe("the owner's password hash", () => {
  it('is a bcrypt hash of cost >= 10 that an independent implementation verifies', () => {
    const hash = BCRYPT.hash(PASSWORD);
    expect(bcryptCost(hash)).toBe(DEX_COST);
    expect(libcryptVerifies(PASSWORD, hash)).toBe(true);
    expect(libcryptVerifies(`${PASSWORD}!`, hash)).toBe(false);
  });

  it('reaches .secrets.env as NB_OWNER_PASSWORD_HASH only, never as the password', () => {
    const text = renderBifrostEnvFiles({ NB_OWNER_PASSWORD: PASSWORD }).secretsEnv;
    expect(text).not.toContain(PASSWORD);
    const env = parseEnvFile(text);
    expect([...env.keys()]).toEqual(['NB_OWNER_PASSWORD_HASH']);
    expect(libcryptVerifies(PASSWORD, env.get('NB_OWNER_PASSWORD_HASH') as string)).toBe(true);
  });

  it("keeps the host's hash while it verifies; hashes anew for another password, a weaker cost or a malformed one", () => {
    const held = BCRYPT.hash(PASSWORD);
    expect(deliveredValue(ownerUse, PASSWORD, held)).toBe(held);
    const host = `NB_OWNER_PASSWORD_HASH='${held}'\n`;
    expect(
      parseEnvFile(
        renderBifrostEnvFiles({ NB_OWNER_PASSWORD: PASSWORD }, { secretsEnv: host }).secretsEnv,
      ).get('NB_OWNER_PASSWORD_HASH'),
    ).toBe(held);

    const weak = bcrypt.hashSync(PASSWORD, 4);
    expect(libcryptVerifies(PASSWORD, weak)).toBe(true);
    for (const stale of [BCRYPT.hash('another password'), weak, 'not-a-hash', PASSWORD]) {
      const fresh = deliveredValue(ownerUse, PASSWORD, stale);
      expect(fresh).not.toBe(stale);
      expect(bcryptCost(fresh)).toBe(DEX_COST);
      expect(libcryptVerifies(PASSWORD, fresh)).toBe(true);
    }
  });

  it('NB_OWNER_PASSWORD is generated, 16 characters to 72 bytes (bcrypt ignores the rest)', () => {
    const spec = specOf('NB_OWNER_PASSWORD');
    expect(spec?.generate.kind).toBe('random-chars');
    expect(spec?.format?.test('a'.repeat(72))).toBe(true);
    expect(spec?.format?.test('a'.repeat(73))).toBe(false);
    // 36 characters but 72 bytes of UTF-8: the limit is bytes.
    expect(spec?.format?.test('ü'.repeat(36))).toBe(true);
    expect(spec?.format?.test('ü'.repeat(37))).toBe(false);
    expect(spec?.format?.test('a'.repeat(15))).toBe(false);
  });
});
