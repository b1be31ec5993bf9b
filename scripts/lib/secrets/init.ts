/**
 * `secrets init`: a new bootstrap SOPS file with every generatable key, encrypted to the given age
 * recipient or, without one, to the `.sops.yaml` creation rule's; `--fill` adds only the missing keys to
 * an existing file with the smallest diff (no existing `ENC[...]` changes).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EXIT, InputError, WorkError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { writeLocalFileAtomic } from '../exec/local.ts';
import { generateValue } from './generate.ts';
import { checkRecipient } from './recipients.ts';
import { registerSecrets } from './registry.ts';
import { describeGenerator, SECRET_SCHEMA, type SecretSpec, specOf } from './schema.ts';
import { commitSops, encryptSops, openSops, rewriteSops, withValues } from './sops/index.ts';
import { creationRuleFor, writeDefaultRules } from './sops-config.ts';

const SPECS = SECRET_SCHEMA as readonly SecretSpec[];

export interface InitOptions {
  file: string;
  recipient?: string;
  fill: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface InitResult {
  file: string;
  created: boolean;
  /** Whether the file was written at all (--fill with nothing missing writes nothing). */
  written: boolean;
  added: string[];
  kept: string[];
  /** Keys set by hand that are still missing. */
  manual: string[];
  recipients: string[];
  /** Where the recipients came from. */
  recipientsFrom: 'flag' | 'file' | string;
  /** The `.sops.yaml` written, if one was. */
  rulesWritten?: string;
  warnings: string[];
}

/** New values for every generatable key `present` lacks, registered with the redactor. */
function generateMissing(present: Readonly<Record<string, unknown>>): Record<string, string> {
  const added: Record<string, string> = {};
  for (const spec of SPECS) {
    if (present[spec.key] !== undefined && present[spec.key] !== '') continue;
    const value = generateValue(spec.generate);
    if (value === undefined) continue;
    registerSecrets({ [spec.key]: value });
    added[spec.key] = value;
  }
  return added;
}

const stillManual = (values: Readonly<Record<string, unknown>>) =>
  SPECS.filter((s) => s.generate.kind === 'manual' && !values[s.key]).map((s) => s.key);

export async function initSecrets(opts: InitOptions): Promise<InitResult> {
  const { file } = opts;
  if (opts.recipient) checkRecipient(opts.recipient);
  const exists = existsSync(file);
  if (exists && !opts.fill)
    throw new InputError(
      `${file} exists already`,
      'use --fill to add only the missing keys, or choose another --file',
    );
  return exists ? fill(opts) : create(opts);
}

async function create(opts: InitOptions): Promise<InitResult> {
  const { file } = opts;
  const rule = opts.recipient ? undefined : creationRuleFor(file);
  const recipients = opts.recipient ? [opts.recipient] : (rule?.recipients ?? []);
  if (recipients.length === 0)
    throw new InputError(
      '--recipient is required (no .sops.yaml creation rule names this file)',
      'give your age public key (age1…): age-keygen -y keys.txt prints it',
    );
  for (const r of recipients) checkRecipient(r);
  const added = generateMissing({});
  const text = await encryptSops(added, { recipients, format: 'yaml' });
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Encrypted, yet only its owner needs to read it (the readers warn about a group/world-readable file).
  // Created, never replaced: a file someone else made since the check above stays theirs.
  await writeLocalFileAtomic(file, text, 0o600, undefined, { create: true }).catch((err) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new WorkError(
      `${file} was created by someone else while init was working; nothing was written`,
      'look at it; `secrets init --fill` adds only the keys it lacks',
    );
  });
  const rulesWritten = /^(\.\/)?secrets\//.test(file) ? await writeDefaultRules(recipients) : undefined;
  return {
    file,
    created: true,
    written: true,
    added: Object.keys(added),
    kept: [],
    manual: stillManual(added),
    recipients,
    recipientsFrom: rule ? rule.config : 'flag',
    ...(rulesWritten ? { rulesWritten } : {}),
    warnings: [],
  };
}

async function fill(opts: InitOptions): Promise<InitResult> {
  const { file } = opts;
  const opened = await openSops(file, opts.env ?? process.env);
  const current = Object.fromEntries(opened.branch.pairs().map((p) => [p.key, p.value]));
  const added = generateMissing(current);
  const existing = opened.metadata.ageEntries.map((e) => e.recipient);
  const recipients =
    opts.recipient && !existing.includes(opts.recipient) ? [...existing, opts.recipient] : existing;
  const changed = Object.keys(added).length > 0 || recipients.length !== existing.length;
  if (changed) {
    const next = withValues(opened.branch, added);
    const written = await rewriteSops(opened, next, { recipients });
    await commitSops(opened, written.text);
  }
  return {
    file,
    created: false,
    written: changed,
    added: Object.keys(added),
    kept: Object.keys(current),
    manual: stillManual({ ...current, ...added }),
    recipients,
    recipientsFrom: 'file',
    warnings: opened.warnings,
  };
}

/** `secrets init`: writes the file (or fills its missing keys) and lists the keys to set by hand. */
export async function secretsInit(
  out: Output,
  file: string,
  recipient: string | undefined,
  fill: boolean,
): Promise<number> {
  const r = await initSecrets({ file, recipient, fill });
  for (const warning of r.warnings) out.warn(warning);
  for (const key of r.added)
    out.info(
      `generated  ${key} (${describeGenerator(specOf(key)?.generate ?? { kind: 'manual', howTo: '' })})`,
    );
  if (r.kept.length)
    out.info(`kept       ${r.kept.length} existing key(s) untouched (their ENC[...] unchanged)`);
  if (r.manual.length) {
    out.info(
      `\nset these by hand, each with \`node --import tsx scripts/secrets.ts set KEY --secrets-file ${file}\` (it asks for the value, or reads it from stdin; just secrets-set KEY):`,
    );
    for (const key of r.manual)
      out.info(
        `  ${key.padEnd(26)} ${describeGenerator(specOf(key)?.generate ?? { kind: 'manual', howTo: '' }).replace(/^set by hand: /, '')}`,
      );
  }
  const to = `encrypted to ${r.recipients.length} recipient(s)${r.recipientsFrom !== 'flag' && r.recipientsFrom !== 'file' ? ` from ${r.recipientsFrom}` : ''}`;
  out.info(
    out.color.green(
      r.written
        ? `\nwrote ${file} (${to})${r.rulesWritten ? `; wrote ${r.rulesWritten}` : ''}`
        : `\nnothing to add: ${file} has every generatable key; nothing written`,
    ),
  );
  out.result({
    ok: true,
    file,
    written: r.written,
    added: r.added,
    kept: r.kept,
    manual: r.manual,
    recipients: r.recipients,
  });
  return EXIT.ok;
}
