/**
 * The token step's retries (zx's retry and expBackoff, bounded by a wall-clock deadline), on a fake
 * clock: the waits are recorded, never slept, so nothing here depends on timing.
 */
import { describe, expect, it, vi } from 'vitest';
import { type MintAttempt, mintWithRetry } from '../../scripts/lib/bifrost/token.ts';
import { redactor } from '../../scripts/lib/core/redact.ts';
import { InterruptedError } from '../../scripts/lib/core/run-context.ts';
import { loadZx } from '../../scripts/lib/exec/local.ts';

function harness(results: (MintAttempt | Error)[], deadlineMs = 60_000) {
  let clock = 0;
  const waits: number[] = [];
  const retries: string[] = [];
  let calls = 0;
  const run = () =>
    mintWithRetry({
      deadline: deadlineMs,
      firstDelayMs: 1000,
      maxDelayMs: 4000,
      now: () => clock,
      sleep: async (ms) => {
        waits.push(ms);
        clock += ms;
      },
      onRetry: (n, error, delay) => retries.push(`${n}:${error}:${delay}`),
      attempt: async (n) => {
        calls += 1;
        expect(n).toBe(calls);
        const r = results[Math.min(n - 1, results.length - 1)] as MintAttempt | Error;
        if (r instanceof Error) throw r;
        return r;
      },
    });
  return { run, waits, retries, calls: () => calls };
}

describe('mintWithRetry', () => {
  it('retries with exponential backoff until the token comes', async () => {
    const h = harness([{ error: 'no akadmin' }, { error: 'no akadmin yet' }, { token: 'tok' }]);
    expect(await h.run()).toEqual({ token: 'tok', attempts: 3 });
    expect(h.waits).toEqual([1000, 2000]);
    expect(h.retries).toEqual(['1:no akadmin:1000', '2:no akadmin yet:2000']);
  });

  it('stops before a wait that would pass the deadline, with the last error; waits are capped', async () => {
    const h = harness([{ error: 'still no akadmin' }], 12_000);
    expect(await h.run()).toEqual({ error: 'still no akadmin', attempts: 5 });
    // 1 + 2 + 4 + 4 = 11 s; the next 4 s wait would end at 15 s, past the 12 s deadline.
    expect(h.waits).toEqual([1000, 2000, 4000, 4000]);
    expect(h.calls()).toBe(5);
  });

  it('ends at once on an interrupt or a dropped connection instead of retrying it', async () => {
    const interrupted = harness([{ error: 'x' }]);
    const stopping = mintWithRetry({
      deadline: 60_000,
      firstDelayMs: 1000,
      maxDelayMs: 4000,
      now: () => 0,
      sleep: async () => {
        throw new InterruptedError('SIGINT');
      },
      onRetry: () => {},
      attempt: async () => ({ error: 'no akadmin' }),
    });
    await expect(stopping).rejects.toBeInstanceOf(InterruptedError);
    const dropped = harness([new Error('the SSH connection dropped')]);
    await expect(dropped.run()).rejects.toThrow('the SSH connection dropped');
    expect(dropped.calls()).toBe(1);
    expect(interrupted.calls()).toBe(0);
  });

  it("logs zx's retry entries only through the redactor", async () => {
    const CANARY = 'token-retry-canary-4e8d2b71';
    redactor.register(CANARY, 'RETRY_CANARY');
    const zx = await loadZx();
    const printed: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk));
      return true;
    });
    const verbose = zx.$.verbose;
    const quiet = zx.$.quiet;
    zx.$.verbose = true;
    zx.$.quiet = false;
    try {
      const h = harness([{ error: `bad key ${CANARY}` }, { token: 'tok' }]);
      expect(await h.run()).toEqual({ token: 'tok', attempts: 2 });
    } finally {
      zx.$.verbose = verbose;
      zx.$.quiet = quiet;
      write.mockRestore();
    }
    const all = printed.join('');
    // zx's retry line reached stderr, and it carries nothing of the error's text.
    expect(all).toMatch(/Attempt: 1\//);
    expect(all).not.toContain(CANARY);
  });
});
