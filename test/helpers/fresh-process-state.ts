/**
 * The product keeps a little state per process: the registered secrets and the fingerprint key
 * (scripts/lib/redact.ts), the run context (interrupt, phase, clean-ups: scripts/lib/run-context.ts) and
 * where zx's log goes (scripts/lib/exec/local.ts). A CLI starts with all of it empty. Test files that call
 * the library in-process share a worker (vitest.config.ts, isolate: false), so each file starts from this
 * state again (test/each-file.ts): a value registered by one file must not be what redacts another's output.
 */
import { setZxLogSink } from '../../scripts/lib/exec/local.ts';
import { redactor, setFingerprintKey } from '../../scripts/lib/redact.ts';
import { runContext } from '../../scripts/lib/run-context.ts';

export function freshProcessState(): void {
  redactor.clear();
  setFingerprintKey(undefined);
  runContext.reset();
  setZxLogSink(undefined);
}
