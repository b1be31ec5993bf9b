/**
 * The flat-file fast path of the YAML store against the full YAML parse: the same branches and metadata
 * for every file the fast path takes (sops's own vectors, files the suite writes), and no opinion at all
 * (undefined: the full parser decides) for any other shape.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, it } from 'vitest';
import { initSecrets } from '../scripts/lib/secrets/init.ts';
import { encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { parseFlatSopsYaml, parseYaml, parseYamlFully } from '../scripts/lib/secrets/sops/yaml-store.ts';
import { loadVectors } from './fixtures/make-sops-fixtures.ts';
import { canaryValues } from './helpers/bootstrap-fixture.ts';
import { tempDir } from './helpers/temp.ts';
import { tierMissing } from './helpers/tiers.ts';

let recipient = '';
beforeAll(async () => {
  recipient = await identityToRecipient(await generateIdentity());
});

const flat = (doc: Record<string, unknown>) => encryptSops(doc, { recipients: [recipient], format: 'yaml' });

/** Either both parse to the same tree, or both refuse with the same message. */
function expectSameAsFullParse(text: string) {
  const outcome = (parse: () => unknown) => {
    try {
      return { ok: parse() };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  expect(outcome(() => parseYaml(text, 'f.yaml'))).toStrictEqual(
    outcome(() => parseYamlFully(text, 'f.yaml')),
  );
}

/**
 * SOPS files as the product writes them, under the fresh age key, on disk: `secrets init`'s file (every
 * generated key), and flat files holding values of every shape a value takes (quotes, colons, a leading
 * space, a hash, a newline, non-ASCII; an empty value is written unencrypted as "", which the fast path
 * leaves to the full parser, tested below).
 */
async function writtenFiles(): Promise<string[]> {
  const dir = tempDir('sf-fast-path-');
  const init = join(dir, 'init.sops.yaml');
  await initSecrets({ file: init, recipient, fill: false });
  const shapes: Record<string, string>[] = [
    canaryValues(),
    {
      QUOTES: `it's "quoted"`,
      COLON: 'a: b',
      HASH: '# not a comment',
      SPACE: ' leading and trailing ',
      LINES: 'one\ntwo\n',
      UNICODE: 'héllo wörld ✓',
      YAML_LOOKING: 'true',
    },
  ];
  const files = [init];
  for (const [i, doc] of shapes.entries()) {
    const file = join(dir, `shape-${i}.sops.yaml`);
    writeFileSync(file, await flat(doc), { mode: 0o600 });
    files.push(file);
  }
  return files;
}

/** Each file is taken by the fast path (else the check compares the full parser with itself), read as in full. */
async function expectWrittenFilesTaken(): Promise<void> {
  const files = await writtenFiles();
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    expect(parseFlatSopsYaml(text, file), file).toBeDefined();
    expectSameAsFullParse(text);
  }
}

describe('the flat-file fast path', () => {
  it('takes the files the suite writes and reads them exactly as the full parser does', async () => {
    const text = await flat(canaryValues());
    expect(parseFlatSopsYaml(text, 'f.yaml')).toBeDefined();
    expectSameAsFullParse(text);
  });

  it('takes every file the product writes, from disk, reading each exactly as the full parser does', async () => {
    await expectWrittenFilesTaken();
  });

  it('agrees with the full parser on every YAML vector written by sops (without them, on files written here)', async () => {
    const { vectors } = loadVectors();
    const yaml = vectors.filter((v) => v.expected.format === 'yaml');
    if (yaml.length === 0) {
      // Without ../shared the vectors are missing (a tier of their own): said so, and this check runs on
      // the files the product writes instead of passing on nothing.
      tierMissing(
        'shared',
        'the SOPS vectors (../shared/vectors/sops)',
        'the vector files of this check: it runs on files written here instead',
      );
      await expectWrittenFilesTaken();
      return;
    }
    // sops's own layout is not the one the fast path takes: it must leave each to the full parser, or
    // read it the same.
    for (const v of yaml) expectSameAsFullParse(readFileSync(v.path, 'utf8'));
  });

  it.each([
    ['a key YAML reads as a boolean', (t: string) => t.replace(/^HCLOUD_TOKEN:/m, 'true:')],
    ['a key YAML reads as null', (t: string) => t.replace(/^HCLOUD_TOKEN:/m, 'null:')],
    ['a key YAML reads as a number', (t: string) => t.replace(/^HCLOUD_TOKEN:/m, '1e3:')],
    ['a repeated key', (t: string) => t.replace(/^PROXMOX_PASSWORD:/m, 'HCLOUD_TOKEN:')],
    ['a comment line', (t: string) => `#ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:comment]\n${t}`],
    ['CRLF line ends', (t: string) => t.replace(/\n/g, '\r\n')],
    ['a key after the sops block', (t: string) => `${t}LATE: ENC[AES256_GCM,data:,iv:,tag:,type:str]\n`],
    ['a second document', (t: string) => `${t}---\nX: y\n`],
    ['a quoted value', (t: string) => t.replace(/^(HCLOUD_TOKEN: )(ENC\[[^\n]*\])$/m, "$1'$2'")],
    [
      'an empty value, as the writer leaves it',
      (t: string) => t.replace(/^HCLOUD_TOKEN: .*$/m, 'HCLOUD_TOKEN: ""'),
    ],
    ['a sops key holding a value', (t: string) => t.replace(/^HCLOUD_TOKEN:/m, 'sops:')],
  ])('leaves %s to the full parser', async (_what, mutate) => {
    const text = mutate(await flat(canaryValues()));
    expect(parseFlatSopsYaml(text, 'f.yaml')).toBeUndefined();
    expectSameAsFullParse(text);
  });

  it('leaves nested values and lists to the full parser', async () => {
    const text = await flat({ A: 'x', B: { C: 'y' }, D: ['z'] });
    expect(parseFlatSopsYaml(text, 'f.yaml')).toBeUndefined();
    expectSameAsFullParse(text);
  });

  it('reads a 40,000-key file in one pass, as the full parser does (times printed, not asserted)', async () => {
    const doc = Object.fromEntries(Array.from({ length: 40_000 }, (_, i) => [`KEY_${i}`, `value-${i}`]));
    const text = await flat(doc);
    let t = performance.now();
    const fast = parseYaml(text, 'big.yaml');
    const fastMs = performance.now() - t;
    t = performance.now();
    const full = parseYamlFully(text, 'big.yaml');
    console.log(
      `40,000 keys: fast path ${Math.round(fastMs)} ms, full YAML parse ${Math.round(performance.now() - t)} ms`,
    );
    expect(fast).toStrictEqual(full);
  }, 60_000);
});
