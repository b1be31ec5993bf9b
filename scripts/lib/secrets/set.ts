/**
 * `secrets set KEY`: one value into the SOPS file with the smallest diff sops itself could make. The file is
 * decrypted with its own data key (the operator's age identity opens it), only KEY's `ENC[...]` is written
 * anew (a new key goes at the end of the top-level map), and `sops.lastmodified` and `sops.mac` are
 * recomputed; every other byte of the file stays as it was. The value never comes from argv.
 */

import { readFile, stat } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { InputError, WorkError } from '../errors.ts';
import { writeLocalFileAtomic } from '../exec/local.ts';
import { ask } from '../prompt.ts';
import { fingerprint } from '../redact.ts';
import { registerSecrets } from './registry.ts';
import { CONSUMERS, type ConsumerId, specOf } from './schema.ts';
import { keyFileWarnings } from './sops/age-keys.ts';
import { encryptValue } from './sops/cipher.ts';
import { recoverDataKey } from './sops/data-key.ts';
import { decryptToTree, readSopsFile } from './sops/decrypt.ts';
import { MacHasher, macBytes } from './sops/mac.ts';
import { parseMetadata } from './sops/metadata.ts';
import { compileRules } from './sops/rules.ts';
import { formatForPath, parseStore } from './sops/stores.ts';
import { aadOf, Branch, Comment, type Pair, toPlain, walkBranch } from './sops/tree.ts';
import { findProblems, shapeProblem } from './validate.ts';

export interface SetOptions {
  file: string;
  key: string;
  value: string;
  /** Accept a key the schema does not know. */
  allowUnknown?: boolean;
  /** Keys whose rotation is `never` that may be changed all the same. */
  allowRotate?: readonly string[];
  /** Refuse a hand-made token whose format is not its vendor's (otherwise a warning). */
  strict?: boolean;
  env?: NodeJS.ProcessEnv;
  /** The new `lastmodified` (tests pin it). */
  now?: Date;
}

export interface SetResult {
  file: string;
  key: string;
  action: 'added' | 'changed' | 'unchanged';
  /** Characters of the new value. */
  length: number;
  /** Keyed fingerprint (`hmac:…`) when the file holds FINGERPRINT_KEY. */
  fingerprint?: string;
  /** What the operator should know (file mode, an unexpected vendor format); never a value. */
  warnings: string[];
}

const KEY_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_VALUE_BYTES = 64 * 1024;
const EDIT_BY_HAND = (file: string) => `edit it with \`sops ${file}\` (just secrets-edit)`;

