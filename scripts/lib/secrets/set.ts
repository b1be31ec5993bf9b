/**
 * `secrets set KEY`: one value into the SOPS file with the smallest diff sops itself could make. The file is
 * decrypted with its own data key (the operator's age identity opens it), only KEY's `ENC[...]` is written
 * anew (a new key goes at the end of the top-level map), and `sops.lastmodified` and `sops.mac` are
 * recomputed; every other byte of the file stays as it was. The value never comes from argv.
 */

import { EXIT, InputError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { ask } from '../core/prompt.ts';
import { fingerprint } from '../core/redact.ts';
import { registerSecrets } from './registry.ts';
import { CONSUMERS, type ConsumerId, specOf, suggestKey, unknownKeyProblem } from './schema.ts';
import { commitSops, editByHand, openSops, rewriteSops, withValues } from './sops/index.ts';
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

/**
 * What is wrong with `value` for `key`, never quoting it: errors refuse it (empty, a copy-paste slip, the
 * schema's format); warnings do not (a hand-made token not in its vendor's format, without `strict`).
 * A key the schema does not know gets the shape checks only.
 */
export function valueProblems(
  key: string,
  value: string,
  strict?: boolean,
): { errors: string[]; warnings: string[] } {
  if (value === '') return { errors: [`${key}: empty`], warnings: [] };
  if (!specOf(key)) {
    const shape = shapeProblem(value);
    return { errors: shape ? [`${key}: ${shape}`] : [], warnings: [] };
  }
  const consumers = Object.keys(CONSUMERS) as ConsumerId[];
  const problems = findProblems({ [key]: value }, consumers, { strict }).filter(
    (p) => p.key === key && p.kind === 'malformed',
  );
  const text = (severity: 'error' | 'warning') =>
    problems
      .filter((p) => (p.severity === 'error') === (severity === 'error'))
      .map((p) => `${key}: ${p.detail}`);
  return { errors: text('error'), warnings: text('warning') };
}

/** Refuses what must never reach the file: a bad key name, an unknown key, an empty or malformed value. */
function checkInput(opts: SetOptions): string[] {
  const { key, value } = opts;
  if (!KEY_NAME.test(key) || key === 'sops')
    throw new InputError(`"${key}" is not a key name set can write`, 'letters, digits and _ (not sops)');
  if (!specOf(key) && !opts.allowUnknown) {
    const guess = suggestKey(key);
    throw new InputError(
      unknownKeyProblem(key),
      guess
        ? `set ${guess} instead; or, if ${key} is meant, pass --allow-unknown`
        : 'check the spelling (`secrets where` lists every key), or pass --allow-unknown',
    );
  }
  checkAllowRotate(opts.allowRotate);
  const { errors, warnings } = valueProblems(key, value, opts.strict);
  if (errors[0]) throw new InputError(errors[0], 'nothing was written');
  return warnings;
}

export async function setSecret(opts: SetOptions): Promise<SetResult> {
  const { file, key, value } = opts;
  registerSecrets({ [key]: value });
  const warnings = checkInput(opts);
  const opened = await openSops(file, opts.env ?? process.env);
  warnings.push(...opened.warnings);

  const existing = opened.branch.pairs().find((p) => p.key === key);
  if (existing && typeof existing.value !== 'string')
    throw new InputError(
      `${file}: ${key} holds a ${Array.isArray(existing.value) ? 'list' : typeof existing.value}, not a string`,
      editByHand(file),
    );
  const current = existing?.value as string | undefined;
  const result = (action: SetResult['action']): SetResult => {
    const fp = fingerprint(value);
    return { file, key, action, length: [...value].length, ...(fp ? { fingerprint: fp } : {}), warnings };
  };
  if (current === value) return result('unchanged');
  refuseNeverRotate(key, current, opts.allowRotate);
  const written = await rewriteSops(opened, withValues(opened.branch, { [key]: value }));
  refusePlain(file, written.plainKeys, [key]);
  await commitSops(opened, written.text);
  return result(existing ? 'changed' : 'added');
}

/** The one wording of the way past a never-rotated key, naming the keys (set, edit and rotate say it). */
export function allowRotateHint(keys: readonly string[]): string {
  return `if you mean it, pass --allow-rotate ${keys.join(',')}`;
}

/** --allow-rotate names schema keys: an unknown name there is a typo that would let nothing through. */
export function checkAllowRotate(keys: readonly string[] = []): void {
  const unknown = [...new Set(keys.filter((k) => !specOf(k)))];
  if (unknown.length)
    throw new InputError(
      `--allow-rotate ${unknown.map(unknownKeyProblem).join('; ')}`,
      'name the never-rotated key exactly (`secrets where` lists every key and whether it may be rotated)',
    );
}

/** A never-rotated key keeps its value unless the operator names it (restoring a backup, say). */
export function refuseNeverRotate(
  key: string,
  current: string | undefined,
  allowed: readonly string[] = [],
): void {
  const spec = specOf(key);
  if (spec?.rotation.kind === 'never' && current && !allowed.includes(key))
    throw new InputError(
      `${key} already has a different value and is never rotated: ${spec.rotation.reason}`,
      `${allowRotateHint([key])} (restoring a backup, say)`,
    );
}

/** A secret the file's rules would leave in plaintext is not written. */
export function refusePlain(file: string, plainKeys: readonly string[], keys: readonly string[]): void {
  const plain = keys.filter((k) => plainKeys.includes(k));
  if (plain.length)
    throw new InputError(
      `${file}: its encryption rules leave ${plain.join(', ')} unencrypted; secrets are written encrypted only`,
      // The rules are the file's own (sops.encrypted_regex and the like, fixed when it was made): the sops
      // binary would follow them too.
      `set ${plain.join(', ')} in a file whose rules encrypt every value: a new one from \`just secrets-init AGE1…\` (--secrets-file NEW)`,
    );
}

/** `secrets set KEY`: the value from stdin or the prompt (never argv) into the file; says what changed. */
export async function secretsSet(opts: Omit<SetOptions, 'value'>, out: Output): Promise<number> {
  const result = await setSecret({ ...opts, value: await readSecretValue(opts.key) });
  for (const warning of result.warnings) out.warn(warning);
  const shown = `${result.key} (${result.length} chars${result.fingerprint ? `, ${result.fingerprint}` : ''})`;
  out.info(
    result.action === 'unchanged'
      ? `unchanged  ${shown}: the file already holds this value; nothing written`
      : out.color.green(`${result.action.padEnd(10)} ${shown} in ${result.file}`),
  );
  out.result({ ok: true, ...result });
  return EXIT.ok;
}
