import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Decrypter } from 'age-encryption';
import { childEnv } from '../../core/child-env.ts';
import { InputError } from '../../core/errors.ts';
import { notRegular } from '../../core/file-kind.ts';
import { readBoundedText } from '../../core/read-bounded.ts';
import { killTree } from '../../exec/local.ts';
import { fileModeWarning, formatTimeout, sopsTimeoutMs, TIMEOUT_VARIABLE } from './limits.ts';

/**
 * Where sops looks for age identities (`age/keysource.go`: loadIdentities), in its order. sops
 * ≥ 3.11 loads every source and uses them together, reporting the problems only when no identity
 * decrypts the data key; this does the same.
 */
export interface IdentitySearch {
  identities: string[];
  /** Every place looked at and what was found there, for error messages. No key material. */
  searched: string[];
  /** What could not be used (unreadable file, SSH or plugin key, …), also without key material. */
  problems: string[];
}

const NOT_NATIVE = 'not supported natively; install the sops binary to use it';

function count(n: number): string {
  return n === 1 ? '1 identity' : `${n} identities`;
}

function isValidIdentity(identity: string): boolean {
  try {
    new Decrypter().addIdentity(identity);
    return true;
  } catch {
    return false;
  }
}

/** What a token that is no age identity looks like, never quoting it (it may be most of a secret key). */
function notAnIdentity(token: string): string {
  if (/^age1[02-9ac-hj-np-z]+$/.test(token))
    return 'is an age public key (age1…), not the secret key (AGE-SECRET-KEY-1…)';
  if (/^AGE-SECRET-KEY-/i.test(token)) return 'is not a valid age secret key (cut short or mistyped?)';
  return 'is not an age identity (AGE-SECRET-KEY-1…)';
}

/**
 * A keys file: one identity per line; empty lines and lines starting with `#` skipped; only a
 * trailing `\r` removed. `SOPS_AGE_KEY` (sops ≥ 3.13) may also hold several keys on one line.
 */
function parseIdentities(
  text: string,
  label: string,
  splitOnSpaces = false,
): { identities: string[]; problems: string[] } {
  const identities: string[] = [];
  const problems: string[] = [];
  const start = text.trimStart();
  if (start.startsWith('-----BEGIN AGE ENCRYPTED FILE-----') || start.startsWith('age-encryption.org/')) {
    return { identities, problems: [`${label} is a passphrase-encrypted keys file: ${NOT_NATIVE}`] };
  }
  if (/^-----BEGIN [A-Z ]*PRIVATE KEY-----/m.test(text)) {
    return { identities, problems: [`${label} holds an SSH private key: ${NOT_NATIVE}`] };
  }
  text.split('\n').forEach((rawLine, index) => {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line === '' || line.startsWith('#')) return;
    for (const token of splitOnSpaces ? line.split(/\s+/).filter(Boolean) : [line]) {
      if (token.startsWith('AGE-PLUGIN-'))
        problems.push(`${label} line ${index + 1} is a plugin identity: ${NOT_NATIVE}`);
      else if (isValidIdentity(token)) identities.push(token);
      else problems.push(`${label} line ${index + 1} ${notAnIdentity(token)}`);
    }
  });
  return { identities, problems };
}

/** Go `os.UserConfigDir()` + `sops/age/keys.txt`, from `env` only (tests pass an isolated env). */
export function defaultKeysFile(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  if (platform === 'win32') return env.APPDATA ? join(env.APPDATA, 'sops', 'age', 'keys.txt') : undefined;
  // sops ≥ 3.8.1 honours XDG_CONFIG_HOME on macOS too.
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'sops', 'age', 'keys.txt');
  if (!env.HOME) return undefined;
  if (platform === 'darwin')
    return join(env.HOME, 'Library', 'Application Support', 'sops', 'age', 'keys.txt');
  return join(env.HOME, '.config', 'sops', 'age', 'keys.txt');
}

