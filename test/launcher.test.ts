/**
 * bin/run.mjs, the launcher every recipe and npm script starts a command with: it runs the command's bundle
 * (bin/build-bundles.mjs, built into dist/ by `npm ci`) only while nothing the bundle was made from is newer,
 * else the source under tsx; without a build (`npm ci --ignore-scripts`) the source too. Which one ran is
 * observed from outside: a module hook loaded ahead of the launcher logs every file node loads.
 *
 * Each test works on a copy of the project (scripts/, bin/, package.json, and node_modules as links to the
 * installed packages beside their own npm record), so mtimes are changed and dist/ removed there only.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every file node loaded, as file: URLs. */
  loaded: string[];
}

/** A copy of the project that runs on the installed packages, with its own dist/ and npm record. */
function projectCopy(): string {
  const root = tempDir('sf-launcher-');
  cpSync(join(PROJECT_ROOT, 'scripts'), join(root, 'scripts'), { recursive: true });
  mkdirSync(join(root, 'bin'));
  for (const name of readdirSync(join(PROJECT_ROOT, 'bin')).filter((n) => n.endsWith('.mjs'))) {
    cpSync(join(PROJECT_ROOT, 'bin', name), join(root, 'bin', name));
  }
  for (const name of ['package.json', 'tsconfig.json']) cpSync(join(PROJECT_ROOT, name), join(root, name));
  const modules = join(PROJECT_ROOT, 'node_modules');
  mkdirSync(join(root, 'node_modules'));
  for (const name of readdirSync(modules)) {
    if (name === '.package-lock.json') continue;
    symlinkSync(join(modules, name), join(root, 'node_modules', name));
  }
  cpSync(join(modules, '.package-lock.json'), join(root, 'node_modules', '.package-lock.json'));
  return root;
}

/** A module, loaded with --import ahead of the launcher, that logs every URL node loads to `log`. */
function loadLogger(log: string): string {
  const hooks = `import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data; }
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(log, url + '\\n');
  return next(url, context);
}`;
  const file = join(tempDir('sf-launcher-probe-'), 'log-loads.mjs');
  writeFileSync(
    file,
    `import { register } from 'node:module';
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)}, { data: ${JSON.stringify(log)} });\n`,
  );
  return file;
}

/** tsx keeps its cache under TMPDIR: a directory of this file's (set in beforeAll). */
let tmp = '';

