import { describe, expect, it } from 'vitest';
import {
  formatEnvFile,
  parseEnvFile,
  quoteEnvValue,
  upsertEnvLine,
} from '../../scripts/lib/bifrost/env-file.ts';
import { InputError } from '../../scripts/lib/core/errors.ts';
import { generateValue } from '../../scripts/lib/secrets/generate.ts';
import { SECRET_SCHEMA } from '../../scripts/lib/secrets/schema.ts';
import { readWithComposeV1 } from '../helpers/compose-v1-read.ts';
import { parseComposeV2Dotenv } from '../helpers/compose-v2-dotenv.ts';
import { requireTool } from '../helpers/tiers.ts';

describe('env files', () => {
  it('writes bare values bare and quotes what compose would interpret', () => {
    expect(quoteEnvValue('K', 'abc+/=')).toBe('abc+/=');
    expect(quoteEnvValue('K', 'has $dollar')).toBe("'has $dollar'");
    expect(quoteEnvValue('K', 'a #b')).toBe("'a #b'");
    expect(quoteEnvValue('K', 'two\nlines')).toBe('"two\\nlines"');
    expect(quoteEnvValue('K', "it's $x")).toBe("'it\\'s $x'");
    expect(() => quoteEnvValue('K', 'a\\\\b $x')).toThrow(
      /^K holds "\$" .* together with a doubled backslash/,
    );
  });

  it('writes every generated value bare (hex, base64 with + / =, letters and digits)', () => {
    for (const spec of SECRET_SCHEMA) {
      for (let i = 0; i < 200; i++) {
        const value = generateValue(spec.generate);
        if (value === undefined) break;
        expect(quoteEnvValue(spec.key, value), spec.key).toBe(value);
      }
    }
  });

  it('reads back exactly what it writes', () => {
    const entries = [
      { name: 'A', value: 'plain' },
      { name: 'B', value: 'sp ace $HOME "dq" #h \\ `b`' },
      { name: 'C', value: '' },
      { name: 'D', value: Buffer.alloc(32, 250).toString('base64') },
    ];
    const parsed = parseEnvFile(formatEnvFile(entries, 'header line'));
    expect(Object.fromEntries(parsed)).toEqual(Object.fromEntries(entries.map((e) => [e.name, e.value])));
  });

  it('upserts exactly one line for a key, keeping the others', () => {
    let text = 'A=1\nNB_IDP_MGMT_TOKEN=\nB=2\nNB_IDP_MGMT_TOKEN=old\n';
    text = upsertEnvLine(text, 'NB_IDP_MGMT_TOKEN', 'new');
    expect(text).toBe('A=1\nB=2\nNB_IDP_MGMT_TOKEN=new\n');
    expect(upsertEnvLine(text, 'NB_IDP_MGMT_TOKEN', 'new')).toBe(text);
  });

  it('parses hand-written files: comments, export, double quotes with escapes, inline comments', () => {
    const parsed = parseEnvFile('# c\nexport A=1\nB="x\\ny \\"q\\""\nC=val # comment\n\nD = spaced\n');
    expect(Object.fromEntries(parsed)).toEqual({ A: '1', B: 'x\ny "q"', C: 'val', D: 'spaced' });
  });
});

/** mulberry32: the same hostile strings on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
// Not U+0085 (NEL): python-dotenv reads it, but `docker-compose config` prints it as a line break that reads
// back as a space, so the real compose could not show it; the renderer treats it as white space all the same.
// The pairs compose reads specially are drawn as units too, so they come up often.
const HOSTILE = [...'\\\'"${}# \t=\n\r`ab1ü😀\u00a0\u2028\x1f', '${', '\\\\', "\\'", ' #'];
function hostileStrings(count: number, seed: number): string[] {
  const rnd = seeded(seed);
  return Array.from({ length: count }, () =>
    Array.from({ length: Math.floor(rnd() * 10) }, () => HOSTILE[Math.floor(rnd() * HOSTILE.length)]).join(
      '',
    ),
  );
}

/** The forms a value could be written in: bare, single-quoted (`'` escaped or not), double-quoted escaped. */
const candidateForms = (v: string) => [
  v,
  `'${v}'`,
  `'${v.replaceAll("'", "\\'")}'`,
  `"${v.replace(/[\\"]/g, '\\$&').replaceAll('\n', '\\n').replaceAll('\r', '\\r')}"`,
];

