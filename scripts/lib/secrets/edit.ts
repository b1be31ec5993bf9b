/**
 * `secrets edit`: the SOPS file in the operator's editor, as `sops FILE` does, without the sops binary.
 *
 * The decrypted document is written as YAML to a 0600 file (mode given at creation) in a 0700 directory on
 * a memory file system ($XDG_RUNTIME_DIR when it is ours and 0700, else /dev/shm; the OS temp directory
 * only with a warning). The editor gets the file's path and nothing else. Once it exits, the text is read
 * back as sops would read it (go-yaml types) and checked against the schema; a problem is listed (never a
 * value) and, on a terminal, the editor may be re-opened on the operator's own text. Nothing is written
 * unless the result is valid; then only the changed keys' ENC[...] change (rewrite.ts). The plaintext
 * directory is removed on every path: success, failure, abort, SIGINT/SIGTERM (through the run context's
 * clean-up) and SIGHUP, and the editor is stopped with the command. SIGKILL skips all of that: the next
 * edit removes what such a run left (removeLeftovers).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  lstatSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import { childEnv } from '../core/child-env.ts';
import { EXIT, InputError, WorkError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { ask } from '../core/prompt.ts';
import { fingerprint } from '../core/redact.ts';
import { InterruptedError, runContext } from '../core/run-context.ts';
import { FINGERPRINT_KEY, registerSecrets } from './registry.ts';
import { specOf, unknownKeyProblem } from './schema.ts';
import { checkAllowRotate, refuseNeverRotate, refusePlain, valueProblems } from './set.ts';
import {
  Branch,
  Comment,
  commitSops,
  GoTime,
  type OpenedSops,
  openSops,
  type Pair,
  registerLeaves,
  rewriteSops,
  shlexSplit,
  type Value,
  yamlStore,
} from './sops/index.ts';

export interface EditOptions {
  file: string;
  /** Accept keys the schema does not know (added or changed). */
  allowUnknown?: boolean;
  /** Never-rotated keys that may be changed (or removed) all the same. */
  allowRotate?: readonly string[];
  /** Refuse a hand-made token whose format is not its vendor's (otherwise a warning). */
  strict?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Where the operator is told what happens (never a value). */
  ui: { info(line: string): void; warn(line: string): void };
  /** Whether stdin and stdout are a terminal: without one, no fallback editor is opened. */
  terminal: boolean;
  /** Asked after a refused edit; undefined (no terminal): the edit is abandoned at once. */
  reopen?: () => Promise<boolean>;
}

export interface KeyChange {
  key: string;
  action: 'added' | 'changed' | 'removed';
  /** Characters of the new value (a string value only). */
  length?: number;
  /** Keyed fingerprint of the new value when the file holds FINGERPRINT_KEY. */
  fingerprint?: string;
}

export interface EditResult {
  file: string;
  /** 'unchanged': the editor left the document as it was (or changed no value); nothing was written. */
  action: 'written' | 'unchanged';
  changes: KeyChange[];
  /** Top-level keys whose value stayed as it was. */
  unchanged: number;
  warnings: string[];
}

/** Where the plaintext may go: the directory to make a 0700 temp dir in, and whether it is in memory. */
export interface EditBase {
  base: string;
  inMemory: boolean;
  /** Why $XDG_RUNTIME_DIR was passed over, when it was set. */
  note?: string;
}

const SHM = '/dev/shm';

