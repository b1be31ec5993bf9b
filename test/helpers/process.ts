/**
 * Process checks the tests share: whether a pid still runs, and a bounded wait for a condition that
 * settles on its own (the far side noticing a closed channel) — waits, never timing assertions.
 */
import { readFileSync } from 'node:fs';

/** Running: signalable and not a zombie (a killed child may wait for its reaper; it runs nothing). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Whether `check` holds within `ms` (polled; bounded for a loaded machine). */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
    if (await check()) return true;
  return check();
}
