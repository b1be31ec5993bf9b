/**
 * The upload half of provision-bifrost: the bundle (cloud/bifrost plus the rendered .secrets.env and .env)
 * goes to the host atomically and incrementally.
 *
 * Atomic: the new tree is built in a staging directory beside the live one (a copy of it, so the files the
 * bootstrap engine generated on the host carry over), then swapped in with two renames in one remote shell.
 * The live directory is therefore never a mix of old and new files, and a dropped connection leaves either
 * the old tree or the new one (the next run cleans up, see `recover`).
 *
 * Incremental: a manifest in the live directory records the SHA-256 and mode of every file WE uploaded.
 * Files whose hash and mode match are not sent again, and a run where nothing changed touches nothing.
 * The manifest, not the remote content, is the reference, and it records only the part of a file
 * provisioning owns (provisionedText): the engine writes NB_IDP_MGMT_TOKEN into .secrets.env on the host,
 * and that line must never read as "changed".
 *
 * File contents travel over SFTP only (executor.files), never on a command line; remote paths travel as
 * separate argv elements (positional parameters of `sh -c`), which the executor shell-quotes.
 * Callers hold the host lock (lock.ts): recovery removes staging directories, which would break a
 * concurrent upload.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, posix, relative, sep } from 'node:path';
import { InputError, WorkError } from '../core/errors.ts';
import { notRegular } from '../core/file-kind.ts';
import { type Command, type Executor, shellQuote } from '../exec/executor.ts';
import { provisionedText, RENDERED_ENV_FILES } from './host-state.ts';

export interface BundleFile {
  /** Relative, posix. */
  path: string;
  content: Buffer | string;
  /** 0o600 for secrets, 0o644 for the others. */
  mode: number;
}

export interface UploadPlan {
  changed: string[];
  unchanged: string[];
  removed: string[];
}

export interface UploadResult extends UploadPlan {
  swapped: boolean;
  /** Bytes of bundle file content sent (the manifest not counted). */
  bytesSent: number;
  remoteDir: string;
}

export interface UploadOptions {
  onProgress?: (line: string) => void;
  /** Paths to send even when the manifest says they are unchanged (edited on the host by hand). */
  resend?: readonly string[];
  /** Keyed digest for the files that hold secrets (see manifestDigest); plain SHA-256 without it. */
  secretDigest?: SecretDigest;
  /**
   * The per-host salt secretDigest is keyed with, recorded in the manifest (manifestSalt): until a deploy
   * record holds it, the next run keys its digests the same way, so unchanged secret files stay unsent.
   */
  salt?: string;
  /** Something on the host was not as an upload leaves it (default: a "warning:" progress line). */
  onWarning?: (line: string) => void;
}

export const MANIFEST = '.bundle-manifest.json';

/** Local files that hold secrets whatever their local mode: uploaded 0600. */
export const SECRET_FILE_NAMES: readonly string[] = RENDERED_ENV_FILES;

/**
 * A secret file's name with something before or after it: a backup (`.secrets.env~`, `.env.bak`,
 * `.env.orig`, `.env.save`), an editor's swap or lock file (`.secrets.env.swp`, `.#.secrets.env`,
 * `#.secrets.env#`), a copy (`.env-old`). Before the name only the characters editors prepend (`.`, `#`,
 * `~`), so `proxy.env` is not one; after it, anything that does not continue the name's word, so
 * `.envrc` is not one either. Such a file holds the secrets under a name no rule keeps private: it is
 * never uploaded, in any directory of the bundle. Returns the secret file's name, or undefined.
 */
export function secretFileVariant(path: string): string | undefined {
  const name = posix.basename(path);
  if (SECRET_FILE_NAMES.includes(name)) return undefined;
  for (let at = 0; at < name.length; at++) {
    const secret = SECRET_FILE_NAMES.find(
      (n) => name.startsWith(n, at) && !/^[A-Za-z0-9]/.test(name.slice(at + n.length)),
    );
    if (secret) return secret;
    if (!'.#~'.includes(name[at] as string)) return undefined;
  }
  return undefined;
}

const MANIFEST_VERSION = 1;
/** SFTP pipelines requests; a few files in flight hide the round trips without flooding the channel. */
const WRITE_CONCURRENCY = 4;
/** While a file operation is pending, how often to check that the connection still works. */
const PROBE_MS = 2000;
const PROBE_TIMEOUT_MS = 15_000;
/** Deadline for each remote command (rm -rf or cp -al of a large tree is the slow case). */
const STEP_TIMEOUT_MS = 5 * 60_000;
const CONVERGE_HINT =
  're-run: the upload starts by removing leftover staging directories and restoring an interrupted swap, ' +
  'so running it again converges';