/** $XDG_RUNTIME_DIR when it is a 0700 directory of ours, else /dev/shm when writable, else the temp dir. */
export function editBase(env: NodeJS.ProcessEnv, shm = SHM, tmp = tmpdir()): EditBase {
  const xdg = env.XDG_RUNTIME_DIR;
  let note: string | undefined;
  if (xdg) {
    const st = statOrUndefined(xdg);
    const ours = st && (process.getuid === undefined || st.uid === process.getuid());
    if (isAbsolute(xdg) && st?.isDirectory() && ours && (st.mode & 0o777) === 0o700)
      return { base: xdg, inMemory: true };
    note = `XDG_RUNTIME_DIR (${xdg}) is not a 0700 directory of yours; not used`;
  }
  try {
    if (statSync(shm).isDirectory()) {
      accessSync(shm, fsConstants.W_OK | fsConstants.X_OK);
      return { base: shm, inMemory: true, ...(note ? { note } : {}) };
    }
  } catch {
    // No /dev/shm (macOS) or not writable: the temp directory, with a warning.
  }
  return { base: tmp, inMemory: false, ...(note ? { note } : {}) };
}

/**
 * The plaintext directory's name says whose it is: `secrets-edit-UID-NS-PID-XXXXXX`, the user, the pid
 * namespace (a container sharing the directory counts its pids apart) and the process of the edit. A
 * later edit removes one whose process is gone: SIGKILL skips every clean-up, and /dev/shm keeps the
 * plaintext until reboot.
 */
const LEFTOVER = /^secrets-edit-(\d+)-(\d+)-(\d+)-[A-Za-z0-9]+$/;

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid').replace(/\D/g, '') || '0';
  } catch {
    return '0';
  }
}

