/**
 * The interrupt facility (run-context.ts) in-process: an interrupt kills the local executor's children
 * and refuses new work, clean-up steps still run (last registered first, bounded), and a clean-up error
 * never replaces the error that caused it.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  beginRun,
  exitCodeForSignal,
  InterruptedError,
  runContext,
  secondaryOf,
  stoppableSleep,
  withCleanup,
} from '../scripts/lib/core/run-context.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { runAsCleanupStep } from './helpers/cleanup-step.ts';
import { PROJECT_ROOT } from './helpers/run-cli.ts';

afterEach(() => void beginRun());

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('interrupts', () => {
  it('kill the local executor children and refuse new commands, but serve clean-up', async () => {
    const local = new LocalExecutor();
    let pid = 0;
    const running = local.run({
      argv: ['sh', '-c', 'echo $$; exec sleep 30'],
      onOutput: (chunk) => {
        pid = Number(chunk.trim());
        runContext.interrupt('SIGTERM');
      },
    });
    const err = await running.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as InterruptedError).exitCode).toBe(143);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
    await expect(local.run({ argv: ['true'] })).rejects.toBeInstanceOf(InterruptedError);
    const inCleanup = await runAsCleanupStep(() => local.run({ argv: ['echo', 'ok'] }));
    expect(inCleanup.stdout).toBe('ok\n');
  });

  it('end long waits at once', async () => {
    const waiting = stoppableSleep(60_000);
    runContext.interrupt('SIGINT');
    await expect(waiting).rejects.toBeInstanceOf(InterruptedError);
    expect(exitCodeForSignal('SIGINT')).toBe(130);
  });

  it('run clean-up last registered first, report failures and a step that never ends, within the bound', async () => {
    const order: string[] = [];
    runContext.onCleanup({ what: 'closing the connection', run: async () => void order.push('close') });
    runContext.onCleanup({ what: 'hanging', run: () => new Promise(() => {}) });
    runContext.onCleanup({
      what: 'releasing the host lock',
      done: 'the host lock was released',
      run: async () => void order.push('release'),
    });
    const broken = runContext.onCleanup({ what: 'removed', run: async () => void order.push('removed') });
    broken();
    runContext.interrupt('SIGINT');
    const report = await runContext.runCleanups(200);
    expect(order).toEqual(['release']);
    expect(report.done).toEqual(['the host lock was released']);
    expect(report.failed).toEqual([
      'hanging failed: no result within 200 ms',
      'closing the connection failed: no time left for clean-up',
    ]);
  });
});

describe('withCleanup', () => {
  it('keeps the error that caused a failed clean-up, with the clean-up error as a secondary line', async () => {
    const err = await withCleanup(
      async () => {
        throw new Error('the SSH connection dropped during upload');
      },
      async () => {
        throw new Error('cannot release the host lock');
      },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('the SSH connection dropped during upload');
    expect(secondaryOf(err)).toEqual(['cannot release the host lock']);
  });

  it('fails with the clean-up error when the work succeeded', async () => {
    await expect(
      withCleanup(
        async () => 1,
        async () => {
          throw new Error('cannot release the host lock');
        },
      ),
    ).rejects.toThrow('cannot release the host lock');
  });
});

/** Runs `body` (an ES module with `runMain` and `runContext` in scope) as its own process under tsx. */
function runInline(body: string) {
  const cli = resolve(PROJECT_ROOT, 'scripts/lib/core/cli.ts');
  const context = resolve(PROJECT_ROOT, 'scripts/lib/core/run-context.ts');
  const script = `import { runMain } from ${JSON.stringify(cli)};
import { runContext } from ${JSON.stringify(context)};
${body}`;
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: PROJECT_ROOT, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' } },
      (_err, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

const hintLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('hint: '));

describe('runMain', () => {
  it('fails loudly, with a JSON result, when the command waits on something that can never answer', async () => {
    // Before: Node's "unsettled top-level await", exit 13, no message and no JSON.
    const r = await runInline(
      'await runMain({ common: () => ({ json: true }), main: () => new Promise(() => {}) }, []);',
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: the command stopped with work outstanding/m);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, exitCode: 1 });
  });

  it('after an interrupt, says the hints its failed clean-up steps carry, and only theirs', async () => {
    const r = await runInline(`await runMain({ common: () => ({}), main: () => {
  runContext.onCleanup({ what: 'closing A', run: async () => { throw new Error('gone'); } });
  runContext.onCleanup({ what: 'undoing B', hint: 'undo B by hand', run: async () => { throw new Error('refused'); } });
  runContext.onCleanup({ what: 'undoing C', hint: 'undo C by hand', run: async () => {} });
  process.kill(process.pid, 'SIGINT');
  return new Promise((r) => setTimeout(r, 60_000));
} }, []);`);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(
      /^error: interrupted by SIGINT: undoing B failed: refused; closing A failed: gone/m,
    );
    expect(hintLines(r.stderr)).toEqual(['hint: undo B by hand']);
  });

  it('a second signal during the clean-up says the hints of the steps left unfinished, not of those done', async () => {
    const r = await runInline(`await runMain({ common: () => ({}), main: () => {
  runContext.onCleanup({ what: 'undoing D', hint: 'undo D by hand', run: async () => {} });
  runContext.onCleanup({ what: 'undoing E', run: () => { process.kill(process.pid, 'SIGINT'); return new Promise(() => {}); } });
  runContext.onCleanup({ what: 'undoing F', hint: 'undo F by hand', run: async () => {} });
  process.kill(process.pid, 'SIGINT');
  return new Promise((r) => setTimeout(r, 60_000));
} }, []);`);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/^error: SIGINT again: exiting without finishing the clean-up$/m);
    expect(hintLines(r.stderr)).toEqual(['hint: undo D by hand']);
  });
});
