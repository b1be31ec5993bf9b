/**
 * One temporary root per test run: every test's mkdtemp (os.tmpdir() reads TMPDIR) lands under it, and
 * it is removed when the run ends, so a run leaves nothing in the machine's temporary directory even
 * where a test's own clean-up is cut short. Mode 0711: the loopback sshd's test user must reach the
 * directories the harness hands it below, but cannot list what else is there.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'secrets-flow-tests-'));
  chmodSync(root, 0o711);
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  };
}
