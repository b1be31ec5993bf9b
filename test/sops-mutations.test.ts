/**
 * Files edited outside sops must be refused, each with its own message naming the file and, where
 * there is one, the key path, and never showing a value. The copies are made at test time in a
 * temp dir, from the shared vectors and from fixtures encrypted here (so this runs everywhere).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../scripts/lib/core/errors.ts';
import { decryptSopsText, type SopsFormat } from '../scripts/lib/secrets/sops/index.ts';
import {
  loadVectors,
  makeAgeKey,
  makeSopsFixtures,
  type SopsFixtures,
  secretStrings,
  writeTemp,
} from './fixtures/make-sops-fixtures.ts';
import { tempDir } from './helpers/temp.ts';
import { tierMissing } from './helpers/tiers.ts';

/** The line holding `key` (top level or nested: key names used here are unique in their file). */
function lineRegex(format: SopsFormat, key: string): RegExp {
  const k = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (format === 'dotenv') return new RegExp(`^(${k}=)(.*)$`, 'm');
  if (format === 'yaml') return new RegExp(`^(\\s*${k}: )(.*)$`, 'm');
  return new RegExp(`^(\\s*"${k}": )(".*?")(,?)$`, 'm');
}

function valueAt(text: string, format: SopsFormat, key: string): string {
  const m = lineRegex(format, key).exec(text);
  if (!m?.[2]) throw new Error(`test setup: no line for ${key}`);
  return m[2];
}

function setValue(text: string, format: SopsFormat, key: string, value: string): string {
  const re = lineRegex(format, key);
  if (!re.test(text)) throw new Error(`test setup: no line for ${key}`);
  return text.replace(re, (_all, head: string, _old: string, tail = '') => `${head}${value}${tail}`);
}

/** Swaps the values of two keys' lines in place, so the keys stay put and the order of values changes. */
function swapKeys(text: string, format: SopsFormat, a: string, b: string): string {
  const lines = text.split('\n');
  const ia = lines.findIndex((l) => lineRegex(format, a).test(l));
  const ib = lines.findIndex((l) => lineRegex(format, b).test(l));
  if (ia < 0 || ib < 0) throw new Error('test setup: keys to swap not found');
  // Whole lines move (key with its value), as when someone reorders a file by hand.
  [lines[ia], lines[ib]] = [lines[ib] as string, lines[ia] as string];
  if (format === 'json') {
    // Keep the JSON valid: the comma belongs to the position, not to the line.
    const comma = (l: string) => l.endsWith(',');
    const fix = (i: number, wantComma: boolean) => {
      const l = lines[i] as string;
      lines[i] = wantComma && !comma(l) ? `${l},` : !wantComma && comma(l) ? l.slice(0, -1) : l;
    };
    const [ca, cb] = [comma(lines[ib] as string), comma(lines[ia] as string)];
    fix(ia, ca);
    fix(ib, cb);
  }
  return lines.join('\n');
}

function dropMac(text: string, format: SopsFormat): string {
  if (format === 'dotenv') return text.replace(/^sops_mac=.*\n/m, '');
  if (format === 'yaml') return text.replace(/^\s*mac: .*\n/m, '');
  return text.replace(/^\s*"mac": ".*",\n/m, '');
}

interface Target {
  label: string;
  path: string;
  format: SopsFormat;
  identities: string[];
  /** An unencrypted key, covered by the MAC. */
  plainKey?: string;
  /** Two encrypted keys; `pathB` is what the AAD error must name when B gets A's ciphertext. */
  pair?: { a: string; b: string; pathB: string };
  /** Two sibling keys to reorder (default: the pair). */
  swap?: [string, string];
  secrets: string[];
}

