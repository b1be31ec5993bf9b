import { existsSync } from 'node:fs';
import { AGE_KEY_VARIABLES } from '../core/child-env.ts';
import { InputError, WorkError } from '../core/errors.ts';
import type { Executor } from '../exec/executor.ts';
import { findOnPath } from '../exec/which.ts';
import { registerSecrets } from './registry.ts';
import { SECRET_KEYS } from './schema.ts';

export const DEFAULT_SECRETS_FILE = 'secrets/bootstrap.sops.yaml';

export type SourceKind = 'environment' | 'sops-binary' | 'native' | 'key-names-only';

/**
 * Where the values came from. `key-names-only` is the keyless dry run: SOPS keeps key names in
 * plaintext, so presence can be checked without any age key (as CI does, holding no secrets).
 */
export interface LoadedSecrets {
  kind: SourceKind;
  file?: string;
  /** Schema keys only; never any other variable of the environment or key of the file. */
  values: Record<string, string>;
  /** Keys present in the source (for key-names-only, the values above are empty). */
  present: string[];
  describe: string;
  /** For the operator (a SOPS or key file others can read, mac_only_encrypted); never a value. */
  warnings: string[];
}

export interface LoadOptions {
  secretsFile: string;
  fromEnv: boolean;
  /** Keys whose presence in the environment means it already holds the secrets (sops exec-env). */
  required: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Falls back to key names when no age identity exists at all (dry runs only). */
  allowKeyless?: boolean;
  executor: Executor;
}

/**
 * In this order: the process environment when it already holds the required keys (or --from-env);
 * else the `sops` binary when on PATH (SOPS overrides); else the native decryptor. Every value (and
 * what is derived from it) is registered with the redactor before it is returned, whichever way it was
 * loaded: no caller can print one it forgot to register.
 */
export async function loadSecrets(opts: LoadOptions): Promise<LoadedSecrets> {
  const loaded = await loadFromSource(opts);
  registerSecrets(loaded.values);
  return loaded;
}

async function loadFromSource(opts: LoadOptions): Promise<LoadedSecrets> {
  const env = opts.env ?? process.env;
  const fromEnv = pickSchemaKeys(env);
  const envHasAll = opts.required.length > 0 && opts.required.every((k) => fromEnv[k]);
  if (opts.fromEnv || envHasAll) {
    return {
      kind: 'environment',
      values: fromEnv,
      present: Object.keys(fromEnv),
      describe: 'the process environment',
      warnings: [],
    };
  }

  const file = opts.secretsFile;
  if (!existsSync(file)) {
    throw new InputError(
      `secrets file ${file} not found`,
      'create it with `just secrets-init AGE1…` (README "Operator guide"), pass --secrets-file FILE, or give the values in the environment with --from-env',
    );
  }

  // Loaded on demand: the environment source never needs it, and module loading is most of a cold start.
  const {
    decryptSopsText,
    execEnvPairs,
    findAgeIdentities,
    keyFileWarnings,
    macOnlyNotices,
    passedOverSources,
    readPlainKeyNames,
    readSopsFile,
    sopsTimeoutMs,
  } = await import('./sops/index.ts');
  // Never a FIFO, device or directory, never past the size limit, whoever decrypts it.
  const { text, warnings } = await readSopsFile(file);
  const sops = findSopsBinary(env);
  if (opts.allowKeyless) {
    const search = await findAgeIdentities(env);
    // An age key source that is set but unusable is said, not passed over: it is why nothing decrypts.
    if (search.identities.length === 0)
      return keyNamesOnly(file, readPlainKeyNames(text, { path: file }), [
        ...warnings,
        ...search.problems.map((p) => `${p}: no usable age key, so only key names are read`),
      ]);
  }
  if (sops) {
    const loaded = await decryptWithSopsBinary(sops, file, opts.executor, sopsTimeoutMs(env), execEnvPairs);
    const more = [
      ...(await passedOverSources(env, file)),
      ...(await keyFileWarnings(env)),
      ...macOnlyNotices(text, file),
    ];
    return { ...loaded, warnings: [...warnings, ...more] };
  }

  const decrypted = await decryptSopsText(text, { path: file, env });
  const values = pickSchemaKeys(execEnvPairs(decrypted.documents[0] ?? {}, file));
  return {
    kind: 'native',
    file,
    values,
    present: Object.keys(values),
    describe: `${file} (native SOPS decryptor)`,
    warnings: [...warnings, ...decrypted.warnings],
  };
}

function pickSchemaKeys(source: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of SECRET_KEYS) {
    const value = source[key];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

/** `SOPS` if set, else the first executable `sops` on PATH. */
function findSopsBinary(env: NodeJS.ProcessEnv): string | undefined {
  return env.SOPS || findOnPath('sops', env);
}

function keyNamesOnly(file: string, names: string[], warnings: string[]): LoadedSecrets {
  const present = SECRET_KEYS.filter((k) => names.includes(k));
  return {
    kind: 'key-names-only',
    file,
    values: {},
    present,
    describe: `${file} (key names only: no age key available, values not decrypted)`,
    warnings,
  };
}

// sops's documented exit codes for decryption failures (cmd/sops/codes).
const SOPS_EXIT_MEANING: Record<number, string> = {
  51: 'the MAC does not match: the file was changed outside sops',
  128: 'no key could decrypt the data key',
  25: 'a value does not decrypt',
};

async function decryptWithSopsBinary(
  sops: string,
  file: string,
  executor: Executor,
  timeoutMs: number,
  execEnvPairs: (doc: unknown, path: string) => Record<string, string>,
): Promise<Omit<LoadedSecrets, 'warnings'>> {
  // Only the file name is on argv; the plaintext comes back on stdout and stays in memory.
  const argv = [sops, '--decrypt', '--output-type', 'json', file];
  // The one child that gets the age key sources (children are denied them: child-env.ts).
  const result = await executor.run({ argv, timeoutMs, passEnv: AGE_KEY_VARIABLES });
  if (result.timedOut) {
    throw new WorkError(
      `sops (${sops}) did not finish decrypting ${file} within ${timeoutMs / 1000} s and was killed`,
      `check what sops waits for (a PGP passphrase prompt, a KMS or key service, SOPS_AGE_KEY_CMD); if it is only slow, raise SECRETS_FLOW_SOPS_TIMEOUT (seconds, default 30); or unset SOPS to use the built-in decryptor`,
    );
  }
  if (result.spawnError) {
    throw new InputError(
      `cannot run sops (${sops}): ${result.spawnError}`,
      'fix SOPS or PATH, or unset SOPS',
    );
  }
  if (result.exitCode !== 0) {
    const meaning = SOPS_EXIT_MEANING[result.exitCode] ?? `sops exited with code ${result.exitCode}`;
    throw new InputError(
      `cannot decrypt ${file} with ${sops}: ${meaning}\n${result.stderr.trim()}`,
      'check the age key (SOPS_AGE_KEY_FILE or ~/.config/sops/age/keys.txt) and that the file is intact (git diff)',
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(result.stdout);
  } catch {
    throw new InputError(
      `sops printed something that is not JSON for ${file}`,
      'check the sops version (3.x)',
    );
  }
  const values = pickSchemaKeys(execEnvPairs(doc, file));
  return {
    kind: 'sops-binary',
    file,
    values,
    present: Object.keys(values),
    describe: `${file} (via ${sops})`,
  };
}
