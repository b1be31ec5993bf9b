/**
 * Each test file starts from the product's per-process state of a fresh CLI (test/each-file.ts): files
 * share a worker's module graph (vitest.config.ts, isolate: false), and a secret one file registered must
 * not be what redacts another file's output.
 */
import { describe, expect, it } from 'vitest';
import { describeSecret, redactor, setFingerprintKey } from '../../scripts/lib/redact.ts';
import { runContext } from '../../scripts/lib/run-context.ts';
import { freshProcessState } from '../helpers/fresh-process-state.ts';

describe('freshProcessState', () => {
  it('forgets registered secrets, the fingerprint key, an interrupt and its clean-ups', async () => {
    redactor.register('canary-registered-by-another-file', 'CANARY');
    setFingerprintKey('another-file-fingerprint-key');
    runContext.setPhase('upload');
    runContext.onCleanup({ what: 'remove staging', done: 'staging removed', run: async () => {} });
    runContext.interrupt('SIGINT');

    freshProcessState();

    expect(redactor.redact('x canary-registered-by-another-file x')).toBe(
      'x canary-registered-by-another-file x',
    );
    expect(redactor.size).toBe(0);
    expect(describeSecret('K', 'value')).toBe('K (5 chars)');
    expect(runContext.interrupted).toBeUndefined();
    expect(runContext.phase).toBeUndefined();
    expect(runContext.signal.aborted).toBe(false);
    expect(await runContext.runCleanups(1000)).toEqual({ done: [], failed: [], hints: [] });
  });
});
