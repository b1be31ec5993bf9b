/** scripts/sops.ts as an operator runs it: a real `node --import tsx` process per case. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYamlText } from 'yaml';
import { encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import {
  BINARY_DOC,
  FLAT_DOC,
  isolatedEnv,
  makeSopsFixtures,
  NESTED_DOC,
  runSopsCli,
  type SopsFixtures,
  secretStrings,
} from './fixtures/make-sops-fixtures.ts';
import { tempDir } from './helpers/temp.ts';

let fx: SopsFixtures;
beforeAll(async () => {
  fx = await makeSopsFixtures();
});

/** Runs the CLI with only the given environment (never the real HOME or SOPS_* variables). */
function sops(
  args: string[],
  env: NodeJS.ProcessEnv = isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: fx.key.keysFile }),
) {
  return runSopsCli(args, env);
}

const allSecrets = () => [...secretStrings(NESTED_DOC), ...secretStrings(FLAT_DOC)];

/** A copy of the nested file with an unencrypted value edited by hand: its MAC no longer matches. */
function tamperedCopy(name: string): string {
  const path = join(fx.dir, name);
  writeFileSync(
    path,
    readFileSync(fx.files.nested, 'utf8').replace(
      'note_unencrypted: canary-visible-note',
      'note_unencrypted: edited',
    ),
  );
  return path;
}

function expectCleanError(stderr: string, pattern: RegExp): void {
  expect(stderr).toMatch(/^error: /m);
  expect(stderr).toMatch(/^hint: /m);
  expect(stderr).toMatch(pattern);
  for (const secret of allSecrets()) expect(stderr).not.toContain(secret);
}

