/**
 * The host lock: one provisioning run per host at a time (two uploads would remove each other's staging
 * dirs; two engines would race on the same containers).
 *
 * Kamal's design (reference/anchors.md §1.4): `mkdir DIR.lock` is atomic on every POSIX filesystem, so
 * exactly one of two racing runs creates it; the winner holds holder.json inside with who, since
 * when, what command, and what proves it alive: its machine (hostname, machine id, boot id), pid and
 * the pid's start time. The lock dir is 0700 and the record 0600: who deploys when is nobody else's
 * business on the host.
 *
 * Taking it is one host command that has the whole record before it starts (on stdin): it writes the
 * record beside the lock dir (`DIR.lock.take.PID.RANDOM`, the take file), makes the dir, and moves the
 * record in. A link that drops while the lock is taken cannot stop that command halfway (it writes
 * nothing back until it is done), so the lock is complete, naming this run, and the next run from this
 * machine takes it over at once. Should the command itself die between its mkdir and its move, its take
 * file still names it: a lock dir without holder.json is judged by the take files no newer than it.
 *
 * A lock whose holder is provably gone is taken over with a notice instead of refused:
 * - its holder ran on this machine and that process no longer exists (its pid is gone, is another
 *   process now, or the machine restarted since): by its holder.json or, without one, by its take file;
 * - its record was never completed (no holder.json, or an unreadable one, and no take file of a gone run
 *   of this machine) and the dir is older than a short grace period: another machine's run in the middle
 *   of its take is respected until then.
 * Everything else (a live holder, another machine) is refused; one older than `staleAfterSeconds` is
 * reported as STALE with its holder, and the operator clears it (`just bifrost-unlock HOST`).
 *
 * Takeover is race-safe: the taker first creates `.takeover` inside the dead lock dir (atomic, so one of
 * two takers proceeds), checks that the dir is still the one it judged (same inode and same holder
 * record), renames it to a unique name, makes its own lock dir while the renamed one still exists (so
 * the new dir cannot reuse the dead one's inode), and removes the renamed one. A run that made the lock
 * dir between the rename and that mkdir wins instead, and the taker competes again like everyone else.
 */

import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { WorkError } from '../core/errors.ts';
import { formatDuration } from '../core/format.ts';
import type { Output } from '../core/output.ts';
import { runContext, stoppableSleep } from '../core/run-context.ts';
import { type Executor, shellQuote } from '../exec/executor.ts';
import { normalizeRemoteDir } from './upload.ts';

export interface LockHolder {
  /** user@hostname */
  holder: string;
  pid: number;
  /** ISO 8601. */
  since: string;
  command: string;
  /** The holder's hostname. */
  host?: string;
  /** /etc/machine-id of the holder's machine. */
  machine?: string;
  /** The holder machine's boot id (/proc/sys/kernel/random/boot_id): differs after a restart. */
  boot?: string;
  /** The holder process's start time in clock ticks since boot (/proc/PID/stat): differs for a reused pid. */
  pidStart?: string;
}

export interface AcquireOptions {
  holder: LockHolder;
  /** How long to wait for another holder to release; default 0 (fail at once). */
  waitSeconds?: number;
  /** Older locks are reported as stale instead of waited for; default 1800. */
  staleAfterSeconds?: number;
  /** How old a lock dir without a complete holder record must be to be taken over; default 60. */
  incompleteGraceSeconds?: number;
  onWait?: (line: string) => void;
  /** A lock taken over from a holder that is gone; default: onWait. */
  onNotice?: (line: string) => void;
}

export interface HostLock {
  /** Removes the lock if it is still ours; a second call does nothing. */
  release(): Promise<void>;
}

const HOLDER_FILE = 'holder.json';
const POLL_MS = 1000;
/** How often a long wait repeats its progress line. */
const WAIT_REPORT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 30_000;
/** Exit code of TRY_LOCK_SCRIPT when the lock dir already exists. */
const HELD = 10;
/** Exit codes of TAKEOVER_SCRIPT: another run is taking it over (or it is gone); it changed hands. */
const TAKEOVER_BUSY = 11;
const TAKEOVER_CHANGED = 12;
/** While another run takes a dead lock over: how often and how long to look again. */
const BUSY_PAUSE_MS = 100;
const BUSY_RETRIES = 30;
/** What the operator can do about a lock held by another run; every word is a command or a flag they have. */
const UNLOCK_HINT =
  'if that run is no longer running (a stale lock), clear it with `just bifrost-unlock HOST`, then run again';