function editDirPrefix(): string {
  return `secrets-edit-${process.getuid?.() ?? 0}-${pidNamespace()}-${process.pid}-`;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes, from each of `bases`, the plaintext directories of earlier edits of this user whose process
 * is gone; returns what it removed. Only a real 0700 directory of ours whose name is one `edit` makes,
 * in this pid namespace: never a symlink, never a live edit's.
 */
export function removeLeftovers(bases: Iterable<string>): string[] {
  const uid = process.getuid?.();
  const ns = pidNamespace();
  const removed: string[] = [];
  for (const base of new Set(bases)) {
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = LEFTOVER.exec(name);
      if (!m || (uid !== undefined && Number(m[1]) !== uid) || m[2] !== ns) continue;
      const pid = Number(m[3]);
      if (pid === process.pid || processAlive(pid)) continue;
      const dir = join(base, name);
      const st = lstatOrUndefined(dir);
      if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o777) !== 0o700)
        continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The editor to open: its argv without the file, and where it came from. */
export interface Editor {
  argv: string[];
  /** $VISUAL, $EDITOR, or neither: then the first of vim, nano, vi on PATH, as sops picks one. */
  from: 'VISUAL' | 'EDITOR' | 'fallback';
}

/** $VISUAL, else $EDITOR (split as sops splits it), else vim/nano/vi. */
export function editorCommand(env: NodeJS.ProcessEnv): Editor {
  for (const name of ['VISUAL', 'EDITOR'] as const) {
    const raw = env[name]?.trim();
    if (!raw) continue;
    let words: string[];
    try {
      words = shlexSplit(raw);
    } catch {
      throw new InputError(`$${name} has an unclosed quote`, `fix $${name}, e.g. EDITOR=vim`);
    }
    if (words.length) return { argv: words, from: name };
  }
  const found = ['vim', 'nano', 'vi'].find((e) => onPath(e, env.PATH ?? ''));
  return { argv: [found ?? 'vi'], from: 'fallback' };
}

/**
 * The editor for this run. The fallback is opened on a terminal only: without one, vi writes the
 * decrypted document to stdout (a CI log) and then waits for keys that never come.
 */
export function chooseEditor(env: NodeJS.ProcessEnv, terminal: boolean): Editor {
  const editor = editorCommand(env);
  if (editor.from === 'fallback' && !terminal)
    throw new InputError(
      `no editor: set EDITOR or VISUAL; stdin or stdout is not a terminal, so ${editor.argv[0]} is not opened (it would print the decrypted file there and wait)`,
      'run it as EDITOR=nano just secrets-edit (an editor that returns when the file is closed, e.g. EDITOR="code --wait"), or on a terminal; to change one key without an editor: printf %s "$VALUE" | just secrets-set KEY',
    );
  return editor;
}

function onPath(name: string, path: string): boolean {
  return path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, name), fsConstants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Same value, same Go type (int, float, string, time...), comments aside. */
function canonical(value: Value): unknown {
  if (value instanceof Branch) return ['map', value.pairs().map((p) => [p.key, canonical(p.value)])];
  if (Array.isArray(value))
    return ['list', value.filter((v) => !(v instanceof Comment)).map((v) => canonical(v as Value))];
  if (typeof value === 'bigint') return ['int', value.toString()];
  if (typeof value === 'number') return ['float', Object.is(value, -0) ? '-0' : String(value)];
  if (value instanceof GoTime) return ['time', value.nano];
  return [typeof value, value];
}

const sameValue = (a: Value, b: Value) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

interface Review {
  problems: string[];
  warnings: string[];
  next?: Branch;
  changes: KeyChange[];
}

/** The edited text as sops would read it, checked: problems (never a value) or the new document. */
export function reviewEdit(
  opened: OpenedSops,
  text: string,
  opts: Pick<EditOptions, 'allowUnknown' | 'allowRotate' | 'strict'>,
): Review {
  const none = { warnings: [], changes: [] };
  let branch: Branch;
  try {
    const parsed = yamlStore.loadPlainFile(text, 'the edited document');
    if (parsed.branches.length !== 1)
      return {
        ...none,
        problems: [
          parsed.branches.length === 0
            ? 'the edited document is empty (to remove every key, delete the file instead)'
            : `the edited text holds ${parsed.branches.length} YAML documents; ${opened.file} holds one`,
        ],
      };
    if (parsed.metadata !== undefined)
      return { ...none, problems: ['the edited document has a top-level sops key: that name is reserved'] };
    branch = parsed.branches[0] as Branch;
  } catch (err) {
    if (err instanceof InputError) return { ...none, problems: [err.message] };
    return { ...none, problems: ['the edited document could not be read as YAML'] };
  }
  // Every new value is known to the redactor before anything is said; fingerprints keep the file's key.
  registerLeaves(branch);
  const old = new Map(opened.branch.pairs().map((p) => [p.key, p.value]));
  const oldKey = old.get(FINGERPRINT_KEY);
  if (typeof oldKey === 'string') registerSecrets({ [FINGERPRINT_KEY]: oldKey });

  const problems: string[] = [];
  const warnings: string[] = [];
  const changes: KeyChange[] = [];
  const neverRotate = (key: string, current: Value | undefined) => {
    try {
      refuseNeverRotate(key, typeof current === 'string' ? current : undefined, opts.allowRotate);
    } catch (err) {
      const e = err as InputError;
      problems.push(`${e.message} (${e.hint})`);
    }
  };
  const pairs: Pair[] = [];
  for (const pair of branch.pairs()) {
    const { key, value } = pair;
    const before = old.get(key);
    if (before !== undefined && sameValue(before, value)) {
      // Unchanged: the file's own value (comments included), so its lines stay as they are.
      pairs.push({ key, value: before });
      continue;
    }
    pairs.push(pair);
    const spec = specOf(key);
    const change: KeyChange = { key, action: old.has(key) ? 'changed' : 'added' };
    if (typeof value === 'string') {
      change.length = [...value].length;
      const fp = fingerprint(value);
      if (fp) change.fingerprint = fp;
    }
    changes.push(change);
    if (!spec && !opts.allowUnknown) {
      problems.push(`${unknownKeyProblem(key)} (check the spelling; --allow-unknown accepts it)`);
      continue;
    }
    if (typeof value !== 'string') {
      if (spec) problems.push(`${key}: must be a string (quote it)`);
      continue;
    }
    if (value === '') {
      problems.push(`${key}: empty (remove the key instead)`);
      continue;
    }
    const found = valueProblems(key, value, opts.strict);
    problems.push(...found.errors);
    warnings.push(...found.warnings);
    if (spec && before !== undefined) neverRotate(key, before);
  }
  const kept = new Set(pairs.map((p) => p.key));
  for (const [key, value] of old) {
    if (kept.has(key)) continue;
    changes.push({ key, action: 'removed' });
    neverRotate(key, value);
  }
  return { problems, warnings, changes, next: problems.length ? undefined : new Branch(pairs) };
}

/** The temp directory and the editor child: removed and stopped on every path, signals included. */
class PlaintextCopy {
  child: ChildProcess | undefined;
  private removed = false;
  private readonly offCleanup: () => void;
  private readonly onHup = () => {
    this.removeNow();
    try {
      process.stderr.write(
        `error: interrupted by SIGHUP during edit: ${this.file} is unchanged; the plaintext copy was removed\n`,
      );
    } catch {
      // The terminal is gone.
    }
    process.exit(129);
  };
  private readonly onExit = () => this.removeNow();

  constructor(
    readonly dir: string,
    readonly path: string,
    private readonly file: string,
  ) {
    this.offCleanup = runContext.onCleanup({
      what: `removing the plaintext copy in ${dir}`,
      done: 'the plaintext copy was removed',
      run: async () => this.removeNow(),
    });
    process.on('SIGHUP', this.onHup);
    process.on('exit', this.onExit);
  }

  removeNow(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null)
      this.child.kill('SIGKILL');
    if (this.removed) return;
    rmSync(this.dir, { recursive: true, force: true });
    this.removed = true;
  }

  close(): void {
    this.removeNow();
    process.off('SIGHUP', this.onHup);
    process.off('exit', this.onExit);
    // After an interrupt the step stays registered, so the report says the copy was removed.
    if (!runContext.interrupted) this.offCleanup();
  }
}