interface ManifestEntry {
  sha256: string;
  mode: number;
}

/** What the manifest says was uploaded: bundle path → digest and mode. */
export type ManifestFiles = Record<string, ManifestEntry>;

interface Manifest {
  version: number;
  /** The salt of the keyed digests (UploadOptions.salt); absent in manifests of older releases. */
  salt?: string;
  files: ManifestFiles;
}

/** A bundle file ready to send: its text (what the executor's file ops write) and that text's digest. */
interface Prepared {
  path: string;
  text: string;
  bytes: number;
  sha256: string;
  mode: number;
}

/** What the host holds after recovery. */
interface RemoteState {
  liveExists: boolean;
  /** Regular files under the live dir, relative posix paths. */
  liveFiles: Set<string>;
  manifest: ManifestFiles | undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Local side

/**
 * Collects the files under `localDir` (recursively, skipping paths for which `exclude` is true; a skipped
 * directory is not entered), as relative posix paths sorted by path. Only regular files are carried: a
 * FIFO, socket or device is refused without being opened, and so is a symlink unless it resolves to a
 * regular file inside the bundle that the bundle itself would carry (it is then sent as a regular file).
 * Every refused entry is named in one InputError, before anything connects. Modes follow the bundle's
 * rules, never the local file's: 0o600 for the secret file names (SECRET_FILE_NAMES; for a symlink, the
 * link's or the target's name), 0o644 for the others.
 */
export async function readLocalBundle(
  localDir: string,
  exclude: (rel: string) => boolean = () => false,
): Promise<BundleFile[]> {
  const out: BundleFile[] = [];
  const refused: string[] = [];
  try {
    const root = await realpath(localDir);
    await walk({ root, exclude, out, refused }, '');
  } catch (err) {
    throw new InputError(
      `cannot read the bundle directory ${localDir}: ${(err as Error).message}`,
      'give the path of the bundle (cloud/bifrost)',
    );
  }
  if (refused.length > 0) {
    throw new InputError(
      `nothing done: the bundle ${localDir} holds entries that cannot be uploaded:\n${refused.map((r) => `  - ${r}`).join('\n')}`,
      "the bundle carries regular files only (a symlink only to a file inside it), and no copy of a secret file: remove or replace these (move a secret file's backup out of the bundle)",
    );
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

const SECRET_COPY = (name: string) =>
  `named as a backup or an editor's copy of ${name}, which holds secrets (it would be uploaded under a name no rule keeps private)`;

interface Walk {
  /** The bundle directory, with every symlink in it resolved: the boundary symlinks must stay inside. */
  root: string;
  exclude: (rel: string) => boolean;
  out: BundleFile[];
  refused: string[];
}

async function walk(w: Walk, rel: string): Promise<void> {
  for (const entry of await readdir(join(w.root, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (w.exclude(path)) continue;
    if (entry.isDirectory()) {
      await walk(w, path);
      continue;
    }
    const variant = secretFileVariant(path);
    if (variant) {
      w.refused.push(`${path}: ${SECRET_COPY(variant)}`);
      continue;
    }
    let source = path;
    if (entry.isSymbolicLink()) {
      const target = await linkTarget(w, path);
      if ('refused' in target) {
        w.refused.push(`${path}: ${target.refused}`);
        continue;
      }
      source = target.rel;
      const targetVariant = secretFileVariant(source);
      if (targetVariant) {
        w.refused.push(`${path}: a symlink to ${source}, ${SECRET_COPY(targetVariant)}`);
        continue;
      }
    } else if (!entry.isFile()) {
      w.refused.push(`${path}: ${notRegular(entry)}, not a regular file`);
      continue;
    }
    const content = await readRegular(join(w.root, source));
    if (typeof content === 'string') {
      w.refused.push(`${path}: ${source === path ? '' : `a symlink to ${source}, `}${content}`);
      continue;
    }
    const secret = isSecretName(path) || isSecretName(source);
    w.out.push({ path, content, mode: secret ? 0o600 : 0o644 });
  }
}

/** Where a symlink leads, as a bundle path, or why it may not be followed (nothing is opened here). */
async function linkTarget(w: Walk, path: string): Promise<{ rel: string } | { refused: string }> {
  let real: string;
  try {
    real = await realpath(join(w.root, path));
  } catch {
    return { refused: 'a dangling symlink (its target does not exist)' };
  }
  const inside = relative(w.root, real);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    return { refused: `a symlink to ${real}, outside the bundle` };
  }
  const rel = inside.split(sep).join('/');
  // Excluded itself, or inside a directory the walk does not enter.
  const segments = rel.split('/');
  if (segments.some((_, i) => w.exclude(segments.slice(0, i + 1).join('/')))) {
    return { refused: `a symlink to ${rel}, which the bundle does not carry (generated or secret)` };
  }
  return { rel };
}

/**
 * The content of a regular file, or why not. Opened without following a link and without blocking (a
 * FIFO swapped in after the directory was listed would otherwise hang the read), then checked by fstat.
 */
async function readRegular(full: string): Promise<Buffer | string> {
  const handle = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) return `${notRegular(st)}, not a regular file`;
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

function isSecretName(path: string): boolean {
  return SECRET_FILE_NAMES.includes(posix.basename(path));
}

export type SecretDigest = (data: Buffer) => string;

/**
 * A file's digest in the manifest: SHA-256, except for a file only its owner may read (0600: it holds
 * secrets), whose digest is keyed by the caller (HMAC under FINGERPRINT_KEY), so that the host never
 * stores a plain hash of secret content.
 */
export function manifestDigest(data: Buffer | string, mode: number, secretDigest?: SecretDigest): string {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return (mode & 0o077) === 0 && secretDigest ? secretDigest(bytes) : sha256(bytes);
}

/** The upload's own checks of the files (paths, duplicates, modes, UTF-8), without sending anything. */
export function checkBundleFiles(files: readonly BundleFile[]): void {
  prepareFiles(files);
}

/**
 * The digest the manifest records for a bundle file: of the part provisioning owns (provisionedText), keyed
 * for a 0600 file (manifestDigest). The one rule for the upload, provision and `bifrost verify`.
 */
export function recordedDigest(
  path: string,
  content: Buffer | string,
  mode: number,
  secretDigest?: SecretDigest,
): string {
  const text = typeof content === 'string' ? content : content.toString('utf8');
  return manifestDigest(provisionedText(path, text), mode, secretDigest);
}

/** Checks every path and turns contents into the text the executor writes, with its digest. */
function prepareFiles(files: readonly BundleFile[], secretDigest?: SecretDigest): Prepared[] {
  const seen = new Set<string>();
  return files.map((f) => {
    checkBundlePath(f.path);
    if (seen.has(f.path)) throw new InputError(`the bundle lists ${f.path} twice`);
    seen.add(f.path);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777) {
      throw new InputError(`bad mode ${f.mode} for ${f.path}`, 'use 0o600 for secrets, 0o644 for the rest');
    }
    const text = toText(f);
    return {
      path: f.path,
      text,
      bytes: Buffer.byteLength(text, 'utf8'),
      sha256: recordedDigest(f.path, text, f.mode, secretDigest),
      mode: f.mode,
    };
  });
}

/** Relative, posix, inside the bundle, one line; the manifest's own name is reserved. */
function checkBundlePath(path: string): void {
  const problem = bundlePathProblem(path);
  if (problem)
    throw new InputError(`bad bundle path ${JSON.stringify(path)}: ${problem}`, 'give relative posix paths');
  if (path === MANIFEST) throw new InputError(`${MANIFEST} is reserved for the upload's own manifest`);
}

/**
 * Why `path` is not a plain relative path inside the bundle (undefined when it is): the one rule for
 * paths going to the host and for paths read back from it (the manifest, the live dir's listing, the
 * compose file's env files and mounts).
 */
export function bundlePathProblem(path: string): string | undefined {
  if (path === '') return 'empty';
  if (/[\0\n\r]/.test(path)) return 'holds a NUL or a line break';
  if (path.startsWith('/')) return 'absolute';
  const segments = path.split('/');
  if (segments.includes('..')) return 'climbs out with ".."';
  if (segments.some((s) => s === '' || s === '.')) return 'not normalised';
  return undefined;
}

/** The executor's file ops write UTF-8 text, so a Buffer must survive the round trip unchanged. */
function toText(f: BundleFile): string {
  if (typeof f.content === 'string') return f.content;
  const text = f.content.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(f.content)) {
    throw new InputError(
      `${f.path} is not UTF-8 text`,
      'the bundle carries text files only (binary files would be corrupted)',
    );
  }
  return text;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** "/etc/bifrost/" -> "/etc/bifrost"; must be absolute and not "/". Shared with lock.ts. */
export function normalizeRemoteDir(remoteDir: string): string {
  const dir = remoteDir.replace(/\/+$/, '');
  if (!dir.startsWith('/') || /[\0\n\r]/.test(dir) || posix.normalize(dir) !== dir) {
    throw new InputError(
      `bad remote directory ${JSON.stringify(remoteDir)}`,
      'give an absolute, normalised path such as /etc/bifrost',
    );
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// Remote commands

function stepError(executor: Executor, step: string, path: string, reason: string, hint?: string) {
  return new WorkError(
    `${executor.where}: upload step "${step}" failed for ${shellQuote(path)}: ${reason}`,
    hint ? `${hint}; ${CONVERGE_HINT}` : CONVERGE_HINT,
  );
}

/** Runs one remote command; a non-zero exit, a deadline or a lost connection is a WorkError for `step`. */
async function runStep(executor: Executor, step: string, path: string, argv: string[]): Promise<string> {
  const cmd: Command = { argv, timeoutMs: STEP_TIMEOUT_MS };
  let result: Awaited<ReturnType<Executor['run']>>;
  try {
    result = await executor.run(cmd);
  } catch (err) {
    throw stepError(executor, step, path, (err as Error).message);
  }
  if (result.timedOut) throw stepError(executor, step, path, `no result within ${STEP_TIMEOUT_MS / 1000} s`);
  if (result.exitCode !== 0) {
    const detail = (result.spawnError ?? result.stderr).trim().slice(0, 500);
    throw stepError(executor, step, path, `exit ${result.exitCode}${detail ? `: ${detail}` : ''}`);
  }
  return result.stdout;
}

/** Same, for a file operation (SFTP), under watchFileOp's deadline and liveness probe. */
async function fileStep<T>(
  executor: Executor,
  step: string,
  path: string,
  bytes: number,
  op: () => Promise<T>,
): Promise<T> {
  try {
    return await watchFileOp(executor, op(), fileDeadlineMs(bytes));
  } catch (err) {
    throw stepError(executor, step, path, (err as Error).message, (err as { hint?: string }).hint);
  }
}

/** A fixed allowance plus the time the bytes take at a slow 64 KiB/s. */
function fileDeadlineMs(bytes: number): number {
  return 30_000 + Math.ceil(bytes / 65_536) * 1000;
}

/**
 * Waits for a file operation with a wall-clock deadline and a liveness probe. ssh2 never calls back a
 * request sent on a channel that has already died, and the SSH executor's clean-up after a failed SFTP
 * write sends exactly such requests, so a dropped connection would hang the upload for good. While the
 * operation is pending, `true` runs every PROBE_MS: a probe that cannot run means the connection is gone.
 * Shared with lock.ts.
 */
export async function watchFileOp<T>(executor: Executor, op: Promise<T>, deadlineMs: number): Promise<T> {
  // Abandoned when the probe or the deadline fails first; its late rejection must not go unhandled.
  op.catch(() => {});
  const done = op.then((value) => ({ value }));
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), Math.max(0, Math.min(PROBE_MS, deadline - Date.now())));
    });
    const settled = await Promise.race([done, tick]).finally(() => clearTimeout(timer));
    if (settled) return settled.value;
    if (Date.now() >= deadline) throw new Error(`no result within ${Math.round(deadlineMs / 1000)} s`);
    await probe(executor);
  }
}

