import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseEnc } from '../scripts/lib/secrets/sops/cipher.ts';
import { decryptToTree } from '../scripts/lib/secrets/sops/decrypt.ts';
import { GoTime } from '../scripts/lib/secrets/sops/go-values.ts';
import { decryptSopsFile, execEnvPairs } from '../scripts/lib/secrets/sops/index.ts';
import { macBytes } from '../scripts/lib/secrets/sops/mac.ts';
import { parseMetadata } from '../scripts/lib/secrets/sops/metadata.ts';
import { compileRules } from '../scripts/lib/secrets/sops/rules.ts';
import { storeFor } from '../scripts/lib/secrets/sops/stores.ts';
import { aadOf, type Scalar, walkBranch } from '../scripts/lib/secrets/sops/tree.ts';
import { loadVectors, type Vector, vectorsDir } from './fixtures/make-sops-fixtures.ts';
import { tempDir } from './helpers/temp.ts';
import { tierMissing } from './helpers/tiers.ts';

const { vectors, identities } = loadVectors();
if (vectors.length === 0)
  tierMissing(
    'shared',
    `the SOPS vectors at ${vectorsDir} (../shared beside the project)`,
    'the SOPS vector tests',
  );

function goKind(value: Exclude<Scalar, null>): string {
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'number') return 'float';
  if (typeof value === 'boolean') return 'bool';
  if (value instanceof GoTime) return 'time';
  return 'str';
}

/** The leaves as the expected files list them, from this implementation's own walk. */
async function leavesOf(vector: Vector) {
  const text = readFileSync(vector.path, 'utf8');
  const parsed = storeFor(vector.expected.format).loadEncryptedFile(text, vector.path);
  const meta = parseMetadata(parsed.metadata, vector.path);
  const shouldEncrypt = compileRules(meta.rules, vector.path);
  const encrypted: { aad: string; encrypted: boolean; type: string; in_mac: boolean }[] = [];
  for (const branch of parsed.branches) {
    walkBranch(branch, (leaf, place) => {
      if (typeof leaf === 'object' && leaf !== null && !(leaf instanceof GoTime)) return leaf;
      const isEncrypted = shouldEncrypt(place, false);
      const type = !isEncrypted ? goKind(leaf) : leaf === '' ? 'empty' : parseEnc(leaf as string).type;
      encrypted.push({
        aad: aadOf(place.path),
        encrypted: isEncrypted,
        type,
        in_mac: !meta.macOnlyEncrypted || isEncrypted,
      });
      return leaf;
    });
  }
  const tree = await decryptToTree(text, { path: vector.path, identities });
  const bytes: string[] = [];
  for (const branch of tree.branches) {
    walkBranch(branch, (leaf) => {
      if (typeof leaf !== 'object' || leaf instanceof GoTime) bytes.push(macBytes(leaf).toString('utf8'));
      return leaf;
    });
  }
  // The expected files give no bytes for a leaf the MAC skips (mac_only_encrypted).
  return encrypted.map((leaf, i) => ({ ...leaf, mac_bytes: leaf.in_mac ? bytes[i] : null }));
}

describe.skipIf(vectors.length === 0)('SOPS vectors (shared/vectors/sops)', () => {
  it('include every format and an identity for each', () => {
    expect(new Set(vectors.map((v) => v.expected.format))).toEqual(
      new Set(['yaml', 'json', 'dotenv', 'binary']),
    );
    expect(identities.length).toBeGreaterThan(0);
  });

  for (const vector of vectors) {
    describe(vector.name, () => {
      it('decrypts to the expected documents, finding its key through SOPS_AGE_KEY', async () => {
        const home = tempDir('sops-home-');
        const decrypted = await decryptSopsFile(vector.path, {
          env: { HOME: home, SOPS_AGE_KEY: identities.join('\n') },
        });
        expect(decrypted.documents).toEqual(vector.expected.documents);
        expect(decrypted.format).toBe(vector.expected.format);
        expect(decrypted.sopsVersion).toBe(vector.expected.sops_version);
        expect(decrypted.macVerified).toBe(true);
      });

      it('recomputes the MAC the expected file states', async () => {
        const tree = await decryptToTree(readFileSync(vector.path, 'utf8'), {
          path: vector.path,
          identities,
        });
        expect(tree.mac).toBe(vector.expected.mac);
      });

      it('walks the leaves in the expected order, with their AAD, rule, type and MAC bytes', async () => {
        expect(await leavesOf(vector)).toEqual(vector.expected.leaves_in_walk_order);
      });

      it('gives what sops exec-env would', async () => {
        const decrypted = await decryptSopsFile(vector.path, {
          env: { HOME: tempDir('sops-home-'), SOPS_AGE_KEY: identities.join('\n') },
        });
        const expected = vector.expected.exec_env;
        if (Array.isArray(expected)) {
          const pairs = execEnvPairs(decrypted.documents[0], vector.path);
          expect(Object.entries(pairs).map(([k, v]) => `${k}=${v}`)).toEqual(expected);
        } else {
          expect(() => execEnvPairs(decrypted.documents[0], vector.path)).toThrow(expected.error);
        }
      });
    });
  }
});
