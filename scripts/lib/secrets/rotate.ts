/**
 * `secrets rotate KEY...`: new values for generatable keys, each by its schema generator, written with the
 * smallest diff (only those keys' `ENC[...]`, `lastmodified` and `mac` change). A manual key is refused with
 * the `set` command to use; a never-rotated key unless the operator says so; a disruptive one is rotated
 * with its effect said. Returns the keys it rotated; what they mean to redeploy is the caller's view
 * (report/redeploy.ts), since it reads the Bifrost bundle, a tier this layer does not know.
 */
import { InputError } from '../core/errors.ts';
import { fingerprint } from '../core/redact.ts';
import { generateValue } from './generate.ts';
import { registerSecrets } from './registry.ts';
import { describeGenerator, specOf, unknownKeyProblem } from './schema.ts';
import { allowRotateHint, checkAllowRotate, refusePlain } from './set.ts';
import { commitSops, openSops, rewriteSops, withValues } from './sops/index.ts';

export interface RotateOptions {
  file: string;
  keys: readonly string[];
  /** Keys whose rotation is `never` that may be rotated all the same. */
  allowRotate?: readonly string[];
  /** Work it all out, write nothing. */
  dryRun?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface RotatedKey {
  key: string;
  generator: string;
  length: number;
  fingerprint?: string;
  /** What rotating it does (a disruptive or never-rotated key). */
  effect?: string;
}

export interface RotateResult {
  file: string;
  written: boolean;
  rotated: RotatedKey[];
  warnings: string[];
}

const setCommand = (key: string, file: string) =>
  `node --import tsx scripts/secrets.ts set ${key} --secrets-file ${file} (just secrets-set ${key})`;

/** Every refusal at once, before the file is even opened: the operator fixes the command in one go. */
function checkKeys(opts: RotateOptions): void {
  if (opts.keys.length === 0)
    throw new InputError('rotate needs at least one KEY', '`secrets where` lists them');
  checkAllowRotate(opts.allowRotate);
  const problems: string[] = [];
  const hints: string[] = [];
  const never: string[] = [];
  for (const key of new Set(opts.keys)) {
    const spec = specOf(key);
    if (!spec) {
      problems.push(unknownKeyProblem(key));
      hints.push('check the spelling (`secrets where` lists every key)');
    } else if (spec.generate.kind === 'manual') {
      problems.push(`${key} is set by hand (${spec.generate.howTo}); it has no generator`);
      hints.push(`make a new one there, then: ${setCommand(key, opts.file)}`);
    } else if (spec.rotation.kind === 'never' && !opts.allowRotate?.includes(key)) {
      problems.push(`${key} is never rotated: ${spec.rotation.reason}`);
      never.push(key);
    }
  }
  if (never.length) hints.push(allowRotateHint(never));
  if (problems.length)
    throw new InputError(`nothing rotated:\n  ${problems.join('\n  ')}`, [...new Set(hints)].join('; '));
}

export async function rotateSecrets(opts: RotateOptions): Promise<RotateResult> {
  checkKeys(opts);
  const keys = [...new Set(opts.keys)];
  const opened = await openSops(opts.file, opts.env ?? process.env);
  const values: Record<string, string> = {};
  const rotated = keys.map((key): RotatedKey => {
    const spec = specOf(key);
    const generate = spec?.generate ?? { kind: 'manual', howTo: '' };
    const value = generateValue(generate) as string;
    registerSecrets({ [key]: value });
    values[key] = value;
    const fp = fingerprint(value);
    const effect = spec?.rotation.kind === 'never' ? spec.rotation.reason : spec?.rotation.effect;
    return {
      key,
      generator: describeGenerator(generate),
      length: [...value].length,
      ...(fp ? { fingerprint: fp } : {}),
      ...(effect ? { effect } : {}),
    };
  });
  const written = await rewriteSops(opened, withValues(opened.branch, values));
  refusePlain(opts.file, written.plainKeys, keys);
  if (!opts.dryRun) await commitSops(opened, written.text);
  return { file: opts.file, written: !opts.dryRun, rotated, warnings: opened.warnings };
}