/** The value: stdin with one trailing newline removed, or a prompt that does not echo on a terminal. */
export async function readSecretValue(key: string): Promise<string> {
  if (process.stdin.isTTY) {
    if (!process.stderr.isTTY)
      throw new InputError('no value on stdin', `pipe it in: printf %s "$VALUE" | ... set ${key}`);
    return ask(`value for ${key} (not echoed): `, { hidden: true });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'utf8');
    total += buf.length;
    if (total > MAX_VALUE_BYTES)
      throw new InputError(`the value on stdin is over ${MAX_VALUE_BYTES} bytes`, 'is this the right input?');
    chunks.push(buf);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Refuses what must never reach the file: a bad key name, an unknown key, an empty or malformed value. */
function checkInput(opts: SetOptions): string[] {
  const { key, value } = opts;
  if (!KEY_NAME.test(key) || key === 'sops')
    throw new InputError(`"${key}" is not a key name set can write`, 'letters, digits and _ (not sops)');
  const spec = specOf(key);
  if (!spec && !opts.allowUnknown)
    throw new InputError(
      `${key} is not in the schema`,
      'check the spelling (`secrets where` lists every key), or pass --allow-unknown',
    );
  if (value === '') throw new InputError(`the value for ${key} is empty`, 'nothing was written');
  if (!spec) {
    const shape = shapeProblem(value);
    if (shape) throw new InputError(`${key}: ${shape}`, 'nothing was written');
    return [];
  }
  const consumers = Object.keys(CONSUMERS) as ConsumerId[];
  const problems = findProblems({ [key]: value }, consumers, { strict: opts.strict }).filter(
    (p) => p.key === key && p.kind === 'malformed',
  );
  const error = problems.find((p) => p.severity === 'error');
  if (error) throw new InputError(`${key}: ${error.detail}`, 'nothing was written');
  return problems.map((p) => `${key}: ${p.detail}`);
}

/** The one line of the `sops:` block's direct child `name`, which must be there exactly once. */
function metadataLine(lines: string[], from: number, indent: string, name: string, file: string): number {
  const found: number[] = [];
  for (let i = from; i < lines.length; i++)
    if ((lines[i] as string).startsWith(`${indent}${name}: `)) found.push(i);
  if (found.length !== 1)
    throw new InputError(`${file}: sops.${name} is not one line as sops writes it`, EDIT_BY_HAND(file));
  return found[0] as number;
}

export async function setSecret(opts: SetOptions): Promise<SetResult> {
  const { file, key, value } = opts;
  registerSecrets({ [key]: value });
  const warnings = checkInput(opts);
  if (formatForPath(file) !== 'yaml')
    throw new InputError(`${file}: set writes YAML SOPS files only (for now)`, EDIT_BY_HAND(file));

  const read = await readSopsFile(file);
  const { mode } = await stat(file);
  const text = read.text;
  warnings.push(...read.warnings);
  const parsed = parseStore(text, 'yaml', file);
  if (parsed.branches.length !== 1)
    throw new InputError(
      `${file} holds ${parsed.branches.length} YAML documents; set writes one`,
      EDIT_BY_HAND(file),
    );
  const metadata = parseMetadata(parsed.metadata, file);
  const env = opts.env ?? process.env;
  const dataKey = await recoverDataKey(metadata, file, { env });
  warnings.push(...(await keyFileWarnings(env)));
  const tree = await decryptToTree(text, { path: file, dataKey });
  const branch = tree.branches[0] as Branch;
  const plain = toPlain(branch) as Record<string, unknown>;
  registerSecrets(
    Object.fromEntries(Object.entries(plain).filter((e): e is [string, string] => typeof e[1] === 'string')),
  );
  registerSecrets({ [key]: value });

  const existing = branch.pairs().find((p) => p.key === key);
  if (existing && typeof existing.value !== 'string')
    throw new InputError(
      `${file}: ${key} holds a ${Array.isArray(existing.value) ? 'list' : typeof existing.value}, not a string`,
      EDIT_BY_HAND(file),
    );
  const current = existing?.value as string | undefined;
  const result = (action: SetResult['action']): SetResult => {
    const fp = fingerprint(value);
    return { file, key, action, length: [...value].length, ...(fp ? { fingerprint: fp } : {}), warnings };
  };
  if (current === value) return result('unchanged');
  const spec = specOf(key);
  if (spec?.rotation.kind === 'never' && current && !(opts.allowRotate ?? []).includes(key))
    throw new InputError(
      `${key} already has a different value and is never rotated: ${spec.rotation.reason}`,
      `if you mean it (restoring a backup, say), pass --allow-rotate ${key}`,
    );

  // The tree as it will be, and its MAC, hashed as sops walks it.
  const next = new Branch(
    existing
      ? branch.items.map((i) => (i instanceof Comment || i.key !== key ? i : ({ key, value } as Pair)))
      : [...branch.items, { key, value }],
  );
  const shouldEncrypt = compileRules(metadata.rules, file);
  const hasher = new MacHasher(metadata.macOnlyEncrypted);
  let keyEncrypted = false;
  walkBranch(next, (leaf, place) => {
    if (leaf instanceof Comment) return leaf;
    const encrypted = shouldEncrypt(place, false);
    if (place.path.length === 1 && place.path[0] === key) keyEncrypted = encrypted;
    hasher.add(macBytes(leaf), encrypted);
    return leaf;
  });
  if (!keyEncrypted)
    throw new InputError(
      `${file}: its encryption rules leave ${key} unencrypted; set writes encrypted values only`,
      EDIT_BY_HAND(file),
    );

  // The text: KEY's line, lastmodified's and mac's, nothing else.
  const lines = text.split('\n');
  const sopsAt = lines.indexOf('sops:');
  if (sopsAt < 0)
    throw new InputError(`${file}: no top-level sops: line as sops writes it`, EDIT_BY_HAND(file));
  const keyLine = `${key}: ${encryptValue(dataKey, value, aadOf([key]))}`;
  let at = sopsAt;
  if (existing) {
    const found = lines.flatMap((l, i) =>
      i < sopsAt && (l === `${key}:` || l.startsWith(`${key}: `)) ? [i] : [],
    );
    const only = found[0];
    const nextLine = only === undefined ? '' : (lines[only + 1] ?? '');
    if (found.length !== 1 || only === undefined || /^[\s-]/.test(nextLine))
      throw new InputError(
        `${file}: ${key} is not one \`${key}: value\` line as sops writes it`,
        EDIT_BY_HAND(file),
      );
    lines[only] = keyLine;
  } else {
    lines.splice(sopsAt, 0, keyLine);
    at = sopsAt + 1;
  }
  const indent = /^( +)/.exec(lines[at + 1] ?? '')?.[1] ?? '';
  if (!indent) throw new InputError(`${file}: the sops: block is empty`, EDIT_BY_HAND(file));
  const lastModified = (opts.now ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  const lm = metadataLine(lines, at + 1, indent, 'lastmodified', file);
  const quote = /: (["']?)/.exec(lines[lm] as string)?.[1] ?? '';
  lines[lm] = `${indent}lastmodified: ${quote}${lastModified}${quote}`;
  const mac = metadataLine(lines, at + 1, indent, 'mac', file);
  lines[mac] = `${indent}mac: ${encryptValue(dataKey, hasher.hex(), lastModified)}`;
  const written = lines.join('\n');

  // Read back before anything is written: the new text must decrypt, MAC verified, to exactly the new tree.
  const check = await decryptToTree(written, { path: file, dataKey });
  if (check.branches.length !== 1 || !isDeepStrictEqual(toPlain(check.branches[0] as Branch), toPlain(next)))
    throw new InputError(
      `${file}: the edited file does not read back as intended; nothing was written`,
      EDIT_BY_HAND(file),
    );
  // Someone else's edit since it was read (sops in another terminal) is not overwritten.
  if ((await readFile(file, 'utf8')) !== text)
    throw new WorkError(`${file} changed while set was working; nothing was written`, 'run set again');
  // A 0600 temp file beside it, given the file's own mode, renamed over it.
  await writeLocalFileAtomic(file, written, mode & 0o7777, 0o600);
  return result(existing ? 'changed' : 'added');
}