/** Runs the editor on the file, stdio inherited; an interrupt stops it (SIGTERM, then SIGKILL). */
function runEditor(words: string[], copy: PlaintextCopy, env: NodeJS.ProcessEnv): Promise<void> {
  runContext.throwIfStopped();
  const [command = 'vi', ...args] = words;
  return new Promise((resolve, reject) => {
    // The file's path and the environment less every secret (child-env.ts): nothing else of ours.
    const child = spawn(command, [...args, copy.path], { stdio: 'inherit', env: childEnv({ base: env }) });
    copy.child = child;
    let timer: NodeJS.Timeout | undefined;
    const off = runContext.onStop(() => {
      child.kill('SIGTERM');
      timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      timer.unref();
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      off();
      reject(
        err.code === 'ENOENT'
          ? new InputError(
              `the editor ${command} was not found`,
              'set $EDITOR (or $VISUAL), e.g. EDITOR=nano',
            )
          : new WorkError(`the editor ${command} could not be started: ${err.code ?? err.message}`),
      );
    });
    child.on('exit', (code, signal) => {
      off();
      clearTimeout(timer);
      if (runContext.interrupted) return reject(new InterruptedError(runContext.interrupted));
      if (code === 0) return resolve();
      reject(
        new WorkError(
          `the editor ${command} ${signal ? `was stopped by ${signal}` : `exited with status ${code}`}; nothing was written`,
          'run edit again',
        ),
      );
    });
  });
}