async function probe(executor: Executor): Promise<void> {
  let reason: string | undefined;
  try {
    const r = await executor.run({ argv: ['true'], timeoutMs: PROBE_TIMEOUT_MS });
    if (r.exitCode !== 0) reason = r.timedOut ? 'no answer' : `exit ${r.exitCode}`;
  } catch (err) {
    reason = (err as Error).message;
  }
  if (reason) throw new Error(`the connection looks lost (a liveness probe failed: ${reason})`);
}

/**
 * Cleans up after an interrupted run, then lists the live dir. In one remote shell: staging leftovers
 * (a drop during the upload) are removed; a missing live dir with a `.prev-*` beside it (a drop between
 * the two renames of the swap) gets the newest one back (ids sort by time); remaining `.prev-*` dirs
 * (a drop before the old tree was removed) are removed. Output records, each ended by a NUL (the one
 * byte no file name holds): `removed-staging\tDIR`, `restored\tDIR`, `removed-prev\tDIR`, then `live` and
 * one `./path` per regular file.
 */
const RECOVER_SCRIPT = `live=$1
for d in "$live".staging-*; do
  [ -e "$d" ] || continue
  rm -rf -- "$d" || exit 1
  printf 'removed-staging\\t%s\\0' "$d"
done
if [ ! -e "$live" ]; then
  prev=
  for d in "$live".prev-*; do [ -d "$d" ] && prev=$d; done
  if [ -n "$prev" ]; then
    mv -- "$prev" "$live" || exit 1
    printf 'restored\\t%s\\0' "$prev"
  fi
fi
for d in "$live".prev-*; do
  [ -e "$d" ] || continue
  rm -rf -- "$d" || exit 1
  printf 'removed-prev\\t%s\\0' "$d"
done
[ -d "$live" ] || exit 0
printf 'live\\0'
cd "$live" && find . -type f -print0`;

