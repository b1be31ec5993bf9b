/**
 * The host lock: one provisioning run per host at a time (two uploads would remove each other's staging
 * dirs; two engines would race on the same containers).
 *
 * Kamal's design (reference/anchors.md §1.4): `mkdir DIR.lock` is atomic on every POSIX filesystem, so
 * exactly one of two racing runs creates it; the winner then writes holder.json inside with who, since
 * when and what command. A lock is never broken automatically: one older than `staleAfterSeconds` is
 * reported as STALE with its holder, and the operator clears it (`just bifrost-unlock`, breakHostLock).
 */
import { WorkError } from '../errors.ts';
import { type Executor, shellQuote } from '../exec/executor.ts';
import { normalizeRemoteDir, watchFileOp } from './upload.ts';

export interface LockHolder {
  /** user@hostname */
  holder: string;
  pid: number;
  /** ISO 8601. */
  since: string;
  command: string;
}

export interface AcquireOptions {
  holder: LockHolder;
  /** How long to wait for another holder to release; default 0 (fail at once). */
  waitSeconds?: number;
  /** Older locks are reported as stale instead of waited for; default 1800. */
  staleAfterSeconds?: number;
  onWait?: (line: string) => void;
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
/** SFTP calls have no deadline of their own (see watchFileOp). */
const FILE_OP_TIMEOUT_MS = 30_000;
/** Exit code of TRY_LOCK_SCRIPT when the lock dir already exists. */
const HELD = 10;
const UNLOCK_HINT =
  'if that run is no longer running, clear the lock with `just bifrost-unlock` (breakHostLock)';

/**
 * Creates the parent when missing (a fresh host), then tries the atomic mkdir. A failing mkdir with the
 * dir present means "held"; any other failure (permissions, read-only filesystem) is reported as is.
 */
const TRY_LOCK_SCRIPT = `mkdir -p -- "$1" || exit 1
mkdir -- "$2" 2>/dev/null && exit 0
[ -d "$2" ] && exit ${HELD}
mkdir -- "$2"`;

function lockDirOf(remoteDir: string): string {
  return `${normalizeRemoteDir(remoteDir)}.lock`;
}

export async function acquireHostLock(
  executor: Executor,
  remoteDir: string,
  opts: AcquireOptions,
): Promise<HostLock> {
  const lockDir = lockDirOf(remoteDir);
  const waitMs = (opts.waitSeconds ?? 0) * 1000;
  const staleAfterMs = (opts.staleAfterSeconds ?? 1800) * 1000;
  const deadline = Date.now() + waitMs;
  let lastReport = 0;
  for (;;) {
    if (await tryLock(executor, lockDir)) {
      await writeHolder(executor, lockDir, opts.holder);
      return handle(executor, remoteDir, opts.holder);
    }
    const current = await readHostLock(executor, remoteDir);
    // Released between our mkdir and the read: try again at once.
    if (!current) continue;
    const ageMs = Date.now() - Date.parse(current.since);
    if (!(ageMs <= staleAfterMs))
      throw staleError(executor, lockDir, current, opts.staleAfterSeconds ?? 1800);
    const left = deadline - Date.now();
    if (left <= 0) throw heldError(executor, lockDir, current, opts.waitSeconds ?? 0);
    if (Date.now() - lastReport >= WAIT_REPORT_MS) {
      opts.onWait?.(`waiting up to ${Math.ceil(left / 1000)} s for ${lockDir}: held by ${describe(current)}`);
      lastReport = Date.now();
    }
    await sleep(Math.min(POLL_MS, left));
  }
}

/**
 * The current holder, or undefined when the host is not locked. A lock dir without a readable
 * holder.json (its owner died between mkdir and the write) reads as holder "unknown" since the dir's mtime.
 */
export async function readHostLock(executor: Executor, remoteDir: string): Promise<LockHolder | undefined> {
  const lockDir = lockDirOf(remoteDir);
  const text = await lockStep(executor, 'read', lockDir, () =>
    watchFileOp(executor, executor.files.readFile(`${lockDir}/${HOLDER_FILE}`), FILE_OP_TIMEOUT_MS),
  );
  const parsed = text === undefined ? undefined : parseHolder(text);
  if (parsed) return parsed;
  const dir = await lockStep(executor, 'read', lockDir, () =>
    watchFileOp(executor, executor.files.stat(lockDir), FILE_OP_TIMEOUT_MS),
  );
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
    return ok
      ? ({ holder: h.holder, pid: h.pid, since: h.since, command: h.command } as LockHolder)
      : undefined;
  } catch {
    return undefined;
  }
}

