/**
 * Runs work as a clean-up step, the way runMain serves one after an interrupt: registered with the run in
 * progress, then run by `runCleanups`, the product's one way into the clean-up scope. The run must hold
 * no other step (begin a run of its own first), or that step runs too.
 */
import { runContext } from '../../scripts/lib/core/run-context.ts';

/** What `fn` returned when run as the run's clean-up; a failure of `fn` is rethrown. */
export async function runAsCleanupStep<T>(fn: () => Promise<T>): Promise<T> {
  let outcome: { value: T } | { error: unknown } | undefined;
  runContext.onCleanup({
    what: 'the test step',
    run: async () => {
      try {
        outcome = { value: await fn() };
      } catch (error) {
        outcome = { error };
      }
    },
  });
  await runContext.runCleanups(60_000);
  if (outcome === undefined) throw new Error('the clean-up step did not run');
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}