const HELD_HINT = `wait for that run to finish and run again, or pass --lock-wait S to wait up to S seconds for it; ${UNLOCK_HINT}`;
/**
 * Said when this run's release never finished (interrupted twice, or the host stopped answering): the lock
 * records this machine and a process that is gone, so the next run from here takes it over.
 */
const LEFT_BEHIND_HINT =
  'if a host lock is left, the next run from this machine takes it over (its holder is gone); else bifrost unlock';

/**
 * $1 the parent, $2 the lock dir, $3 the take file; stdin: the holder record. The record is read whole
 * before anything is made (it ends with `}`: a link that dropped while sending it leaves nothing behind).
 * Creates the parent when missing (a fresh host), writes the take file (0600), tries the atomic mkdir
 * (0700 whatever the umask) and moves the take file in as holder.json. A failing mkdir with the dir
 * present means "held": the script then prints what judging the holder needs, from the host's own clock
 * (no skew): the dir's inode and age, the holder record, and the take files no newer than the dir (each
 * after a `--- take NAME` line). Any other failure (permissions, read-only filesystem) is reported as is.
 */
const TRY_LOCK_SCRIPT = `rec=$(cat) && case $rec in *'}') ;; *) exit 1 ;; esac
mkdir -p -- "$1" || exit 1
(umask 077 && printf '%s\\n' "$rec" > "$3") || exit 1
if mkdir -m 700 -- "$2" 2>/dev/null; then
  mv -f -- "$3" "$2/${HOLDER_FILE}" && exit 0
  rm -rf -- "$2" "$3"
  exit 1
fi
rm -f -- "$3"
[ -d "$2" ] || exec mkdir -m 700 -- "$2"
printf 'inode=%s\\n' "$(ls -di -- "$2" 2>/dev/null | awk '{print $1}')"
printf 'now=%s\\n' "$(date +%s)"
printf 'mtime=%s\\n' "$(date -r "$2" +%s 2>/dev/null)"
if [ -r "$2" ] && [ -x "$2" ]; then echo readable=yes; else echo readable=no; fi
if [ -e "$2/${HOLDER_FILE}" ]; then echo record=present; else echo record=absent; fi
printf 'sum=%s\n' "$(cksum < "$2/${HOLDER_FILE}" 2>/dev/null)"
echo ---
cat -- "$2/${HOLDER_FILE}" 2>/dev/null
[ -e "$2/${HOLDER_FILE}" ] || for f in "$2".take.*; do
  [ -f "$f" ] && [ ! "$f" -nt "$2" ] && printf '\\n--- take %s\\n' "\${f##*/}" && cat -- "$f"
done
exit ${HELD}`;

/** The separator before each take file's record in TRY_LOCK_SCRIPT's output. */
const TAKE_MARK = /\n--- take ([^\n]*)\n/;

/**
 * $1 the lock dir, $2 the inode judged dead, $3 the unique name it is moved to, $4 the cksum of the holder
 * record judged (empty: none), then the take files judged (removed with the dead dir). Same inode AND same record: an inode freed by a takeover may be reused by
 * the next lock dir at once, so the inode alone could name a live lock. The taker makes its own lock dir
 * while the dead one still exists under its new name, so the new dir cannot get the dead one's inode;
 * then it removes the dead one. The taker's record (stdin) is written in the same script, so no dropped
 * connection can leave the new dir without it. Exit 0: the lock is the taker's.
 */
const TAKEOVER_SCRIPT = `mkdir -- "$1/.takeover" 2>/dev/null || exit ${TAKEOVER_BUSY}
if [ "$(ls -di -- "$1" 2>/dev/null | awk '{print $1}')" != "$2" ] ||
   [ "$(cksum < "$1/${HOLDER_FILE}" 2>/dev/null)" != "$4" ]; then
  rmdir -- "$1/.takeover" 2>/dev/null
  exit ${TAKEOVER_CHANGED}
fi
mv -- "$1" "$3" || exit 1
took=${TAKEOVER_CHANGED}
if mkdir -m 700 -- "$1" 2>/dev/null; then
  took=0
  (umask 077 && cat > "$1/${HOLDER_FILE}.tmp" && mv -- "$1/${HOLDER_FILE}.tmp" "$1/${HOLDER_FILE}") || took=1
fi
rm -rf -- "$3"
shift 4
[ "$took" = 0 ] && rm -f -- "$@"
exit $took`;