/** google/shlex as sops uses it: words split on blanks, '…' literal, "…" and \ escapes, # comments. */
export function shlexSplit(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < command.length; i++) {
    const ch = command.charAt(i);
    const escaped = ch === '\\' && i + 1 < command.length;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else word += escaped ? command.charAt(++i) : ch;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (ch === '#' && !inWord) {
      break;
    } else {
      inWord = true;
      if (ch === "'" || ch === '"') quote = ch;
      else word += escaped ? command.charAt(++i) : ch;
    }
  }
  if (quote) throw new Error('unclosed quote');
  if (inWord) words.push(word);
  return words;
}

/** A system error code as the operator reads it: `permission denied, EACCES`. */
const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'not found',
  ENOTDIR: 'a component of the path is not a directory',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error',
  ENAMETOOLONG: 'the name is too long',
};

function whyUnreadable(code: string): string {
  const text = ERRNO_TEXT[code];
  return text ? `${text}, ${code}` : code;
}

function runKeyCommand(
  argv: string[],
  env: NodeJS.ProcessEnv,
  timeout: number,
): Promise<{ stdout: string; failure?: string }> {
  const [file = '', ...args] = argv;
  return new Promise((resolve) => {
    let killed = false;
    // No shell, like sops; stdin closed, stderr kept out of our output (it may say anything).
    const child = execFile(file, args, { env, maxBuffer: 1 << 20 }, (err, stdout) => {
      clearTimeout(deadline);
      if (!err) return resolve({ stdout });
      const code = (err as NodeJS.ErrnoException).code;
      const failure = killed
        ? `timed out after ${formatTimeout(timeout)} and was killed (if it is only slow, raise ${TIMEOUT_VARIABLE})`
        : typeof code === 'string'
          ? `cannot run it (${whyUnreadable(code)})`
          : `exited with code ${code ?? 'unknown'}`;
      resolve({ stdout: '', failure });
    });
    // Our own deadline, for the whole process tree: a wrapper script's child would hold the pipes open.
    const deadline = setTimeout(() => {
      killed = true;
      killTree(child.pid, 'SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, timeout);
    child.stdin?.end();
  });
}

/** Capped and non-blocking (read-bounded.ts), as every local configuration read. */
const AGE_KEYS_READ = { what: '', kind: 'ageKeys', hint: 'give the path of an age keys file' } as const;

async function fromFile(
  path: string,
  label: string,
  search: IdentitySearch,
  mustExist: boolean,
): Promise<void> {
  let text: string;
  try {
    // Never opened unless a regular file: a FIFO would block, /dev/zero would never end.
    const kind = notRegular(await stat(path));
    if (kind) {
      search.searched.push(`${label}: ${kind}, not read`);
      search.problems.push(`${label} is ${kind}, not a regular file`);
      return;
    }
    text = await readBoundedText(path, AGE_KEYS_READ);
  } catch (err) {
    if (err instanceof InputError) {
      search.searched.push(`${label}: not read`);
      search.problems.push(err.message);
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    const why = whyUnreadable(code);
    search.searched.push(`${label}: ${code === 'ENOENT' ? 'not found' : `cannot read (${why})`}`);
    if (mustExist || code !== 'ENOENT')
      search.problems.push(`${label} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${why})`}`);
    return;
  }
  const found = parseIdentities(text, label);
  search.identities.push(...found.identities);
  search.problems.push(...found.problems);
  search.searched.push(`${label}: ${count(found.identities.length)}`);
}

/**
 * Loads every identity sops would. `recipient`, when given, is passed to `SOPS_AGE_KEY_CMD` as
 * `SOPS_AGE_RECIPIENT` (sops ≥ 3.12 runs the command once per age recipient it tries). `sopsRan`: the
 * sops binary has decrypted already, so its key command is not run a second time, and the SSH
 * identities it reads itself are no problem.
 */
export async function loadAgeIdentities(
  env: NodeJS.ProcessEnv,
  recipient?: string,
  opts: { sopsRan?: boolean } = {},
): Promise<IdentitySearch> {
  const search: IdentitySearch = { identities: [], searched: [], problems: [] };
  for (const name of ['SOPS_AGE_SSH_PRIVATE_KEY_FILE', 'SOPS_AGE_SSH_PRIVATE_KEY_CMD']) {
    if (env[name] && !opts.sopsRan)
      search.problems.push(`${name} is set, but SSH identities are ${NOT_NATIVE}`);
  }

  if (env.SOPS_AGE_KEY) {
    const found = parseIdentities(env.SOPS_AGE_KEY, 'SOPS_AGE_KEY', true);
    search.identities.push(...found.identities);
    search.problems.push(...found.problems);
    search.searched.push(`SOPS_AGE_KEY: ${count(found.identities.length)}`);
  } else {
    search.searched.push('SOPS_AGE_KEY: not set');
  }

  if (env.SOPS_AGE_KEY_FILE) {
    await fromFile(env.SOPS_AGE_KEY_FILE, `SOPS_AGE_KEY_FILE=${env.SOPS_AGE_KEY_FILE}`, search, true);
  } else {
    search.searched.push('SOPS_AGE_KEY_FILE: not set');
  }

  const keyCmd = opts.sopsRan ? undefined : env.SOPS_AGE_KEY_CMD;
  if (keyCmd) {
    const label = `SOPS_AGE_KEY_CMD (${keyCmd})`;
    let argv: string[] = [];
    try {
      argv = shlexSplit(keyCmd);
    } catch {
      search.problems.push(`${label} has an unclosed quote`);
    }
    if (argv.length > 0) {
      // Its own environment less every secret and the other key sources (child-env.ts), plus the recipient.
      const keyEnv = childEnv({ base: env, extra: recipient ? { SOPS_AGE_RECIPIENT: recipient } : {} });
      const result = await runKeyCommand(argv, keyEnv, sopsTimeoutMs(env));
      if (result.failure) search.problems.push(`${label} ${result.failure}`);
      const found = parseIdentities(result.stdout, label);
      search.identities.push(...found.identities);
      search.problems.push(...found.problems);
      search.searched.push(`${label}: ${result.failure ? result.failure : count(found.identities.length)}`);
    } else {
      search.searched.push(`${label}: no command to run`);
    }
  } else {
    search.searched.push(`SOPS_AGE_KEY_CMD: ${env.SOPS_AGE_KEY_CMD ? 'not run' : 'not set'}`);
  }

  const defaultFile = defaultKeysFile(env);
  if (defaultFile) await fromFile(defaultFile, defaultFile, search, false);
  else search.searched.push('default keys file: HOME (or XDG_CONFIG_HOME) is not set');

  search.identities = [...new Set(search.identities)];
  return search;
}

/** How a key source that failed is said once another key opened the file: named, why, never its key. */
export function ignoredSource(problem: string, file: string): string {
  return `${problem}: ignored (another age key opened ${file})`;
}

/**
 * After the sops binary decrypted `file`: the key sources it passed over in silence (sops ≥ 3.11 reports
 * them only when no key works), as the native decryptor names them. The files and SOPS_AGE_KEY only:
 * SOPS_AGE_KEY_CMD ran inside sops, and running it again could prompt or touch a token a second time.
 */
export async function passedOverSources(env: NodeJS.ProcessEnv, file: string): Promise<string[]> {
  const search = await loadAgeIdentities(env, undefined, { sopsRan: true });
  return search.problems.map((p) => ignoredSource(p, file));
}

/**
 * A warning for each age keys file sops would read (SOPS_AGE_KEY_FILE, the default file) that its
 * group or other users can read.
 */
export async function keyFileWarnings(env: NodeJS.ProcessEnv): Promise<string[]> {
  const files = new Set([env.SOPS_AGE_KEY_FILE, defaultKeysFile(env)].filter((f): f is string => Boolean(f)));
  const warnings = await Promise.all([...files].map((f) => fileModeWarning('the age key file', f)));
  return warnings.filter((w): w is string => w !== undefined);
}

/** Every age identity sops would load from `env`, where it looked, and what it could not use. */
export function findAgeIdentities(env: NodeJS.ProcessEnv = process.env): Promise<IdentitySearch> {
  return loadAgeIdentities(env);
}
