/**
 * A signal while a command is still loading its modules (before runMain listens) is reported and exits
 * as runMain would (130/143), instead of node's silent default; once runMain listens, its own handlers
 * alone answer. The justfile and package.json start every command through the launcher, which loads the
 * start-up module first.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

const STARTUP = './scripts/lib/core/startup-signals.mjs';
/** The launcher every recipe and npm script starts a command with (it imports STARTUP first). */
const LAUNCHER = 'bin/run.mjs';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts node with `args`, sends `signal` once stderr shows `ready`, and resolves with how it ended. */
function interruptWhenReady(args: string[], ready: string, signal: NodeJS.Signals): Promise<Exit> {
  return new Promise((done) => {
    const child: ChildProcess = spawn(process.execPath, args, {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', HOME: tempDir('sf-startup-home-') },
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (!sent && stderr.includes(ready)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('close', (code, sig) => done({ code, signal: sig, stdout, stderr }));
  });
}

/** An --import that holds start-up open (as a slow module load does) until the test signals. */
function holdingModule(): string {
  const file = join(tempDir('sf-startup-hold-'), 'hold.mjs');
  writeFileSync(
    file,
    "process.stderr.write('loading\\n');\nawait new Promise((r) => setTimeout(r, 120_000));\n",
  );
  return file;
}

describe('a signal during start-up', () => {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal} while the modules load says so and exits ${code}, with a JSON result under --json`, async () => {
      const r = await interruptWhenReady(
        [
          '--import',
          STARTUP,
          '--import',
          holdingModule(),
          '--import',
          'tsx',
          'scripts/secrets.ts',
          'where',
          '--json',
        ],
        'loading',
        signal,
      );
      expect(r.signal, 'killed by the default action: nothing was said').toBeNull();
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain(`error: interrupted by ${signal} during start-up, before the command began`);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, interrupted: signal, exitCode: code });
    });
  }

  it("steps aside once runMain listens: the command's own interrupt report, once", async () => {
    const cli = resolve(PROJECT_ROOT, 'scripts/lib/core/cli.ts');
    const script = `import { runMain } from ${JSON.stringify(cli)};
await runMain({ common: () => ({}), main: async () => { process.stderr.write('running\\n'); await new Promise((r) => setTimeout(r, 120_000)); return 0; } }, []);`;
    const r = await interruptWhenReady(
      ['--import', STARTUP, '--import', 'tsx', '--input-type=module', '-e', script],
      'running',
      'SIGINT',
    );
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).not.toContain('start-up');
    expect(r.stderr.match(/^error: interrupted by SIGINT/gm), r.stderr).toHaveLength(1);
  });
});

describe('every command starts through the start-up module', () => {
  it('the launcher listens before the command loads: a Ctrl-C while it loads is reported', async () => {
    // The launcher runs a file that is not one of the bundled commands under tsx; this one holds its load.
    const file = join(tempDir('sf-startup-cmd-'), 'slow-command.mts');
    writeFileSync(
      file,
      "process.stderr.write('loading\\n');\nawait new Promise((r) => setTimeout(r, 120_000));\n",
    );
    const r = await interruptWhenReady([LAUNCHER, file, '--json'], 'loading', 'SIGINT');
    expect(r.signal, 'killed by the default action: nothing was said').toBeNull();
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('error: interrupted by SIGINT during start-up, before the command began');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, interrupted: 'SIGINT', exitCode: 130 });
  });

  it('the justfile runs its scripts through the launcher', async () => {
    const just = join(PROJECT_ROOT, 'bin', 'just');
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = execFile(
        just,
        ['--justfile', join(PROJECT_ROOT, 'justfile'), '--evaluate', 'run'],
        (_e, o, e) => done({ code: child.exitCode, stdout: o, stderr: e }),
      );
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split(' ')).toEqual(['node', LAUNCHER]);
    const recipes = readFileSync(join(PROJECT_ROOT, 'justfile'), 'utf8');
    const starting = recipes.match(/^\s+\S.*\bscripts\/\S+\.ts\b.*$/gm) ?? [];
    expect(starting.length).toBeGreaterThan(20);
    expect(
      starting.filter((line) => !line.trim().startsWith('{{run}} scripts/')),
      'a recipe starting a script without {{run}}',
    ).toEqual([]);
  });

  it("package.json's script commands too", () => {
    const scripts = (
      JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const starting = Object.values(scripts).filter((c) => /scripts\/\S+\.ts/.test(c));
    expect(starting.length).toBeGreaterThan(0);
    for (const command of starting)
      expect(command).toMatch(new RegExp(`^node ${LAUNCHER} scripts/\\S+\\.ts`));
  });
});