async function tryLock(executor: Executor, lockDir: string): Promise<boolean> {
  const parent = lockDir.slice(0, lockDir.lastIndexOf('/')) || '/';
  const argv = ['sh', '-c', TRY_LOCK_SCRIPT, 'sh', parent, lockDir];
  const r = await lockStep(executor, 'acquire', lockDir, () =>
    executor.run({ argv, timeoutMs: COMMAND_TIMEOUT_MS }),
  );
  if (r.exitCode === 0) return true;
  if (r.exitCode === HELD) return false;
  const detail = (r.spawnError ?? r.stderr).trim().slice(0, 500);
  throw lockError(executor, 'acquire', lockDir, `exit ${r.exitCode}${detail ? `: ${detail}` : ''}`);
}

/** The lock is ours from the mkdir on; without a holder file nobody could tell, so a failed write undoes it. */
async function writeHolder(executor: Executor, lockDir: string, holder: LockHolder): Promise<void> {
  const path = `${lockDir}/${HOLDER_FILE}`;
  try {
    const text = `${JSON.stringify(holder, null, 2)}\n`;
    await watchFileOp(executor, executor.files.writeFileAtomic(path, text, 0o644), FILE_OP_TIMEOUT_MS);
  } catch (err) {
    await executor.run({ argv: ['rm', '-rf', '--', lockDir], timeoutMs: COMMAND_TIMEOUT_MS }).catch(() => {});
    throw lockError(executor, 'acquire', lockDir, `cannot record the holder: ${(err as Error).message}`);
  }
}

function handle(executor: Executor, remoteDir: string, mine: LockHolder): HostLock {
  let released = false;
  return {
    async release() {
      if (released) return;
      const lockDir = lockDirOf(remoteDir);
      const current = await readHostLock(executor, remoteDir);
      // Gone (broken by the operator): nothing to do. Someone else's (broken, then taken): leave it.
      released = !current;
      if (!current) return;
      if (current.holder !== mine.holder || current.pid !== mine.pid || current.since !== mine.since) {
        throw lockError(
          executor,
          'release',
          lockDir,
          `the lock is no longer ours (it was broken and is now held by ${describe(current)}); left in place`,
        );
      }
      await removeLockDir(executor, lockDir, 'release');
      released = true;
    },
  };
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

function heldError(executor: Executor, lockDir: string, h: LockHolder, waitSeconds: number): WorkError {
  const waited = waitSeconds > 0 ? ` (waited ${waitSeconds} s)` : '';
  return new WorkError(
    `${executor.where}: ${shellQuote(lockDir)} is held by ${describe(h)}${waited}`,
    `wait for that run to finish and re-run (or give a longer lock wait); ${UNLOCK_HINT}`,
  );
}

function staleError(
  executor: Executor,
  lockDir: string,
  h: LockHolder,
  staleAfterSeconds: number,
): WorkError {
  return new WorkError(
    `${executor.where}: STALE lock ${shellQuote(lockDir)}: held by ${describe(h)}, longer than ` +
      `${staleAfterSeconds} s; it is not broken automatically`,
    UNLOCK_HINT,
  );
}

/** "alice@laptop (pid 4242) since 2026-11-28T03:25:00.000Z (12m 5s ago), running: provision-bifrost ..." */
function describe(h: LockHolder): string {
  const age = Date.now() - Date.parse(h.since);
  const ago = Number.isFinite(age) ? ` (${formatAge(age)} ago)` : '';
  return `${h.holder} (pid ${h.pid}) since ${h.since}${ago}, running: ${h.command}`;
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