async function refusal(target: Target, text: string, identities = target.identities): Promise<InputError> {
  const path = writeTemp(target.path, text);
  const err = await decryptSopsText(text, { path, identities }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  const { message, hint = '' } = err as InputError;
  expect(message).toContain(path);
  for (const secret of target.secrets) {
    expect(message).not.toContain(secret);
    expect(hint).not.toContain(secret);
  }
  expect(message).not.toContain('ENC[');
  return err as InputError;
}

function withPair(targets: Target[]): (Target & Required<Pick<Target, 'pair'>>)[] {
  return targets.filter((t): t is Target & Required<Pick<Target, 'pair'>> => t.pair !== undefined);
}

function mutationSuite(targets: () => Target[]): void {
  it('decrypts while unmodified (the baseline)', async () => {
    for (const t of targets()) {
      await expect(
        decryptSopsText(readFileSync(t.path, 'utf8'), { path: t.path, identities: t.identities }),
      ).resolves.toBeTruthy();
    }
  });

  it('an edited unencrypted value: MAC mismatch', async () => {
    for (const t of targets().filter((x) => x.plainKey)) {
      const text = readFileSync(t.path, 'utf8');
      const edited = setValue(
        text,
        t.format,
        t.plainKey as string,
        t.format === 'json' ? '"edited"' : 'edited',
      );
      const err = await refusal(t, edited);
      expect(err.message, t.label).toMatch(/MAC mismatch: the file was modified outside sops/);
    }
  });

  it('two keys swapped: MAC mismatch', async () => {
    for (const t of withPair(targets())) {
      const [a, b] = t.swap ?? [t.pair.a, t.pair.b];
      const err = await refusal(t, swapKeys(readFileSync(t.path, 'utf8'), t.format, a, b));
      expect(err.message, t.label).toMatch(/MAC mismatch/);
    }
  });

  it('a ciphertext moved to another key: the AAD check names that key path', async () => {
    for (const t of withPair(targets())) {
      const text = readFileSync(t.path, 'utf8');
      const moved = setValue(text, t.format, t.pair.b, valueAt(text, t.format, t.pair.a));
      const err = await refusal(t, moved);
      expect(err.message, t.label).toContain(`the value at key path ${t.pair.pathB} does not decrypt`);
      expect(err.message).toContain('moved from another key');
    }
  });

  it('a ciphertext with a flipped byte: the same error at its key path', async () => {
    for (const t of withPair(targets())) {
      const text = readFileSync(t.path, 'utf8');
      const original = valueAt(text, t.format, t.pair.b);
      const flipped = original.replace(/data:(.)/, (_m, c: string) => `data:${c === 'A' ? 'B' : 'A'}`);
      const err = await refusal(t, setValue(text, t.format, t.pair.b, flipped));
      expect(err.message, t.label).toContain(`key path ${t.pair.pathB} does not decrypt`);
    }
  });

  it('the MAC removed: "File has no MAC"', async () => {
    for (const t of targets()) {
      const err = await refusal(t, dropMac(readFileSync(t.path, 'utf8'), t.format));
      expect(err.message, t.label).toMatch(/File has no MAC/);
    }
  });

  it('the wrong age key: no identity, with every place searched', async () => {
    const stranger = await makeAgeKey(tempDir('sops-stranger-'));
    for (const t of targets()) {
      const err = await refusal(t, readFileSync(t.path, 'utf8'), [stranger.identity]);
      expect(err.message, t.label).toMatch(/no age identity decrypts the data key/);
      expect(err.message).toContain('recipients in the file: age1');
      expect(err.hint).toMatch(/SOPS_AGE_KEY_FILE/);
      expect(err.message).not.toContain(stranger.identity);
    }
  });
}

describe('mutated copies of fixtures encrypted here', () => {
  let fx: SopsFixtures;
  beforeAll(async () => {
    fx = await makeSopsFixtures();
  });
  const targets = (): Target[] => {
    const ids = [fx.key.identity];
    const nestedSecrets = secretStrings(fx.plain.nested);
    return [
      {
        label: 'yaml',
        path: fx.files.nested,
        format: 'yaml',
        identities: ids,
        plainKey: 'note_unencrypted',
        pair: { a: 'DB_PASSWORD', b: 'token', pathB: 'nested:token' },
        swap: ['DB_PASSWORD', 'port'],
        secrets: nestedSecrets,
      },
      {
        label: 'json',
        path: fx.files.json,
        format: 'json',
        identities: ids,
        plainKey: 'note_unencrypted',
        pair: { a: 'DB_PASSWORD', b: 'token', pathB: 'nested:token' },
        swap: ['DB_PASSWORD', 'port'],
        secrets: nestedSecrets,
      },
      {
        label: 'dotenv',
        path: fx.files.dotenv,
        format: 'dotenv',
        identities: ids,
        plainKey: 'PLAIN_unencrypted',
        pair: { a: 'API_TOKEN', b: 'SECOND_SECRET', pathB: 'SECOND_SECRET' },
        secrets: secretStrings(fx.plain.dotenv),
      },
    ];
  };
  mutationSuite(targets);
});

const { vectors, identities } = loadVectors();
const byName = (name: string) => vectors.find((v) => v.name === name);
const vectorTargets = (): Target[] => {
  const encryptedSecrets = (name: string) =>
    (byName(name)?.expected.leaves_in_walk_order ?? [])
      .filter((l) => l.encrypted && l.mac_bytes.length >= 8)
      .map((l) => l.mac_bytes);
  const target = (name: string, t: Omit<Target, 'label' | 'path' | 'identities' | 'secrets'>): Target[] => {
    const vector = byName(name);
    return vector
      ? [{ ...t, label: name, path: vector.path, identities, secrets: encryptedSecrets(name) }]
      : [];
  };
  return [
    // Its only encrypted value is stringData.key; the rest (metadata.name …) is plaintext under the MAC.
    ...target('fluxcd-kustomize-controller/algorithms-age.yaml', { format: 'yaml', plainKey: 'name' }),
    ...target('humphd-sops-age/secret.enc.yaml', {
      format: 'yaml',
      pair: { a: 'secret', b: 'string', pathB: 'string' },
    }),
    ...target('humphd-sops-age/secret.enc.json', {
      format: 'json',
      pair: { a: 'secret', b: 'string', pathB: 'string' },
    }),
    ...target('humphd-sops-age/secret.enc.env', {
      format: 'dotenv',
      pair: { a: 'secret', b: 'another_secret', pathB: 'another_secret' },
    }),
  ];
};

if (vectors.length === 0)
  tierMissing(
    'shared',
    'the SOPS vectors (../shared/vectors/sops)',
    'the mutated copies of the shared vectors',
  );
describe.skipIf(vectors.length === 0)('mutated copies of the shared vectors', () => {
  mutationSuite(vectorTargets);
});
