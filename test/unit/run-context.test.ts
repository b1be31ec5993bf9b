/**
 * A run's state lives in its RunContext: a run begun after another (runMain per command, each test file
 * through test/each-file.ts) starts with nothing registered, no fingerprint key, no interrupt, no phase
 * and no clean-up, while the earlier run keeps its own.
 */
import { describe, expect, it } from 'vitest';
import { describeSecret, redactor, setFingerprintKey } from '../../scripts/lib/core/redact.ts';
import { beginRun, runContext } from '../../scripts/lib/core/run-context.ts';
import { LocalExecutor } from '../../scripts/lib/exec/local.ts';

describe('two runs in one process', () => {
  const CANARY = 'canary-registered-by-run-a-5c1f';

  it('share no secret, no fingerprint key, no interrupt, no phase and no clean-up', async () => {
    const a = beginRun();
    redactor.register(CANARY, 'CANARY');
    setFingerprintKey('run-a-fingerprint-key');
    runContext.setPhase('upload');
    runContext.onCleanup({ what: 'remove staging', done: 'staging removed', run: async () => {} });
    const stoppedInA: string[] = [];
    runContext.onStop(() => stoppedInA.push('a'));

    const b = beginRun();
    expect(runContext).toBe(b);
    const stoppedInB: string[] = [];
    runContext.onStop(() => stoppedInB.push('b'));
    a.interrupt('SIGINT');

    // A's interrupt reached A's work, and nothing of B's.
    expect(stoppedInA).toEqual(['a']);
    expect(stoppedInB).toEqual([]);
    expect(b.interrupted).toBeUndefined();
    expect(b.stopped()).toBe(false);
    // B's commands still run: the executor asks the run in progress, not the one interrupted.
    expect((await new LocalExecutor().run({ argv: ['true'] })).exitCode).toBe(0);
    // A's secrets and key hide and fingerprint nothing in B.
    expect(redactor.redact(`x ${CANARY} x`)).toBe(`x ${CANARY} x`);
    expect(redactor.holds(CANARY)).toBe(false);
    expect(describeSecret('K', 'value')).toBe('K (5 chars)');
    expect(b.phase).toBeUndefined();
    expect(await b.runCleanups(1000)).toEqual({ done: [], failed: [], hints: [] });

    // A kept all of it.
    expect(a.redactor.redact(`x ${CANARY} x`)).toBe('x [REDACTED:CANARY] x');
    expect(a.fingerprintKey).toBeDefined();
    expect(a.phase?.name).toBe('upload');
    expect(a.stopped()).toBe(true);
    expect(await a.runCleanups(1000)).toEqual({ done: ['staging removed'], failed: [], hints: [] });
  });
});
