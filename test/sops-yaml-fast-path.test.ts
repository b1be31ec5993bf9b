/**
 * The flat-file fast path of the YAML store against the full YAML parse: the same branches and metadata
 * for every file the fast path takes (sops's own vectors, files the suite writes), and no opinion at all
 * (undefined: the full parser decides) for any other shape.
 */
import { readFileSync } from 'node:fs';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, it } from 'vitest';
import { encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { parseFlatSopsYaml, parseYaml, parseYamlFully } from '../scripts/lib/secrets/sops/yaml-store.ts';
import { loadVectors } from './fixtures/make-sops-fixtures.ts';
import { canaryValues } from './helpers/bootstrap-fixture.ts';
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

describe('the flat-file fast path', () => {
  it('takes the files the suite writes and reads them exactly as the full parser does', async () => {
    const text = await flat(canaryValues());
    expect(parseFlatSopsYaml(text, 'f.yaml')).toBeDefined();
    expectSameAsFullParse(text);
  });

  it('agrees with the full parser on every YAML vector written by sops', () => {
    const { vectors } = loadVectors();
    const yaml = vectors.filter((v) => v.expected.format === 'yaml');
    // Without ../shared the generated files still run; the vectors are a tier of their own.
    if (yaml.length === 0)
      tierMissing('shared', 'the SOPS vectors (../shared/vectors/sops)', 'the vector files of this check');
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
