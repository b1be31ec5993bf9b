/**
 * The host lock's takeover rules (lock.ts): a lock whose holder is provably gone (it ran on this
 * machine and its process no longer exists; or it never completed its record and is older than the
 * grace period) is taken over with a notice; a live holder or one on another machine is still refused.
 * Takeover is race-safe, and the lock dir (0700) and its record (0600) are not world-readable.
 * The shell scripts run for real through the LocalExecutor; the modes over SSH are in ssh-executor.test.ts.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireHostLock, currentHolder, type LockHolder } from '../scripts/lib/bifrost/lock.ts';
import { beginRun, runContext } from '../scripts/lib/core/run-context.ts';
import type { Executor } from '../scripts/lib/exec/executor.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTier } from './helpers/tiers.ts';

const local = new LocalExecutor();
const procfs = requireTier(
  'procfs',
  existsSync('/proc/self/stat') ? { ok: true } : { ok: false, reason: '/proc/self/stat (Linux procfs)' },
  'the takeover of a lock whose pid now belongs to another process',
);
let root: string;
let remoteDir: string;
const lockDir = () => `${remoteDir}.lock`;

/** The local executor, with `race` run just before each command of a lock takeover (a race's other side). */
function beforeTakeover(race: () => void): Executor {
  return {
    ...local,
    where: local.where,
    files: local.files,
    close: local.close.bind(local),
    run: (cmd: Parameters<typeof local.run>[0]) => {
      if (cmd.argv.some((a) => a.includes('.takeover'))) race();
      return local.run(cmd);
    },
  };
}

/** A pid that existed and is gone: a child that already exited. */
function deadPid(): number {
  const pid = spawnSync('true').pid;
  if (!pid) throw new Error('no pid');
  return pid;
}

/** Leaves a lock as a run would have: the dir, and a record (or raw text, or none), `ageSeconds` old. */
function leaveLock(record: LockHolder | string | undefined, ageSeconds = 0): void {
  mkdirSync(lockDir(), { mode: 0o700 });
  if (record !== undefined) {
    writeFileSync(
      join(lockDir(), 'holder.json'),
      typeof record === 'string' ? record : JSON.stringify(record),
    );
  }
  const when = Date.now() / 1000 - ageSeconds;
  utimesSync(lockDir(), when, when);
}

/** A holder on another machine (its pid, gone here or not, proves nothing). */
function otherMachine(): LockHolder {
  return {
    holder: 'alice@laptop',
    host: 'laptop',
    machine: 'another-machine-id',
    pid: deadPid(),
    since: new Date().toISOString(),
    command: 'provision-bifrost',
  };
}

async function acquire(holder = currentHolder('test')) {
  const notices: string[] = [];
  const lock = await acquireHostLock(local, remoteDir, { holder, onNotice: (l) => notices.push(l) });
  return { lock, notices };
}