describe('scripts/sops.ts', () => {
  it('prints help for the script and each command', async () => {
    const [main, decrypt, execEnv] = await Promise.all([
      sops(['--help']),
      sops(['decrypt', '--help']),
      sops(['exec-env', '-h']),
    ]);
    expect(main.exitCode).toBe(0);
    expect(main.stdout).toMatch(/^Usage: .*sops\.ts <command>/);
    expect(decrypt.stdout).toMatch(/--output-type TYPE/);
    expect(execEnv.stdout).toMatch(/sops exec-env/);
  });

  it('decrypt prints YAML with the metadata removed and the key order kept', async () => {
    const result = await sops(['decrypt', fx.files.nested]);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toBe('');
    expect(parseYamlText(result.stdout)).toEqual(NESTED_DOC);
    const topKeys = result.stdout.match(/^[^\s#][^:]*(?=:)/gm)?.map((k) => k.replace(/^"|"$/g, ''));
    expect(topKeys).toEqual(Object.keys(NESTED_DOC));
    expect(result.stdout).not.toMatch(/^sops:/m);
  });

  it('decrypt --output-type json and dotenv', async () => {
    const json = await sops(['decrypt', fx.files.nested, '--output-type', 'json']);
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(NESTED_DOC);
    const env = await sops(['decrypt', fx.files.dotenv]);
    expect(env.exitCode).toBe(0);
    const lines = env.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`API_TOKEN=${fx.plain.dotenv[0]?.API_TOKEN}`);
    expect(lines).toContain('NEWLINES=canary-n4 line one\\nline two\\n');
    expect(env.stdout).not.toContain('sops_');
    const flat = await sops(['decrypt', fx.files.flat, '--output-type', 'dotenv']);
    expect(flat.stdout).toContain('PORT=8080\nRATIO=1.5\nDEBUG=false\n');
  });

  it('decrypt of a binary file prints the raw data', async () => {
    const result = await sops(['decrypt', fx.files.binary]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(BINARY_DOC.data.trimEnd());
  });

  it('decrypt of a binary file writes its data byte for byte: control characters, CR, C1 and the last newlines kept', async () => {
    // What the terminal escaper would change, and what a trimming writer would drop.
    const data = 'canary-bytes \x1b[2J\x07\r\n\u009b31m\ttab \u202eflip\x00nul\n\n';
    const file = join(fx.dir, 'controls.sops.txt');
    writeFileSync(file, await encryptSops([{ data }], { recipients: [fx.key.recipient], format: 'binary' }), {
      mode: 0o600,
    });
    const env = isolatedEnv(fx.dir, { SOPS_AGE_KEY_FILE: fx.key.keysFile });
    const result = await runSopsCli(['decrypt', file], env, { encoding: 'buffer', stripFinalNewline: false });
    expect(result.exitCode).toBe(0);
    expect(Buffer.from(result.stdout).equals(Buffer.from(data, 'utf8'))).toBe(true);
  });

  it('exec-env runs the command with the values in its environment and returns its exit code', async () => {
    const out = join(tempDir('sops-exec-'), 'env.json');
    const script = `require("fs").writeFileSync(process.argv[1], JSON.stringify(process.env))`;
    const result = await sops(['exec-env', fx.files.flat, `node -e '${script}' ${out}; exit 7`]);
    expect(result.exitCode).toBe(7);
    const seen = JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
    for (const [key, value] of Object.entries(FLAT_DOC)) expect(seen[key], key).toBe(String(value));
    expect(seen.SOPS_AGE_KEY_FILE).toBe(fx.key.keysFile);
    // Values reach the child through its environment only: nothing on the command line.
    expect(result.stdout).toBe('');
  });

  it('exec-env refuses a nested value before running anything (exit 2)', async () => {
    const marker = join(tempDir('sops-exec-'), 'ran');
    const result = await sops(['exec-env', fx.files.nested, `touch ${marker}`]);
    expect(result.exitCode).toBe(2);
    expectCleanError(result.stderr, /cannot use complex value in environment; offending key nested/);
    expect(() => readFileSync(marker)).toThrow();
  });

  it('bad input exits 2 with error and hint on stderr, never a value', async () => {
    const tampered = tamperedCopy('tampered.sops.yaml');
    const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
      [['decrypt', join(fx.dir, 'missing.yaml')], /missing.yaml does not exist/],
      [['decrypt', tampered], /MAC mismatch: the file was modified outside sops/],
      [
        ['decrypt', fx.files.nested],
        /no age identity decrypts the data key[\s\S]*SOPS_AGE_KEY_FILE: not set/,
        isolatedEnv(fx.dir),
      ],
      [
        ['decrypt', fx.files.nested, '--output-type', 'dotenv'],
        /cannot use complex value in dotenv file; offending key nested/,
      ],
      [['decrypt', fx.files.nested, '--output-type', 'toml'], /--output-type must be one of/],
      [['decrypt'], /decrypt takes exactly one FILE/],
      [['decrypt', fx.files.nested, '--bogus'], /unknown option --bogus/],
      [['exec-env', fx.files.flat], /exec-env takes FILE and COMMAND/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [[], /no command given/],
    ];
    const results = await Promise.all(cases.map(([args, , env]) => sops(args, env)));
    results.forEach((result, i) => {
      const [args, pattern] = cases[i] as [string[], RegExp];
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      expectCleanError(result.stderr, pattern);
    });
  }, 120_000); // ten CLI runs at once, each a cold Node start: bounded, not timed

  it("the way out of a tampered or plaintext file needs no sops binary: git, then the suite's own commands", async () => {
    const tampered = tamperedCopy('hint-tampered.sops.yaml');
    const plain = join(fx.dir, 'hint-plain.yaml');
    writeFileSync(plain, 'A: b\n');
    const [mac, notSops] = await Promise.all([sops(['decrypt', tampered]), sops(['decrypt', plain])]);
    expect(mac.exitCode).toBe(2);
    expect(mac.stderr).toMatch(/MAC mismatch/);
    const macHint = mac.stderr.match(/^hint: (.*)$/m)?.[1] ?? '';
    expect(macHint).toContain(`git checkout -- ${tampered}`);
    expect(macHint).toContain(`scripts/secrets.ts set KEY --secrets-file ${tampered}`);
    expect(macHint).toMatch(/just secrets-set KEY, just secrets-edit/);
    // sops only where it is a real alternative: a value the native reader may type differently.
    expect(macHint).not.toMatch(/(re-?encrypt|edit) it with sops/);
    expect(notSops.exitCode).toBe(2);
    const plainHint = notSops.stderr.match(/^hint: (.*)$/m)?.[1] ?? '';
    expect(plainHint).toMatch(/^check that .*hint-plain\.yaml is the right file; .*just secrets-init AGE1…/);
    expect(plainHint).not.toMatch(/^encrypt it with sops/);
  });
});