async function recover(
  executor: Executor,
  live: string,
  progress: (line: string) => void,
  warn: (line: string) => void,
) {
  const out = await runStep(executor, 'recover and list', live, ['sh', '-c', RECOVER_SCRIPT, 'sh', live]);
  const records = out.split('\0').filter(Boolean);
  const marker = records.indexOf('live');
  for (const record of marker < 0 ? records : records.slice(0, marker)) {
    const [what, raw = ''] = record.split('\t');
    const dir = printable(raw);
    if (what === 'restored') {
      progress(
        `restored ${dir} as ${live}: a previous upload was cut off between the two renames of its swap`,
      );
    } else if (what === 'removed-staging') {
      progress(`removed ${dir}, left over from an interrupted upload`);
    } else if (what === 'removed-prev') {
      progress(`removed ${dir}, the previous bundle an interrupted upload left behind`);
    }
  }
  // The listing comes from the host: a name that is not a plain path inside the bundle is not one we
  // uploaded, so it only means "not there" (the file it would shadow is sent again).
  const liveFiles = new Set<string>();
  const odd: string[] = [];
  for (const record of marker < 0 ? [] : records.slice(marker + 1)) {
    const path = record.startsWith('./') ? record.slice(2) : '';
    if (bundlePathProblem(path)) odd.push(printable(record));
    else liveFiles.add(path);
  }
  if (odd.length > 0) {
    warn(`${live} holds ${odd.length} file name(s) no upload writes, ignored: ${odd.slice(0, 5).join(', ')}`);
  }
  return { liveExists: marker >= 0, liveFiles };
}