function lockDirOf(remoteDir: string): string {
  return `${normalizeRemoteDir(remoteDir)}.lock`;
}

/** This process as a lock holder, with what a later run on this machine needs to prove it gone. */
export function currentHolder(command: string): LockHolder {
  const host = hostname();
  const machine = readProc('/etc/machine-id');
  const boot = readProc('/proc/sys/kernel/random/boot_id');
  const pidStart = processStart(process.pid);
  return {
    holder: `${userInfo().username}@${host}`,
    pid: process.pid,
    since: new Date().toISOString(),
    command,
    host,
    ...(machine ? { machine } : {}),
    ...(boot ? { boot } : {}),
    ...(pidStart ? { pidStart } : {}),
  };
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/PID/stat (after the command name, which may hold spaces and parentheses). */
function processStart(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** What the held branch of TRY_LOCK_SCRIPT saw. */
interface Seen {
  inode: string;
  /** cksum of the holder record as seen (empty without one). */
  sum: string;
  ageSeconds: number;
  readable: boolean;
  record: 'present' | 'absent';
  text: string;
  /** Without holder.json: the take files no newer than the dir, by name, with their records. */
  takes: { name: string; text: string }[];
}

function parseSeen(stdout: string): Seen | undefined {
  const [head = '', ...rest] = stdout.split('\n---\n');
  const fields = new Map(head.split('\n').map((l) => l.split('=', 2) as [string, string]));
  const inode = fields.get('inode') ?? '';
  if (!inode) return undefined; // released while we looked
  // No age without both times (a `date` without -r): 0, which never counts as old enough to take over.
  const now = Number(fields.get('now') || Number.NaN);
  const mtime = Number(fields.get('mtime') || Number.NaN);
  const age = now - mtime;
  return {
    inode,
    sum: fields.get('sum') ?? '',
    ageSeconds: mtime > 0 && Number.isFinite(age) ? Math.max(0, age) : 0,
    readable: fields.get('readable') === 'yes',
    record: fields.get('record') === 'present' ? 'present' : 'absent',
    ...splitTakes(rest.join('\n---\n')),
  };
}

/** The holder record, then `--- take NAME` and its record for each take file (none when there is a record). */
function splitTakes(all: string): { text: string; takes: { name: string; text: string }[] } {
  const [text = '', ...parts] = all.split(TAKE_MARK);
  const takes: { name: string; text: string }[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2)
    takes.push({ name: parts[i] as string, text: parts[i + 1] as string });
  return { text, takes };
}

/**
 * Why the holder is provably gone, or undefined when it may be alive. Without a holder record, the take
 * files say who was making the dir: when each names a run of this machine that is gone, that run died in
 * the middle of its take, and nobody has to wait.
 */
function whyGone(
  seen: Pick<Seen, 'ageSeconds' | 'readable' | 'record' | 'takes'>,
  holder: LockHolder | undefined,
  graceSeconds: number,
  me: LockHolder = currentHolder(''),
): string | undefined {
  if (!holder) {
    const takers = seen.takes.map((t) => parseHolder(t.text));
    const cut = takers.map((t) => t && holderState(t, me));
    if (seen.record === 'absent' && cut.length > 0 && cut.every((c) => c?.state === 'gone')) {
      return `its take was cut short before it recorded its holder (no ${HOLDER_FILE}; ${cut
        .map((c) => (c as { why: string }).why)
        .join('; ')})`;
    }
    if (!seen.readable || seen.ageSeconds < graceSeconds) return undefined;
    const what = seen.record === 'absent' ? `no ${HOLDER_FILE}` : `an unreadable ${HOLDER_FILE}`;
    return `its holder never completed its record (${what}, ${seen.ageSeconds} s old)`;
  }
  const state = holderState(holder, me);
  return state.state === 'gone' ? state.why : undefined;
}

/**
 * Whether a holder runs on this machine (`me`'s) and whether its process is gone, with why; a holder of
 * another machine (or without a pid) cannot be judged from here.
 */
export function holderState(
  holder: LockHolder,
  me: LockHolder = currentHolder(''),
): { state: 'elsewhere' } | { state: 'alive' } | { state: 'gone'; why: string } {
  const sameMachine =
    holder.machine && me.machine
      ? holder.machine === me.machine
      : (holder.host ?? holder.holder.slice(holder.holder.lastIndexOf('@') + 1)) === me.host;
  if (!sameMachine || !Number.isInteger(holder.pid) || holder.pid <= 0) return { state: 'elsewhere' };
  const who = `${holder.holder} (pid ${holder.pid}, ${holder.command})`;
  if (holder.machine && holder.boot && me.boot && holder.boot !== me.boot) {
    return { state: 'gone', why: `its holder ${who} ran before this machine restarted` };
  }
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH')
      return { state: 'gone', why: `its holder ${who} no longer runs on this machine` };
    return { state: 'alive' }; // EPERM: a process of another user has that pid
  }
  const start = holder.pidStart && processStart(holder.pid);
  if (start && start !== holder.pidStart)
    return {
      state: 'gone',
      why: `its holder ${who} no longer runs (pid ${holder.pid} is another process now)`,
    };
  return { state: 'alive' };
}

export async function acquireHostLock(
  executor: Executor,
  remoteDir: string,
  opts: AcquireOptions,
): Promise<HostLock> {
  const lockDir = lockDirOf(remoteDir);
  const waitMs = (opts.waitSeconds ?? 0) * 1000;
  const staleAfterMs = (opts.staleAfterSeconds ?? 1800) * 1000;
  const graceSeconds = opts.incompleteGraceSeconds ?? 60;
  const deadline = Date.now() + waitMs;
  let lastReport = 0;
  let busyRetries = 0;
  for (;;) {
    const seen = await tryLock(executor, lockDir, opts.holder);
    if (seen === 'acquired') return handle(executor, remoteDir, opts.holder);
    // Released between our mkdir and the look: try again at once.
    if (!seen) continue;
    const parsed = seen.readable && seen.record === 'present' ? parseHolder(seen.text) : undefined;
    const gone = whyGone(seen, parsed, graceSeconds);
    if (gone) {
      const took = await takeOver(executor, lockDir, seen, opts.holder);
      if (took === true) {
        (opts.onNotice ?? opts.onWait)?.(`took over ${lockDir}: ${gone}`);
        return handle(executor, remoteDir, opts.holder);
      }
      // Changed hands meanwhile: compete for it again. Another run taking it over right now is given a
      // moment, so that the refusal names the winner rather than the dead holder.
      if (took !== 'busy' || busyRetries++ < BUSY_RETRIES) {
        if (took === 'busy') await stoppableSleep(BUSY_PAUSE_MS);
        continue;
      }
    }
    const current = parsed ?? takerOf(seen) ?? unknownHolder(seen);
    const ageMs = Date.now() - Date.parse(current.since);
    if (!(ageMs <= staleAfterMs))
      throw staleError(executor, lockDir, current, opts.staleAfterSeconds ?? 1800);
    const left = deadline - Date.now();
    if (left <= 0) {
      // A lock that never recorded its holder needs no unlock: it is taken over once the grace is over.
      const hint = parsed || !seen.readable ? HELD_HINT : incompleteHint(graceSeconds - seen.ageSeconds);
      throw heldError(executor, lockDir, current, opts.waitSeconds ?? 0, hint);
    }
    if (Date.now() - lastReport >= WAIT_REPORT_MS) {
      opts.onWait?.(
        `waiting up to ${Math.ceil(left / 1000)} s for ${lockDir}: held by ${describeHolder(current)}`,
      );
      lastReport = Date.now();
    }
    await stoppableSleep(Math.min(POLL_MS, left));
  }
}

/** Without holder.json: the run a take file names, as the holder (its record is not in the lock dir yet). */
function takerOf(seen: Seen): LockHolder | undefined {
  const taker = seen.takes.map((t) => parseHolder(t.text)).find((t) => t !== undefined);
  return taker && { ...taker, command: `${taker.command} (taking the lock: no ${HOLDER_FILE} yet)` };
}

function unknownHolder(seen: Seen): LockHolder {
  return {
    holder: 'unknown',
    pid: 0,
    since: new Date(Date.now() - seen.ageSeconds * 1000).toISOString(),
    command: !seen.readable
      ? '(the lock dir is not readable by this user)'
      : seen.record === 'absent'
        ? `(no ${HOLDER_FILE})`
        : `(unreadable ${HOLDER_FILE})`,
  };
}

/** true: the lock is ours (the dead one removed); 'busy': another run is taking it over; false: it changed meanwhile. */
async function takeOver(
  executor: Executor,
  lockDir: string,
  seen: Seen,
  holder: LockHolder,
): Promise<boolean | 'busy'> {
  const dead = `${lockDir}.dead-${uniqueSuffix()}`;
  const takes = seen.takes.map((t) => `${lockDir.slice(0, lockDir.lastIndexOf('/') + 1)}${t.name}`);
  const argv = ['sh', '-c', TAKEOVER_SCRIPT, 'sh', lockDir, seen.inode, dead, seen.sum, ...takes];
  const r = await lockStep(executor, 'take over', lockDir, () =>
    executor.run({ argv, input: holderText(holder), timeoutMs: COMMAND_TIMEOUT_MS }),
  );
  if (r.exitCode === 0) return true;
  if (r.exitCode === TAKEOVER_BUSY) return 'busy';
  if (r.exitCode === TAKEOVER_CHANGED) return false;
  const detail = (r.spawnError ?? r.stderr).trim().slice(0, 500);
  throw lockError(executor, 'take over', lockDir, `exit ${r.exitCode}${detail ? `: ${detail}` : ''}`);
}

/**
 * The current holder, or undefined when the host is not locked. A lock dir without a readable
 * holder.json (its owner died between mkdir and the write) reads as holder "unknown" since the dir's mtime.
 */
export async function readHostLock(executor: Executor, remoteDir: string): Promise<LockHolder | undefined> {
  const lockDir = lockDirOf(remoteDir);
  // The executor bounds every file operation (ssh.ts): no wait here can hang on a dead connection.
  const text = await lockStep(executor, 'read', lockDir, () =>
    executor.files.readFile(`${lockDir}/${HOLDER_FILE}`),
  );
  const parsed = text === undefined ? undefined : parseHolder(text);
  if (parsed) return parsed;
  const dir = await lockStep(executor, 'read', lockDir, () => executor.files.stat(lockDir));
  if (!dir) return undefined;
  return {
    holder: 'unknown',
    pid: 0,
    since: new Date(dir.mtimeMs).toISOString(),
    command: text === undefined ? `(no ${HOLDER_FILE})` : `(unreadable ${HOLDER_FILE})`,
  };
}

/** Removes the lock whoever holds it; returns who did (undefined when it was not held). */
export async function breakHostLock(executor: Executor, remoteDir: string): Promise<LockHolder | undefined> {
  const holder = await readHostLock(executor, remoteDir);
  if (!holder) return undefined;
  await removeLockDir(executor, lockDirOf(remoteDir), 'break');
  return holder;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    const ok =
      typeof h.holder === 'string' &&
      typeof h.pid === 'number' &&
      typeof h.since === 'string' &&
      typeof h.command === 'string';
    if (!ok) return undefined;
    const optional = (k: 'host' | 'machine' | 'boot' | 'pidStart') =>
      typeof h[k] === 'string' ? { [k]: h[k] } : {};
    return {
      holder: h.holder,
      pid: h.pid,
      since: h.since,
      command: h.command,
      ...optional('host'),
      ...optional('machine'),
      ...optional('boot'),
      ...optional('pidStart'),
    } as LockHolder;
  } catch {
    return undefined;
  }
}

