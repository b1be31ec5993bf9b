/**
 * The justfile as the README tells operators to use it: `just` reached the README's way (its Quick start
 * line, run in a shell whose PATH has no `just`), every recipe handing its arguments to its command word
 * for word, and the README's recipe table saying what `just --list` says.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTier } from './helpers/tiers.ts';

const README = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
const JUSTFILE = join(PROJECT_ROOT, 'justfile');

// rust-just ships a native binary per platform (rust-just-<os>-<arch>); on one it has none for, npm
// installs no `just` at all.
const nativeJust = readdirSync(join(PROJECT_ROOT, 'node_modules')).some((n) => n.startsWith('rust-just-'));
const hasJust = requireTier(
  'just',
  nativeJust
    ? { ok: true }
    : { ok: false, reason: 'node_modules/rust-just-<platform> (npm ci installs it with rust-just)' },
  'the justfile tests',
);

/** node and the system's tools, and no `just` (none is installed here; checked below where it matters). */
const BASE_PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter);

function run(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(
      file,
      args,
      {
        cwd: opts.cwd ?? PROJECT_ROOT,
        env: { PATH: BASE_PATH, HOME: tempDir('sf-just-home-'), ...opts.env },
      },
      (_e, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

/** The Quick start's line that puts `just` on PATH, as the README prints it (its comment left out). */
function readmeJustLine(): string {
  const quickStart = README.slice(
    README.indexOf('## Quick start'),
    README.indexOf('\n## ', README.indexOf('## Quick start') + 1),
  );
  const blocks = [...quickStart.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const line = blocks.flatMap((b) => b.split('\n')).find((l) => /^export PATH=/.test(l));
  if (!line) throw new Error("the README's Quick start has no `export PATH=…` line for just");
  return line.replace(/\s+#.*$/, '');
}

/** PATH after an operator runs the README's line in the checkout. */
async function readmePath(): Promise<string> {
  const r = await run('/bin/bash', ['-c', `${readmeJustLine()}\nprintf %s "$PATH"`]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

interface Parameter {
  name: string;
  kind: 'singular' | 'plus' | 'star';
  default: unknown;
}
interface Recipe {
  name: string;
  parameters: Parameter[];
  body: unknown;
}

async function recipes(path: string): Promise<Recipe[]> {
  const r = await run('just', ['--justfile', JUSTFILE, '--dump', '--dump-format', 'json'], {
    env: { PATH: path },
  });
  expect(r.code, r.stderr).toBe(0);
  return Object.values((JSON.parse(r.stdout) as { recipes: Record<string, Recipe> }).recipes);
}

describe.skipIf(!hasJust)('the justfile', () => {
  it("the README's Quick start line puts just on PATH; `just --list` then lists every recipe", async () => {
    const line = readmeJustLine();
    const before = await run('/bin/bash', ['-c', 'command -v just']);
    expect(before.code, `a just on ${BASE_PATH} would prove nothing: ${before.stdout}`).not.toBe(0);
    const r = await run('/bin/bash', ['-c', `${line}\ncommand -v just\njust --list`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [where, ...listing] = r.stdout.split('\n');
    expect(where?.startsWith(`${PROJECT_ROOT}/`)).toBe(true);
    expect(listing[0]).toBe('Available recipes:');
    const names = (await recipes(await readmePath())).map((x) => x.name);
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) expect(listing.join('\n')).toMatch(new RegExp(`^ {4}${name}\\b`, 'm'));
    // With no arguments just runs the default recipe, which lists them too (calling just by its own path).
    const bare = await run('/bin/bash', ['-c', `${line}\njust`]);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stdout).toBe(listing.join('\n'));
  });

  it("the justfile's header names the README's line", () => {
    expect(readFileSync(JUSTFILE, 'utf8')).toContain(`#   ${readmeJustLine()}\n`);
  });

  it('every recipe hands its arguments to its command exactly as given', async () => {
    const path = await readmePath();
    const dir = tempDir('sf-just-argv-');
    const log = join(dir, 'argv');
    // The recorder stands in for the recipe's command: `run` is a justfile variable (overridden on the
    // command line), and the test recipe's vitest is found relative to the working directory.
    const recorder = join(dir, 'record-argv');
    writeFileSync(recorder, '#!/bin/bash\nprintf \'%s\\0\' "$@" > "$ARGV_LOG"\n', { mode: 0o755 });
    const work = join(dir, 'work');
    const bin = join(work, 'node_modules', '.bin');
    await run('/bin/mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'vitest'), readFileSync(recorder), { mode: 0o755 });
    const secretsFile = `my secrets/it's $HOME.sops.yaml`;
    const recorded = async (recipe: string, args: string[]): Promise<string[]> => {
      writeFileSync(log, '');
      const r = await run(
        'just',
        ['--justfile', JUSTFILE, '--working-directory', work, `run=${recorder}`, recipe, ...args],
        { env: { PATH: path, ARGV_LOG: log, SECRETS_FILE: secretsFile } },
      );
      expect(r.code, `${recipe}: ${r.stderr}`).toBe(0);
      const text = readFileSync(log, 'utf8');
      expect(text, `${recipe} ran neither {{run}} nor vitest`).not.toBe('');
      return text.split('\0').slice(0, -1);
    };
    // Words a shell would split, expand or drop, and ones an argument parser on the way might rewrite.
    const variadic = ['two words', "it's", '$HOME', '', '1e3', '--', '--flag=a b'];
    const checked: string[] = [];
    for (const recipe of await recipes(path)) {
      if (recipe.parameters.length === 0) continue;
      checked.push(recipe.name);
      const single = recipe.parameters
        .filter((p) => p.kind === 'singular')
        .map((p) => `${p.name.toLowerCase()} with 'quote' and $HOME`);
      const rest = recipe.parameters.some((p) => p.kind !== 'singular') ? variadic : [];
      const argv = await recorded(recipe.name, [...single, ...rest]);
      for (const value of single)
        expect(
          argv.filter((a) => a === value),
          `${recipe.name}: ${value}`,
        ).toHaveLength(1);
      expect(argv.slice(argv.length - rest.length), recipe.name).toEqual(rest);
      const usesSecretsFile = JSON.stringify(recipe.body).includes('"secrets_file"');
      if (usesSecretsFile) expect(argv[argv.indexOf('--secrets-file') + 1], recipe.name).toBe(secretsFile);

      // Only the required parameters: a default (SECRETS_FILE's value included) arrives as one word,
      // and an empty variadic part adds nothing.
      const required = recipe.parameters.filter((p) => p.kind === 'singular' && p.default === null);
      const plus = recipe.parameters.some((p) => p.kind === 'plus') ? ['x'] : [];
      const minimal = await recorded(recipe.name, [...single.slice(0, required.length), ...plus]);
      const defaulted = recipe.parameters.some((p) => JSON.stringify(p.default).includes('secrets_file'));
      if (defaulted || usesSecretsFile)
        expect(
          minimal.filter((a) => a === secretsFile),
          recipe.name,
        ).toHaveLength(1);
      expect(minimal.slice(minimal.length - plus.length), recipe.name).toEqual(plus);
      expect(minimal, recipe.name).not.toContain('');
    }
    expect(checked).toEqual(
      expect.arrayContaining(['bifrost-token', 'sops-exec-env', 'sops-decrypt', 'test']),
    );
  });

  it("the README's recipe table is `just --list`", async () => {
    const r = await run(
      'just',
      ['--justfile', JUSTFILE, '--list', '--list-heading', '', '--list-prefix', ''],
      {
        env: { PATH: await readmePath() },
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const listed = r.stdout
      .trim()
      .split('\n')
      .map((line) => /^(\S+(?: [^#\s][^#]*?)?)\s+# (.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null && m[1] !== 'default')
      .map((m) => `| \`just ${m[1]}\` | ${m[2]} |`);
    const table = README.slice(README.indexOf('## Recipes'))
      .split('\n')
      .filter((l) => l.startsWith('| `just '));
    expect(table).toEqual(listed);
  });
});