describe('host lock takeover', () => {
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });
  const fresh = () => {
    root = tempDir('sf-lock-');
    remoteDir = join(root, 'bifrost');
  };

  it('takes over, with a notice, a lock whose holder ran on this machine and is gone', async () => {
    fresh();
    leaveLock({ ...currentHolder('provision-bifrost'), pid: deadPid() });
    const { lock, notices } = await acquire();
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(
      /took over .*bifrost\.lock: its holder .*provision-bifrost\) no longer runs on this machine/,
    );
    expect(JSON.parse(readFileSync(join(lockDir(), 'holder.json'), 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect(existsSync(lockDir())).toBe(false);
    // Nothing left of the dead lock.
    expect(readdirSync(root)).toEqual([]);
  });

  it.skipIf(!procfs)('takes over a lock whose pid now belongs to another process', async () => {
    fresh();
    leaveLock({ ...currentHolder('provision-bifrost'), pidStart: '1' });
    const { lock, notices } = await acquire();
    expect(notices[0]).toMatch(/is another process now/);
    await lock.release();
  });

  it('takes over a lock whose record was never completed, once older than the grace period', async () => {
    fresh();
    leaveLock(undefined, 600);
    const first = await acquire();
    expect(first.notices[0]).toMatch(/never completed its record \(no holder\.json, \d+ s old\)/);
    await first.lock.release();

    leaveLock('{"holder": "alice@lap', 600);
    const second = await acquire();
    expect(second.notices[0]).toMatch(/never completed its record \(an unreadable holder\.json/);
    await second.lock.release();

    // A young one may be a run between its mkdir and its write: refused.
    leaveLock(undefined, 0);
    await expect(acquire()).rejects.toThrow(/is held by unknown .*\(no holder\.json\)/);
  });

  it('still refuses a live holder on this machine and any holder on another machine', async () => {
    fresh();
    const me = currentHolder('provision-bifrost');
    // What a run records: enough for a later run on this machine to prove it gone.
    expect(me).toMatchObject({ pid: process.pid, host: expect.any(String) });
    if (existsSync('/proc/self/stat')) expect(me.pidStart).toMatch(/^\d+$/);
    if (existsSync('/proc/sys/kernel/random/boot_id')) expect(me.boot).toMatch(/^[0-9a-f-]{36}$/);

    leaveLock(me);
    await expect(acquire()).rejects.toThrow(/is held by .*\(pid \d+\)/);
    rmSync(lockDir(), { recursive: true });

    leaveLock(otherMachine());
    const err = await acquire().catch((e: Error & { hint?: string }) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/is held by alice@laptop/);
    expect((err as { hint?: string }).hint).toMatch(/bifrost-unlock/);
  });

  it("an interrupted run whose release fails says what becomes of the lock: the hint is its clean-up step's own", async () => {
    fresh();
    try {
      const { lock } = await acquire();
      const LEFT =
        /^if a host lock is left, the next run from this machine takes it over \(its holder is gone\); else bifrost unlock$/;
      // Held: the step that releases it carries the hint, so a second signal can say it.
      expect(runContext.cleanupHints()).toEqual([expect.stringMatching(LEFT)]);
      // Broken by the operator and taken by another machine meanwhile: the release refuses to remove it.
      rmSync(lockDir(), { recursive: true });
      leaveLock(otherMachine());
      runContext.interrupt('SIGINT');
      const report = await runContext.runCleanups(5000);
      expect(report.failed).toEqual([
        expect.stringMatching(/^releasing the host lock failed: .*no longer ours/),
      ]);
      expect(report.hints).toEqual([expect.stringMatching(LEFT)]);
      rmSync(lockDir(), { recursive: true });
      await lock.release().catch(() => {});
    } finally {
      beginRun();
    }
  });

  it('a lock released leaves no hint behind', async () => {
    fresh();
    const { lock } = await acquire();
    await lock.release();
    expect(runContext.cleanupHints()).toEqual([]);
  });

  // The race behind a rare double win: between a run's judgement "dead" and its takeover, the dead dir
  // was removed and a live run's new lock dir got the same inode (filesystems reuse a freed inode at
  // once). Simulated by putting the live record into the judged dir just before the takeover runs.
  it('a takeover never removes a lock that became live after it was judged dead, even with the same inode', async () => {
    fresh();
    leaveLock({ ...currentHolder('provision-bifrost'), pid: deadPid() });
    const live = currentHolder('another run');
    const racing = beforeTakeover(() => writeFileSync(join(lockDir(), 'holder.json'), JSON.stringify(live)));
    const err = await acquireHostLock(racing, remoteDir, { holder: currentHolder('test') }).catch((e) => e);
    expect(String(err)).toMatch(/is held by /);
    expect(JSON.parse(readFileSync(join(lockDir(), 'holder.json'), 'utf8'))).toEqual(live);
    expect(readdirSync(root)).toEqual(['bifrost.lock']);
  });

  // Another run is taking the dead lock over right now (its `.takeover` marker is in the lock dir, it has
  // not moved the dir yet): a second taker must stand back, never take the same lock over too.
  it('a dead lock another run is already taking over is not taken over a second time', async () => {
    fresh();
    const dead = { ...currentHolder('provision-bifrost'), pid: deadPid() };
    leaveLock(dead);
    mkdirSync(join(lockDir(), '.takeover'));
    await expect(acquire()).rejects.toThrow(/is held by /);
    expect(JSON.parse(readFileSync(join(lockDir(), 'holder.json'), 'utf8'))).toEqual(dead);
    expect(existsSync(join(lockDir(), '.takeover'))).toBe(true);
    expect(readdirSync(root)).toEqual(['bifrost.lock']);
  });

  // Between the judgement "dead" (an old lock dir without a record) and the takeover, that dir was
  // released and a new run made its own, not yet holding its record either: the same (absent) record,
  // another inode. Only the inode tells them apart.
  it('a takeover never removes a new lock dir that replaced the one judged dead, even with the same record', async () => {
    fresh();
    leaveLock(undefined, 600);
    let replaced: number | undefined;
    const racing = beforeTakeover(() => {
      if (replaced !== undefined) return;
      // Made while the old one still exists, so it cannot get the old one's inode.
      mkdirSync(`${lockDir()}.new`, { mode: 0o700 });
      rmSync(lockDir(), { recursive: true });
      renameSync(`${lockDir()}.new`, lockDir());
      replaced = statSync(lockDir()).ino;
    });
    const err = await acquireHostLock(racing, remoteDir, { holder: currentHolder('test') }).catch((e) => e);
    expect(replaced).toBeDefined();
    expect(String(err)).toMatch(/is held by unknown .*\(no holder\.json\)/);
    expect(statSync(lockDir()).ino).toBe(replaced);
    expect(existsSync(join(lockDir(), 'holder.json'))).toBe(false);
    expect(readdirSync(root)).toEqual(['bifrost.lock']);
  });

  it('two runs taking over the same dead lock: exactly one wins', async () => {
    fresh();
    leaveLock({ ...currentHolder('provision-bifrost'), pid: deadPid() });
    const results = await Promise.allSettled([acquire(), acquire(), acquire()]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/held/);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquire>>>).value.lock.release();
    expect(readdirSync(root)).toEqual([]);
  });

  /** What a take cut short between its mkdir and its move leaves: the take file with `record`, then the empty dir. */
  function leaveCutTake(record: LockHolder, ageSeconds = 0): string {
    const take = `${lockDir()}.take.cut-${record.pid}`;
    writeFileSync(take, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    const when = Date.now() / 1000 - ageSeconds;
    utimesSync(take, when - 1, when - 1);
    mkdirSync(lockDir(), { mode: 0o700 });
    utimesSync(lockDir(), when, when);
    return take;
  }

  it('a take cut short on this machine (its run gone) is taken over at once, its take file removed', async () => {
    fresh();
    mkdirSync(root, { recursive: true });
    leaveCutTake({ ...currentHolder('provision-bifrost'), pid: deadPid() });
    const { lock, notices } = await acquire();
    expect(notices[0]).toMatch(
      /took over .*bifrost\.lock: its take was cut short before it recorded its holder \(no holder\.json; its holder .*provision-bifrost\) no longer runs on this machine\)/,
    );
    expect(JSON.parse(readFileSync(join(lockDir(), 'holder.json'), 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect(readdirSync(root)).toEqual([]);
  });

  it("another machine's take, or a live one of this machine, is respected until the grace period; the hint is to wait, not unlock", async () => {
    fresh();
    mkdirSync(root, { recursive: true });
    const elsewhere = otherMachine();
    const take = leaveCutTake(elsewhere);
    const err = await acquire().catch((e: Error & { hint?: string }) => e);
    expect((err as Error).message).toMatch(
      /is held by alice@laptop \(pid \d+\) .*running: provision-bifrost \(taking the lock: no holder\.json yet\)/,
    );
    expect((err as { hint?: string }).hint).toMatch(/run again in \d+ s, or pass --lock-wait \d+/);
    expect((err as { hint?: string }).hint).not.toMatch(/unlock/);
    expect(existsSync(take)).toBe(true);
    rmSync(lockDir(), { recursive: true });
    rmSync(take);

    leaveCutTake(currentHolder('a live run'));
    await expect(acquire()).rejects.toThrow(/taking the lock: no holder\.json yet/);
    rmSync(root, { recursive: true });

    // Past the grace period, the other machine's cut take is taken over, as any lock without a record.
    fresh();
    mkdirSync(root, { recursive: true });
    leaveCutTake(elsewhere, 600);
    const late = await acquire();
    expect(late.notices[0]).toMatch(/never completed its record \(no holder\.json, \d+ s old\)/);
    await late.lock.release();
    expect(readdirSync(root)).toEqual([]);
  });

  // A takeover writes the new holder's record itself (not the take of a fresh lock): under the common
  // umask 022 a file made without its own mask would be 0644, the lock dir 0755.
  it('a lock taken over holds its record 0600 in a 0700 dir under umask 022, whatever it was taken from', async () => {
    const umask = process.umask(0o022);
    try {
      const takeovers: [string, () => void][] = [
        ['a gone holder', () => leaveLock({ ...currentHolder('provision-bifrost'), pid: deadPid() })],
        ['a take cut short', () => leaveCutTake({ ...currentHolder('provision-bifrost'), pid: deadPid() })],
        ['a record never completed', () => leaveLock(undefined, 600)],
        ['an unreadable record', () => leaveLock('{"holder": "alice@lap', 600)],
      ];
      for (const [what, leave] of takeovers) {
        fresh();
        mkdirSync(root, { recursive: true });
        leave();
        const { lock, notices } = await acquire();
        expect(notices[0], what).toMatch(/^took over /);
        const record = join(lockDir(), 'holder.json');
        expect(JSON.parse(readFileSync(record, 'utf8')).pid, what).toBe(process.pid);
        expect(statSync(lockDir()).mode & 0o777, what).toBe(0o700);
        // Every file the takeover left in the lock dir, the record among them, is the owner's alone.
        const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
        for (const name of readdirSync(lockDir()))
          expect([what, name, mode(join(lockDir(), name))]).toEqual([what, name, '600']);
        // Nothing of the dead lock or of a take is left beside it.
        expect(readdirSync(root), what).toEqual(['bifrost.lock']);
        await lock.release();
        rmSync(root, { recursive: true, force: true });
      }
      // A fresh lock under the same umask, for comparison: the same modes.
      fresh();
      const { lock } = await acquire();
      expect(statSync(lockDir()).mode & 0o777).toBe(0o700);
      expect(statSync(join(lockDir(), 'holder.json')).mode & 0o777).toBe(0o600);
      await lock.release();
    } finally {
      process.umask(umask);
    }
  });

  // The link drops right after the host ran the take: the run never hears back. The lock must hold its
  // record all the same, so the next run of this machine (the dropped one is gone) takes it over at once.
  it('a link that drops while the lock is taken leaves a complete lock, taken over at once by the next run', async () => {
    fresh();
    let dropped = false;
    const gone = () => Promise.reject(new Error('the SSH connection dropped'));
    const dropping: Executor = {
      ...local,
      where: local.where,
      close: local.close.bind(local),
      files: new Proxy(local.files, {
        get: (target, key) =>
          dropped ? gone : (target[key as keyof typeof target] as (...a: unknown[]) => unknown).bind(target),
      }),
      run: async (cmd: Parameters<typeof local.run>[0]) => {
        if (dropped) return gone();
        const r = await local.run(cmd);
        dropped = true;
        return r.exitCode === 0 ? gone() : r;
      },
    };
    const cut = { ...currentHolder('provision-bifrost'), pid: deadPid() };
    await expect(acquireHostLock(dropping, remoteDir, { holder: cut })).rejects.toThrow(/dropped/);
    expect(JSON.parse(readFileSync(join(lockDir(), 'holder.json'), 'utf8'))).toEqual(cut);
    const { lock, notices } = await acquire();
    expect(notices[0]).toMatch(/no longer runs on this machine/);
    await lock.release();
    expect(readdirSync(root)).toEqual([]);
  });
});
