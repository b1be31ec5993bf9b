import { stat } from 'node:fs/promises';
import { InputError } from '../../core/errors.ts';
import { type BoundedRead, readBounded } from '../../core/read-bounded.ts';
import { shellQuote } from '../../exec/executor.ts';

/**
 * What a SOPS file read here may hold, so that a hostile or broken file ends in an `InputError`
 * naming the limit instead of a stack overflow, an out-of-memory or minutes of CPU. A homelab
 * secrets file is a few KiB with a few dozen keys; every limit is far above that.
 */
export const LIMITS = {
  /** How deep maps and lists may nest inside a document. */
  depth: 100,
  /** The length of one key or value as written in the file (an encrypted value included). */
  valueChars: 1024 * 1024,
  /** Keys and list items in the whole file, every level counted. */
  items: 200_000,
} as const;

const INSTALL_SOPS =
  'if the file is genuine, decrypt it with the sops binary (https://github.com/getsops/sops)';

/** A key path for a message: a path nested a hundred levels deep is shortened to its start. */
function place(where: string): string {
  if (!where) return 'the top level';
  return where.length > 80 ? `${where.slice(0, 80)}…` : where;
}

/** Counts what a parser reads against LIMITS; each failure names the file, the place and the limit. */
export class Budget {
  private items = 0;

  constructor(private readonly file: string) {}

  /** A map or list opened at `depth` (the top-level map is depth 1). */
  nest(depth: number, where: string): void {
    if (depth > LIMITS.depth) {
      throw new InputError(
        `${this.file}: maps and lists nest more than ${LIMITS.depth} levels deep at ${place(where)} (limit: ${LIMITS.depth})`,
        INSTALL_SOPS,
      );
    }
  }

  /** One key or list item. */
  item(where: string): void {
    if (++this.items > LIMITS.items) {
      throw new InputError(
        `${this.file}: more than ${LIMITS.items} keys and list items (limit: ${LIMITS.items}), the last at ${place(where)}`,
        INSTALL_SOPS,
      );
    }
  }

  /** A key or value of `length` characters. */
  text(length: number, where: string, what: 'key' | 'value' = 'value'): void {
    if (length > LIMITS.valueChars) {
      throw new InputError(
        `${this.file}: the ${what} at ${place(where)} is ${length} characters long (limit: ${LIMITS.valueChars}, 1 MiB)`,
        INSTALL_SOPS,
      );
    }
  }
}

/** The message for a parser that ran out of stack despite the depth limit (a flow collection it recurses on). */
export function tooDeep(file: string): InputError {
  return new InputError(
    `${file}: maps and lists nest too deeply to read (limit: ${LIMITS.depth} levels)`,
    INSTALL_SOPS,
  );
}

// ---- Deadlines -------------------------------------------------------------------------------------

export const TIMEOUT_VARIABLE = 'SECRETS_FLOW_SOPS_TIMEOUT';
const DEFAULT_TIMEOUT_SECONDS = 30;

/** The deadline for the sops binary and for `SOPS_AGE_KEY_CMD`: 30 s unless SECRETS_FLOW_SOPS_TIMEOUT says otherwise. */
export function sopsTimeoutMs(env: NodeJS.ProcessEnv): number {
  const raw = env[TIMEOUT_VARIABLE];
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_SECONDS * 1000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new InputError(
      `${TIMEOUT_VARIABLE} must be a number of seconds above 0, not "${raw}"`,
      `unset it for the default of ${DEFAULT_TIMEOUT_SECONDS} s`,
    );
  }
  return Math.max(1, Math.round(seconds * 1000));
}

export function formatTimeout(ms: number): string {
  return `${ms / 1000} s`;
}

// ---- The file itself -------------------------------------------------------------------------------

const SECRETS_READ: BoundedRead = {
  what: '',
  kind: 'secretsFile',
  hint: 'pass the path of the SOPS file itself',
  sizeHint: 'check that this is the right file',
};

function cannotRead(path: string, err: unknown): InputError {
  if (err instanceof InputError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new InputError(`${path} does not exist`, 'check the path');
  return new InputError(
    `cannot read ${path} (${code ?? 'unknown error'})`,
    'check the path and its permissions',
  );
}

/** Reads a SOPS file through the bounded reader (read-bounded.ts): checked, opened non-blocking, capped. */
export async function readSecretsFile(path: string): Promise<{ text: string; mode: number }> {
  try {
    const { data, stat: st } = await readBounded(path, SECRETS_READ);
    return { text: data.toString('utf8'), mode: st.mode };
  } catch (err) {
    throw cannotRead(path, err);
  }
}

// ---- Permissions -----------------------------------------------------------------------------------

/** A warning when `mode` lets group or others at `path`; undefined when only the owner can. */
export function modeWarning(what: string, path: string, mode: number): string | undefined {
  if (process.platform === 'win32' || (mode & 0o077) === 0) return undefined;
  const who = [mode & 0o070 ? 'its group' : '', mode & 0o007 ? 'all other users' : ''].filter(Boolean);
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  return `${what} ${path} is open to ${who.join(' and ')} (mode ${octal}); fix: chmod 600 ${shellQuote(path)}`;
}

/** modeWarning for a file that may not exist (then no warning). */
export async function fileModeWarning(what: string, path: string): Promise<string | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? modeWarning(what, path, st.mode) : undefined;
  } catch {
    return undefined;
  }
}