/** `node ARGS` in `cwd`. */
function node(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH ?? '', NO_COLOR: '1', TMPDIR: tmp };
  return new Promise((done) => {
    const child = execFile(process.execPath, args, { cwd, env }, (_e, stdout, stderr) =>
      done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

/** `node bin/run.mjs ARGS` in `root`, logging what it loads. */
async function launch(root: string, args: string[]): Promise<Run> {
  const log = join(tempDir('sf-launcher-log-'), 'loaded');
  writeFileSync(log, '');
  const r = await node(['--import', loadLogger(log), 'bin/run.mjs', ...args], root);
  return { ...r, loaded: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

const url = (path: string) => pathToFileURL(path).href;

/** Which of the two a run loaded: the command's bundle, its TypeScript source, or (wrongly) both. */
function ran(root: string, r: Run, script: string): 'bundle' | 'source' | 'both' | 'neither' {
  const bundle = r.loaded.includes(url(join(root, 'dist', script.replace(/\.ts$/, '.mjs'))));
  const source = r.loaded.includes(url(join(root, 'scripts', script)));
  return bundle ? (source ? 'both' : 'bundle') : source ? 'source' : 'neither';
}

/** Sets a file's modification time `ms` after (or before, negative) the build's stamp. */
function stampRelative(root: string, path: string, ms: number): void {
  const stamp = Number(readFileSync(join(root, 'dist', '.sources-mtime'), 'utf8'));
  const at = new Date(stamp + ms);
  utimesSync(join(root, path), at, at);
}

describe('the launcher', () => {
  let root: string;
  let help: string;

  beforeAll(async () => {
    tmp = tempDir('sf-launcher-tmp-');
    root = projectCopy();
    const built = await node(['bin/build-bundles.mjs'], root);
    expect(built.code, built.stderr).toBe(0);
    expect(statSync(join(root, 'dist', 'secrets.mjs')).isFile()).toBe(true);
    const reference = await node(['--import', 'tsx', 'scripts/secrets.ts', 'where', '--help'], root);
    expect(reference.code, reference.stderr).toBe(0);
    help = reference.stdout;
    expect(help).toContain('Usage: node --import tsx scripts/secrets.ts where');
  });

  it('runs the bundle while the build is current: the same help as under tsx', async () => {
    const r = await launch(root, ['scripts/secrets.ts', 'where', '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(ran(root, r, 'secrets.ts')).toBe('bundle');
    expect(r.stdout).toBe(help);
  });

  for (const input of [
    'scripts/lib/core/errors.ts',
    'bin/build-bundles.mjs',
    'node_modules/.package-lock.json',
  ]) {
    it(`runs the source under tsx once ${input} is newer than the build, the bundle again once it is not`, async () => {
      stampRelative(root, input, 5_000);
      const stale = await launch(root, ['scripts/secrets.ts', 'where', '--help']);
      expect(stale.code, stale.stderr).toBe(0);
      expect(ran(root, stale, 'secrets.ts')).toBe('source');
      expect(stale.stdout).toBe(help);

      stampRelative(root, input, -5_000);
      const current = await launch(root, ['scripts/secrets.ts', 'where', '--help']);
      expect(ran(root, current, 'secrets.ts')).toBe('bundle');
    });
  }

  it('hands the command its arguments as given, bundle or source, as `node --import tsx` does', async () => {
    const args = ['scripts/secrets.ts', 'where', '$HOME  two words', '', '--'];
    const reference = await node(['--import', 'tsx', ...args], root);
    expect(reference.code).toBe(2);
    expect(reference.stderr).toContain('error: unexpected argument: $HOME  two words\n');
    const bundled = await launch(root, args);
    expect(ran(root, bundled, 'secrets.ts')).toBe('bundle');
    stampRelative(root, 'scripts/secrets.ts', 5_000);
    const source = await launch(root, args);
    stampRelative(root, 'scripts/secrets.ts', -5_000);
    expect(ran(root, source, 'secrets.ts')).toBe('source');
    for (const r of [bundled, source]) {
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(reference.stderr);
    }
  });

  it('runs the source without a build (npm ci --ignore-scripts), and refuses to start nothing', async () => {
    renameSync(join(root, 'dist'), join(root, 'dist.off'));
    try {
      const r = await launch(root, ['scripts/secrets.ts', 'where', '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(ran(root, r, 'secrets.ts')).toBe('source');
      expect(r.stdout).toBe(help);
    } finally {
      renameSync(join(root, 'dist.off'), join(root, 'dist'));
    }
    for (const args of [[], ['scripts/no-such-command.ts']]) {
      const r = await launch(root, args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: .*\nhint: node bin\/run\.mjs scripts\/NAME\.ts/);
    }
  });

  // An entry point runs only as the main module (isMainModule): that holds for a checkout whose path has a
  // space (a module's URL is percent-encoded, argv[1] is not) and one reached through a symlink (argv[1] is
  // the path as typed, the URL the real path), under tsx as through the launcher.
  it('runs a command from a checkout whose path has a space, reached through a symlink', async () => {
    const spaced = join(tempDir('sf-launcher-spaced-'), 'my checkout');
    cpSync(root, spaced, { recursive: true, verbatimSymlinks: true });
    const built = await node(['bin/build-bundles.mjs'], spaced);
    expect(built.code, built.stderr).toBe(0);
    const linked = join(tempDir('sf-launcher-link-'), 'link to checkout');
    symlinkSync(spaced, linked);
    for (const base of [spaced, linked]) {
      const direct = await node(
        ['--import', 'tsx', join(base, 'scripts/secrets.ts'), 'where', '--help'],
        base,
      );
      expect(direct.code, direct.stderr).toBe(0);
      expect(direct.stdout).toBe(help);
      const log = join(tempDir('sf-launcher-log-'), 'loaded');
      writeFileSync(log, '');
      const launched = await node(
        ['--import', loadLogger(log), 'bin/run.mjs', 'scripts/secrets.ts', 'where', '--help'],
        base,
      );
      expect(launched.code, launched.stderr).toBe(0);
      expect(launched.stdout).toBe(help);
      const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      expect(ran(spaced, { ...launched, loaded }, 'secrets.ts')).toBe('bundle');
    }
  });
});
