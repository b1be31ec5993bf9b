/**
 * The run's ledger of system-level things the harnesses create outside the temporary root (network
 * namespaces, system users): test/global-setup.ts names the file in SECRETS_FLOW_TEST_LEDGER, and at the
 * end of the run checks that nothing it lists still exists. Other people's runs on the same machine create
 * things with the same prefixes; the ledger is how a run tells its own apart.
 */
import { appendFileSync, readFileSync } from 'node:fs';

export type LedgerKind = 'netns' | 'user';

export const LEDGER_ENV = 'SECRETS_FLOW_TEST_LEDGER';

/** Records that this run created `name` (one short line, appended: safe across workers). */
export function recordCreated(kind: LedgerKind, name: string): void {
  const file = process.env[LEDGER_ENV];
  if (file) appendFileSync(file, `${kind} ${name}\n`);
}

export function readLedger(file: string): { kind: LedgerKind; name: string }[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    const m = /^(netns|user) (\S+)$/.exec(line);
    return m ? [{ kind: m[1] as LedgerKind, name: m[2] as string }] : [];
  });
}