/** The whole flow: decrypt, edit (again while refused and the operator wants), validate, write. */
export async function editSecrets(opts: EditOptions): Promise<EditResult> {
  const env = opts.env ?? process.env;
  const { file, ui } = opts;
  const editor = chooseEditor(env, opts.terminal);
  checkAllowRotate(opts.allowRotate);
  const words = editor.argv;
  const opened = await openSops(file, env);
  const warnings = [...opened.warnings];
  const where = editBase(env);
  if (where.note) ui.warn(where.note);
  if (!where.inMemory)
    ui.warn(
      `no memory file system ($XDG_RUNTIME_DIR, /dev/shm): the plaintext goes to ${where.base} on disk while you edit (removed afterwards)`,
    );
  for (const dir of removeLeftovers([where.base, SHM, tmpdir()]))
    ui.warn(`removed the plaintext copy an interrupted edit left behind (its process is gone): ${dir}`);
  runContext.setPhase('edit', `${file} is unchanged`);
  const dir = await mkdtemp(join(where.base, editDirPrefix()));
  const copy = new PlaintextCopy(dir, join(dir, basename(file).replace(/\.sops(\.ya?ml)$/, '$1')), file);
  try {
    const original = yamlStore.emitPlainFile([opened.branch], file);
    await writeFile(copy.path, original, { mode: 0o600, flag: 'wx' });
    let review: Review;
    // Said before it starts: a full-screen editor hides everything printed after.
    if (editor.from === 'fallback')
      ui.warn(`EDITOR is not set: opening ${words[0]} (set EDITOR or VISUAL to use another editor)`);
    for (;;) {
      ui.info(`editing ${file} in ${words[0]} (plaintext in ${dir}, removed afterwards)`);
      await runEditor(words, copy, env);
      const text = await readFile(copy.path, 'utf8');
      if (text === original) return unchanged(file, opened, warnings);
      review = reviewEdit(opened, text, opts);
      if (!review.problems.length) break;
      ui.warn(
        `the edited document was not written (${review.problems.length} problem(s)):\n${review.problems.map((p) => `  - ${p}`).join('\n')}`,
      );
      if (!opts.reopen || !(await opts.reopen()))
        throw new InputError(
          `${file} is unchanged: the edit was abandoned`,
          'run edit again (the edit was not kept)',
        );
    }
    warnings.push(...review.warnings);
    const next = review.next as Branch;
    if (!review.changes.length) return unchanged(file, opened, warnings);
    runContext.setPhase('write', `${file} is unchanged or fully written, never half`);
    const written = await rewriteSops(opened, next);
    refusePlain(
      file,
      written.plainKeys,
      review.changes.filter((c) => c.action !== 'removed').map((c) => c.key),
    );
    await commitSops(opened, written.text);
    return {
      file,
      action: 'written',
      changes: review.changes,
      unchanged: next.pairs().length - review.changes.filter((c) => c.action !== 'removed').length,
      warnings,
    };
  } finally {
    copy.close();
  }
}

function unchanged(file: string, opened: OpenedSops, warnings: string[]): EditResult {
  return { file, action: 'unchanged', changes: [], unchanged: opened.branch.pairs().length, warnings };
}

/** `secrets edit`: the edit on this terminal (re-opened on a refused edit when asked), then what changed. */
export async function secretsEdit(
  opts: Omit<EditOptions, 'ui' | 'terminal' | 'reopen'>,
  out: Output,
): Promise<number> {
  const terminal = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  const result = await editSecrets({
    ...opts,
    // The editor draws on stdout and reads stdin: both must be the terminal.
    terminal: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    ui: out,
    reopen: terminal
      ? async () => !/^n(o)?$/i.test((await ask('re-open the editor? [Y/n] ')).trim())
      : undefined,
  });
  for (const warning of result.warnings) out.warn(warning);
  for (const c of result.changes) {
    const shown =
      c.length === undefined ? '' : ` (${c.length} chars${c.fingerprint ? `, ${c.fingerprint}` : ''})`;
    out.info(out.color.green(`${c.action.padEnd(10)} ${c.key}${shown}`));
  }
  out.info(
    result.action === 'unchanged'
      ? `no changes; nothing written to ${result.file}`
      : `unchanged  ${result.unchanged} key(s); wrote ${result.file}`,
  );
  out.result({ ok: true, ...result });
  return EXIT.ok;
}