async function tryLock(
  executor: Executor,
  lockDir: string,
  holder: LockHolder,
): Promise<'acquired' | Seen | undefined> {
  const parent = lockDir.slice(0, lockDir.lastIndexOf('/')) || '/';
  const argv = ['sh', '-c', TRY_LOCK_SCRIPT, 'sh', parent, lockDir, `${lockDir}.take.${uniqueSuffix()}`];
  const r = await lockStep(executor, 'acquire', lockDir, () =>
    executor.run({ argv, input: holderText(holder), timeoutMs: COMMAND_TIMEOUT_MS }),
  );
  if (r.exitCode === 0) return 'acquired';
  if (r.exitCode === HELD) return parseSeen(r.stdout);
  const detail = (r.spawnError ?? r.stderr).trim().slice(0, 500);
  throw lockError(executor, 'acquire', lockDir, `exit ${r.exitCode}${detail ? `: ${detail}` : ''}`);
}

/** The holder record; it ends with `}` and a newline (TRY_LOCK_SCRIPT checks it arrived whole). */
function holderText(holder: LockHolder): string {
  return `${JSON.stringify(holder, null, 2)}\n`;
}

/** Names a take file or a dead lock dir of this run: unique on the host. */
function uniqueSuffix(): string {
  return `${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

function handle(executor: Executor, remoteDir: string, mine: LockHolder): HostLock {
  let released = false;
  // A release that cannot reach the host leaves the lock; say what happens to it next (its record
  // names this process, which is gone by the next run).
  const stays = (err: Error): never => {
    err.message += '; the lock stays until a run from this machine takes it over or bifrost unlock clears it';
    throw err;
  };
  const lock: HostLock = {
    async release() {
      if (released) return;
      const lockDir = lockDirOf(remoteDir);
      const current = await readHostLock(executor, remoteDir).catch(stays);
      // Gone (broken by the operator): nothing to do. Someone else's (broken, then taken): leave it.
      released = !current;
      if (!current) return unregister();
      if (current.holder !== mine.holder || current.pid !== mine.pid || current.since !== mine.since) {
        throw lockError(
          executor,
          'release',
          lockDir,
          `the lock is no longer ours (it was broken and is now held by ${describeHolder(current)}); left in place`,
        );
      }
      await removeLockDir(executor, lockDir, 'release').catch(stays);
      released = true;
      unregister();
    },
  };
  // After an interrupt the clean-up releases it, while the connection still lives.
  const unregister = runContext.onCleanup({
    what: 'releasing the host lock',
    done: 'the host lock was released',
    hint: LEFT_BEHIND_HINT,
    run: () => lock.release(),
  });
  return lock;
}

async function removeLockDir(executor: Executor, lockDir: string, step: string): Promise<void> {
  const r = await lockStep(executor, step, lockDir, () =>
    executor.run({ argv: ['rm', '-rf', '--', lockDir], timeoutMs: COMMAND_TIMEOUT_MS }),
  );
  if (r.exitCode !== 0) throw lockError(executor, step, lockDir, `exit ${r.exitCode}: ${r.stderr.trim()}`);
}

async function lockStep<T>(
  executor: Executor,
  step: string,
  lockDir: string,
  op: () => Promise<T>,
): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw lockError(executor, step, lockDir, (err as Error).message);
  }
}

function lockError(executor: Executor, step: string, lockDir: string, reason: string): WorkError {
  return new WorkError(
    `${executor.where}: cannot ${step} the host lock ${shellQuote(lockDir)}: ${reason}`,
    'check the connection and the permissions of the directory, then re-run',
  );
}

function heldError(
  executor: Executor,
  lockDir: string,
  h: LockHolder,
  waitSeconds: number,
  hint: string,
): WorkError {
  const waited = waitSeconds > 0 ? ` (waited ${waitSeconds} s)` : '';
  return new WorkError(
    `${executor.where}: ${shellQuote(lockDir)} is held by ${describeHolder(h)}${waited}`,
    hint,
  );
}

/** A lock dir without its holder's record: a run in the middle of its take, or one cut short on another machine. */
function incompleteHint(leftSeconds: number): string {
  const wait = Math.max(1, Math.ceil(leftSeconds));
  return `it has not recorded its holder yet (a run taking it now, or one cut short on another machine); it is taken over once that has lasted too long: run again in ${wait} s, or pass --lock-wait ${wait + 1}`;
}

function staleError(
  executor: Executor,
  lockDir: string,
  h: LockHolder,
  staleAfterSeconds: number,
): WorkError {
  return new WorkError(
    `${executor.where}: STALE lock ${shellQuote(lockDir)}: held by ${describeHolder(h)}, longer than ` +
      `${staleAfterSeconds} s; it is not broken automatically`,
    UNLOCK_HINT,
  );
}

/** "alice@laptop (pid 4242) since 2026-11-28T03:25:00.000Z (12m 5s ago), running: provision-bifrost ..." */
export function describeHolder(h: LockHolder): string {
  return `${h.holder} (pid ${h.pid}) since ${h.since}${holderAge(h)}, running: ${h.command}`;
}

/** " (12m 5s ago)", or nothing when the holder's time cannot be read. */
export function holderAge(h: LockHolder): string {
  const age = Date.now() - Date.parse(h.since);
  return Number.isFinite(age) ? ` (${formatDuration(age)} ago)` : '';
}

/** The host lock for `command`, its waiting and notices narrated on `out`. */
export function lockHost(
  executor: Executor,
  dir: string,
  command: string,
  waitSeconds: number,
  out: Output,
): Promise<HostLock> {
  return acquireHostLock(executor, dir, {
    holder: currentHolder(command),
    waitSeconds,
    onWait: (line) => out.info(`lock    ${line}`),
    onNotice: (line) => out.warn(`lock: ${line}`),
  });
}