describe('env files over hostile values (seeded)', () => {
  const strings = hostileStrings(1500, 24);
  const written: { name: string; value: string }[] = [];
  const refused: string[] = [];
  for (const value of strings) {
    try {
      quoteEnvValue('K', value);
      written.push({ name: `V${written.length}`, value });
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      refused.push(value);
    }
  }

  it('writes most of them, and the engine parser and compose v2 (port) read each back exactly', () => {
    expect(written.length).toBeGreaterThan(strings.length * 0.7);
    for (const { value } of written) {
      const text = formatEnvFile([
        { name: 'K', value },
        { name: 'NEXT', value: 'next' },
      ]);
      const want = { K: value, NEXT: 'next' };
      expect(Object.fromEntries(parseEnvFile(text)), JSON.stringify(value)).toEqual(want);
      expect(Object.fromEntries(parseComposeV2Dotenv(text)), JSON.stringify(value)).toEqual(want);
    }
  });

  it('refuses with exit 2, naming the key and what cannot go together', () => {
    expect(refused.length).toBeGreaterThan(0);
    for (const value of refused) {
      try {
        quoteEnvValue('SOME_KEY', value);
        expect.unreachable();
      } catch (err) {
        expect((err as InputError).exitCode).toBe(2);
        expect((err as Error).message).toMatch(/^SOME_KEY (holds .* together with|contains)/);
        expect((err as InputError).hint).toMatch(/SOPS file/);
      }
    }
  });

  const compose = requireTool('docker-compose', "hostile values read back through Debian's docker-compose");
  it.skipIf(!compose)(
    "Debian's docker-compose 1.29 reads every written value back, as env_file and as .env",
    () => {
      const text = formatEnvFile(written);
      const read = readWithComposeV1(compose as string, {
        envFiles: { svc: text },
        dotEnv: { text, names: written.map((w) => w.name) },
      });
      expect(read.stderr).not.toMatch(/could not parse/i);
      expect(read.env.svc).toEqual(Object.fromEntries(written.map((w) => [w.name, w.value])));
      expect(read.env.dotenv).toEqual(Object.fromEntries(written.map((w) => [`I_${w.name}`, w.value])));
    },
  );

  it.skipIf(!compose)(
    'refuses only values that no one-line form carries: v1 or v2 misreads each candidate form',
    () => {
      // Two of each mix of the features compose reads specially, so a rare mix refused wrongly is sampled.
      const features = [/\$/, /[\n\r]/, /\\$/, /\\\\/, /\\'/, /^\s/, /^['"]/, /\s#/, /\$\{[^}]*\}/];
      const byMix = new Map<string, string[]>();
      for (const v of new Set(refused)) {
        const mix = features.map((f) => (f.test(v) ? 1 : 0)).join('');
        byMix.set(mix, [...(byMix.get(mix) ?? []), v]);
      }
      const sample = [...byMix.values()].flatMap((vs) => vs.slice(0, 2));
      // Later lines quote as the renderer would: a value that runs on reaches their quotes.
      const file = (form: string) => `K=${form}\nNEXT=next\nD="d"\nS='s'\n`;
      const envFiles: Record<string, string> = {};
      const cases: { service: string; value: string; exactForm: boolean }[] = [];
      for (const [i, value] of sample.entries()) {
        for (const [j, form] of candidateForms(value).entries()) {
          if (/[\n\r]/.test(form)) continue; // a form across lines: the tool reads env files line by line
          envFiles[`c${i}_${j}`] = file(form);
          cases.push({ service: `c${i}_${j}`, value, exactForm: false });
        }
      }
      // The control: the forms the renderer writes are read exactly, so a misreading above is compose's.
      for (const [i, { value }] of written.slice(0, 20).entries()) {
        envFiles[`ok${i}`] = file(quoteEnvValue('K', value));
        cases.push({ service: `ok${i}`, value, exactForm: true });
      }
      const v1 = readWithComposeV1(compose as string, { envFiles }).env;
      for (const { service, value, exactForm } of cases) {
        const want = { K: value, NEXT: 'next', D: 'd', S: 's' };
        let v2: Record<string, string> | undefined;
        try {
          v2 = Object.fromEntries(parseComposeV2Dotenv(envFiles[service] as string));
        } catch {
          v2 = undefined; // compose v2 refuses the file
        }
        const exact = (got: Record<string, string> | undefined) =>
          got !== undefined &&
          Object.keys(got).length === 4 &&
          Object.entries(want).every(([k, v]) => got[k] === v);
        expect(exact(v1[service]) && exact(v2), `${JSON.stringify(value)} as ${envFiles[service]}`).toBe(
          exactForm,
        );
      }
    },
  );
});