/** A host-supplied name, shown as is, or JSON-quoted when it holds control characters (or quotes). */
function printable(name: string): string {
  const quoted = JSON.stringify(name);
  return quoted.slice(1, -1) === name ? name : quoted;
}

async function readManifest(executor: Executor, live: string, warn: (line: string) => void) {
  const path = `${live}/${MANIFEST}`;
  const text = await fileStep(executor, 'read manifest', path, 0, () => executor.files.readFile(path));
  return parseManifest(text, (why) =>
    warn(`${path} ${why}: not used, so every file is sent again and none is removed`),
  );
}

/**
 * The one reader of the upload manifest (also `bifrost verify`'s). The manifest comes from the host, so
 * nothing in it is trusted: a file list whose every key is a plain relative path inside the bundle
 * (bundlePathProblem, not the manifest's own name) with a SHA-256 and a mode, or undefined, after
 * `onProblem` has said why (naming the first bad entry). An unusable manifest makes the next upload send
 * every file, remove none, and write a good manifest: the host converges without hand work.
 */
export function parseManifest(
  text: string | undefined,
  onProblem: (why: string) => void = () => {},
): ManifestFiles | undefined {
  if (text === undefined) return undefined;
  let doc: Partial<Manifest>;
  try {
    doc = JSON.parse(text) as Partial<Manifest>;
  } catch {
    onProblem('is not JSON');
    return undefined;
  }
  if (
    doc?.version !== MANIFEST_VERSION ||
    typeof doc.files !== 'object' ||
    doc.files === null ||
    Array.isArray(doc.files)
  ) {
    onProblem(`is not a version ${MANIFEST_VERSION} manifest`);
    return undefined;
  }
  const files: ManifestFiles = {};
  for (const [path, entry] of Object.entries(doc.files)) {
    const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
    const problem = path === MANIFEST ? 'is the manifest itself' : bundlePathProblem(path);
    if (problem) {
      onProblem(`lists ${shown}, which is not a file inside the bundle (${problem})`);
      return undefined;
    }
    const e = entry as Partial<ManifestEntry> | null;
    const validMode = Number.isInteger(e?.mode) && (e?.mode as number) >= 0 && (e?.mode as number) <= 0o777;
    if (typeof e?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256) || !validMode) {
      onProblem(`has a malformed entry for ${shown}`);
      return undefined;
    }
    files[path] = { sha256: e.sha256, mode: e.mode as number };
  }
  return files;
}

