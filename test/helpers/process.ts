/**
 * Process checks the tests share: whether a pid still runs, and a bounded wait for a condition that
 * settles on its own (the far side noticing a closed channel) — waits, never timing assertions.
 */
import { readdirSync, readFileSync } from 'node:fs';

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

/** The uid `user` has in /etc/passwd, or undefined. */
export function uidOf(user: string): number | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  return line ? Number(line.split(':')[2]) : undefined;
}

/** Every running process (zombies aside) of `uid`, as `PID COMMAND LINE`, from a /proc scan. */
export function processesOf(uid: number): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1) !== uid || !alive(Number(entry))) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      found.push(`${entry} ${cmdline}`);
    } catch {
      // ended meanwhile
    }
  }
  return found;
}