/**
 * The salt a manifest records (UploadOptions.salt), or undefined: none, an older manifest, or one that is
 * not a manifest. From the host, so only a 32-digit hex string is taken; a wrong one only makes the next
 * upload send the secret files again.
 */
export function manifestSalt(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const salt = (JSON.parse(text) as Partial<Manifest> | null)?.salt;
    return typeof salt === 'string' && /^[0-9a-f]{32}$/.test(salt) ? salt : undefined;
  } catch {
    return undefined;
  }
}

function formatManifest(files: readonly Prepared[], salt: string | undefined): string {
  const entries = Object.fromEntries(files.map((f) => [f.path, { sha256: f.sha256, mode: f.mode }]));
  const doc: Manifest = { version: MANIFEST_VERSION, ...(salt ? { salt } : {}), files: entries };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function warning(opts: UploadOptions): (line: string) => void {
  return opts.onWarning ?? ((line) => opts.onProgress?.(`warning: ${line}`));
}

async function inspect(executor: Executor, live: string, opts: UploadOptions) {
  const progress = opts.onProgress ?? (() => {});
  const warn = warning(opts);
  const { liveExists, liveFiles } = await recover(executor, live, progress, warn);
  const manifest = liveExists ? await readManifest(executor, live, warn) : undefined;
  return { liveExists, liveFiles, manifest } satisfies RemoteState;
}

/**
 * Unchanged: the manifest has the same hash and mode AND the file is still there (one deleted by hand is
 * sent again). Removed: in the manifest but no longer in the bundle; files we never uploaded (the
 * engine's) are never removed.
 */
function diff(files: readonly Prepared[], state: RemoteState, resend: readonly string[] = []): UploadPlan {
  const old = state.manifest ?? {};
  const plan: UploadPlan = { changed: [], unchanged: [], removed: [] };
  for (const f of files) {
    const was = old[f.path];
    const same =
      was?.sha256 === f.sha256 &&
      was.mode === f.mode &&
      state.liveFiles.has(f.path) &&
      !resend.includes(f.path);
    (same ? plan.unchanged : plan.changed).push(f.path);
  }
  const wanted = new Set(files.map((f) => f.path));
  plan.removed = Object.keys(old)
    .filter((p) => !wanted.has(p))
    .sort();
  return plan;
}

// ---------------------------------------------------------------------------------------------------------
// Public API

/** Reads the remote manifest and says what would change; sends nothing (recovery still runs first). */
export async function planUpload(
  executor: Executor,
  remoteDir: string,
  files: BundleFile[],
  opts: UploadOptions = {},
): Promise<UploadPlan> {
  const live = normalizeRemoteDir(remoteDir);
  const prepared = prepareFiles(files, opts.secretDigest);
  return diff(prepared, await inspect(executor, live, opts), opts.resend);
}

export async function uploadBundle(
  executor: Executor,
  remoteDir: string,
  files: BundleFile[],
  opts: UploadOptions = {},
): Promise<UploadResult> {
  const progress = opts.onProgress ?? (() => {});
  const live = normalizeRemoteDir(remoteDir);
  const prepared = prepareFiles(files, opts.secretDigest);
  const state = await inspect(executor, live, opts);
  const plan = diff(prepared, state, opts.resend);
  if (!plan.changed.length && !plan.removed.length) {
    progress(`${live}: all ${plan.unchanged.length} files unchanged; nothing sent`);
    return { ...plan, swapped: false, bytesSent: 0, remoteDir: live };
  }
  const changed = prepared.filter((f) => plan.changed.includes(f.path));
  const bytesSent = changed.reduce((n, f) => n + f.bytes, 0);
  progress(
    `${live}: sending ${changed.length} files (${bytesSent} bytes), keeping ${plan.unchanged.length}, ` +
      `removing ${plan.removed.length}`,
  );
  const id = swapId();
  const staging = `${live}.staging-${id}`;
  await createStaging(executor, live, staging, state.liveExists);
  await makeDirs(executor, staging, changed, plan.removed, warning(opts));
  await writeFiles(executor, staging, changed, progress);
  await removeFiles(executor, staging, plan.removed);
  const manifestPath = `${staging}/${MANIFEST}`;
  const manifest = formatManifest(prepared, opts.salt);
  // Last: a staging dir with a manifest is complete (not relied on, but it keeps the tree honest).
  await fileStep(executor, 'write manifest', manifestPath, manifest.length, () =>
    executor.files.writeFileAtomic(manifestPath, manifest, 0o600),
  );
  const prev = `${live}.prev-${id}`;
  await swap(executor, live, staging, prev, state.liveExists);
  progress(`${live}: new bundle live`);
  if (state.liveExists) await removePrevious(executor, prev, progress);
  return { ...plan, swapped: true, bytesSent, remoteDir: live };
}

// ---------------------------------------------------------------------------------------------------------
// Upload steps

/** Sortable by time (recovery restores the newest .prev-*), unique per run. */
function swapId(): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/**
 * The staging dir starts as a copy of the live one (the engine's files carry over) or empty on a first
 * deploy. The copy is made of hard links (`cp -al`): a running container's bind-mounted file keeps its
 * inode in the new tree, so deleting the old tree after the swap changes nothing it sees. Every write
 * (here and in the engine) replaces a file by rename, never in place, so the two trees never share a
 * change. 0700: it holds secrets, and the copy takes the live dir's own mode, which an older deploy may
 * have left world-readable.
 */
async function createStaging(executor: Executor, live: string, staging: string, liveExists: boolean) {
  const argv = liveExists
    ? ['sh', '-c', 'mkdir -m 700 -- "$2" && cp -al -- "$1/." "$2/" && chmod 700 -- "$2"', 'sh', live, staging]
    : ['sh', '-c', 'mkdir -p -- "$1" && mkdir -m 700 -- "$2"', 'sh', posix.dirname(live), staging];
  await runStep(executor, liveExists ? 'copy live dir to staging' : 'create staging dir', staging, argv);
}

/**
 * Every ancestor of every changed file, parents first, so `mkdir -p -m 755` gives each one that mode.
 * The staging tree is a copy of the host's, which is never trusted: a directory there that is a symlink
 * (to /etc, say) would take our writes and removals outside the bundle. So every ancestor of a file we
 * write or remove is checked first, parents first, and a symlink is removed from the staging copy (the
 * live tree keeps it until the swap), with a warning naming it; the real directory is then created.
 */
const MAKE_DIRS_SCRIPT = `cd -- "$1" || exit 1
n=$2
shift 2
i=0
for d; do
  i=$((i + 1))
  if [ -L "$d" ]; then
    rm -f -- "$d" || exit 1
    printf '%s\\0' "$d"
  fi
  [ "$i" -le "$n" ] && { mkdir -p -m 755 -- "$d" || exit 1; }
done
exit 0`;

async function makeDirs(
  executor: Executor,
  staging: string,
  changed: readonly Prepared[],
  removed: readonly string[],
  warn: (line: string) => void,
) {
  const ancestors = (paths: readonly string[]) => {
    const dirs = new Set<string>();
    for (const p of paths) for (let d = posix.dirname(p); d !== '.'; d = posix.dirname(d)) dirs.add(d);
    return dirs;
  };
  const make = [...ancestors(changed.map((f) => f.path))].sort();
  const checkOnly = [...ancestors(removed)].filter((d) => !make.includes(d)).sort();
  if (!make.length && !checkOnly.length) return;
  // The ones to create first (parents first among them), then those only checked: a parent of a
  // check-only directory is either in `make` (already handled) or check-only too, and sorts before it.
  const argv = ['sh', '-c', MAKE_DIRS_SCRIPT, 'sh', staging, String(make.length), ...make, ...checkOnly];
  const out = await runStep(executor, 'create sub-directories', staging, argv);
  const links = out.split('\0').filter(Boolean).map(printable);
  if (links.length > 0) {
    warn(
      `${links.join(', ')} in the live dir ${links.length === 1 ? 'was a symlink' : 'were symlinks'}; replaced by a real directory in the new bundle`,
    );
  }
}

/** Contents over SFTP, each file created with its final mode (0600 secrets are never readable by others). */
async function writeFiles(
  executor: Executor,
  staging: string,
  changed: readonly Prepared[],
  progress: (line: string) => void,
) {
  await inPool(changed, WRITE_CONCURRENCY, async (f) => {
    const path = `${staging}/${f.path}`;
    await fileStep(executor, 'write file', path, f.bytes, () =>
      executor.files.writeFileAtomic(path, f.text, f.mode),
    );
    progress(`sent ${f.path} (${f.bytes} bytes, mode ${f.mode.toString(8).padStart(4, '0')})`);
  });
}

async function removeFiles(executor: Executor, staging: string, removed: readonly string[]) {
  if (!removed.length) return;
  const paths = removed.map((p) => `${staging}/${p}`);
  await runStep(executor, 'remove dropped files', staging, ['rm', '-f', '--', ...paths]);
}

/**
 * One remote shell, so the moment without a live dir is two renames long. Should the second rename fail,
 * the old tree is put back at once; a connection lost in between is repaired by the next run's recovery.
 */
async function swap(executor: Executor, live: string, staging: string, prev: string, liveExists: boolean) {
  const argv = liveExists
    ? [
        'sh',
        '-c',
        'mv -- "$1" "$2" && { mv -- "$3" "$1" || { mv -- "$2" "$1"; exit 1; }; }',
        'sh',
        live,
        prev,
        staging,
      ]
    : [
        'sh',
        '-c',
        'if [ -e "$1" ]; then echo "$1 appeared during the upload" >&2; exit 1; fi; mv -- "$2" "$1"',
        'sh',
        live,
        staging,
      ];
  await runStep(executor, 'swap staging into place', live, argv);
}

/** The new bundle is already live: failing to delete the old one is reported, and the next run retries. */
async function removePrevious(executor: Executor, prev: string, progress: (line: string) => void) {
  try {
    await runStep(executor, 'remove previous bundle', prev, ['rm', '-rf', '--', prev]);
  } catch (err) {
    progress(`warning: ${(err as Error).message} (the next upload removes it)`);
  }
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. After the first failure no new item starts, and
 * the failure is thrown once the ones in flight have settled, so nothing keeps writing behind the caller.
 */
async function inPool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}

/** How a file or secret on the host compares with what a provision would upload now. */
export type Verdict = 'same' | 'differs' | 'missing on host' | 'only on host';

export interface FileVerdict {
  path: string;
  status: Verdict;
  note?: string;
  /** Unchanged here since it was sent, but not as sent on the host: provision sends it again. */
  editedOnHost?: true;
}

export interface LocalFile {
  path: string;
  content: string | Buffer;
  mode: number;
}

/**
 * One file: the local version against the manifest (what the last upload sent, which is what provision
 * diffs against), then the host's copy (`remote`, undefined when it is not there) against the manifest,
 * since the manifest alone does not show a file edited on the host. Both through recordedDigest, so the
 * engine's NB_IDP_MGMT_TOKEN line in .secrets.env is neither a change nor an edit. No secret value or
 * file hash is ever in a verdict.
 */
function fileVerdict(
  path: string,
  mine: LocalFile | undefined,
  sent: ManifestEntry | undefined,
  remote: string | undefined,
  secretDigest: SecretDigest,
): FileVerdict {
  if (!mine) return { path, status: 'only on host', note: 'not in the local bundle; provision removes it' };
  if (!sent) return { path, status: 'missing on host', note: 'never uploaded' };
  if (remote === undefined) return { path, status: 'missing on host', note: 'deleted on the host' };
  if (sent.sha256 !== recordedDigest(path, mine.content, mine.mode, secretDigest))
    return { path, status: 'differs', note: 'changed locally' };
  if (sent.mode !== mine.mode)
    return {
      path,
      status: 'differs',
      note: `mode ${mine.mode.toString(8)} locally, ${sent.mode.toString(8)} sent`,
    };
  if (recordedDigest(path, remote, sent.mode, secretDigest) !== sent.sha256)
    return { path, status: 'differs', note: 'edited on the host', editedOnHost: true };
  return { path, status: 'same' };
}

/**
 * Of `paths`, those unchanged locally since they were sent but no longer as sent on the host (`remote`: the
 * host copies, read by the caller): provision sends them again (UploadOptions.resend).
 */
export function editedOnHost(
  paths: readonly string[],
  local: readonly LocalFile[],
  manifest: ManifestFiles,
  remote: Readonly<Record<string, string | undefined>>,
  secretDigest: SecretDigest,
): string[] {
  return paths.filter(
    (path) =>
      fileVerdict(
        path,
        local.find((f) => f.path === path),
        manifest[path],
        remote[path],
        secretDigest,
      ).editedOnHost,
  );
}

/** Every file of the local bundle and of the manifest, as fileVerdict judges it (host copies read as needed). */
export async function compareFiles(
  executor: Executor,
  dir: string,
  local: readonly LocalFile[],
  manifest: ManifestFiles,
  secretDigest: SecretDigest,
): Promise<FileVerdict[]> {
  const byPath = new Map(local.map((f) => [f.path, f]));
  const paths = [...new Set([...byPath.keys(), ...Object.keys(manifest)])].sort();
  return Promise.all(
    paths.map(async (path) => {
      const mine = byPath.get(path);
      const sent = manifest[path];
      const remote = mine && sent ? await executor.files.readFile(`${dir}/${path}`) : undefined;
      return fileVerdict(path, mine, sent, remote, secretDigest);
    }),
  );
}
