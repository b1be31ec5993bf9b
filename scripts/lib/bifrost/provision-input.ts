/**
 * What a provisioning run would upload, built locally and before any connection: the secrets (from the
 * usual source, registered with the redactor), their problems, the two rendered env files, and the bundle
 * files. provision-bifrost uploads it; `bifrost verify` compares the host with it.
 */
import { resolve } from 'node:path';
import { LocalExecutor } from '../exec/local.ts';
import { keysFor } from '../secrets/schema.ts';
import { DEFAULT_SECRETS_FILE, type LoadedSecrets, loadSecrets } from '../secrets/source.ts';
import { findProblems, type SecretProblem } from '../secrets/validate.ts';
import { isHostGenerated } from './bundle.ts';
import { DOT_ENV, SECRETS_ENV } from './host-state.ts';
import { BIFROST_CONSUMERS, renderBifrostEnvFiles } from './render-env.ts';
import type { BundleFile } from './upload.ts';

export const DEFAULT_BUNDLE_DIR = resolve(import.meta.dirname, '..', '..', '..', 'cloud', 'bifrost');

export interface ProvisionInput {
  loaded: LoadedSecrets;
  problems: SecretProblem[];
  rendered: { secretsEnv: string; dotEnv: string };
  files: BundleFile[];
}

export async function buildProvisionInput(opts: {
  secretsFile?: string;
  fromEnv: boolean;
  bundleDir?: string;
  /** Vendor-format mismatches of hand-made tokens are errors, not warnings. */
  strict?: boolean;
}): Promise<ProvisionInput> {
  const loaded = await loadSecrets({
    secretsFile: opts.secretsFile ?? DEFAULT_SECRETS_FILE,
    fromEnv: opts.fromEnv,
    required: keysFor(BIFROST_CONSUMERS).required,
    executor: new LocalExecutor(),
  });
  // The host's deploy record is keyed with FINGERPRINT_KEY, so provisioning needs it as well.
  const problems = findProblems(loaded.values, [...BIFROST_CONSUMERS, 'secrets-flow'], {
    strict: opts.strict,
  });
  const rendered = renderBifrostEnvFiles(loaded.values);
  const { readLocalBundle } = await import('./upload.ts');
  const files: BundleFile[] = [
    ...(await readLocalBundle(resolve(opts.bundleDir ?? DEFAULT_BUNDLE_DIR), isHostGenerated)),
    ...renderedFiles(rendered),
  ];
  return { loaded, problems, rendered, files };
}

/** The two rendered env files as bundle files, 0600. */
function renderedFiles(rendered: ReturnType<typeof renderBifrostEnvFiles>): BundleFile[] {
  return [
    { path: SECRETS_ENV, content: rendered.secretsEnv, mode: 0o600 },
    { path: DOT_ENV, content: rendered.dotEnv, mode: 0o600 },
  ];
}

/**
 * The input rendered again against the host's own env files, read over the provisioning connection: a
 * password hash the host holds is kept while it verifies (the first rendering, before connecting, had to
 * hash anew). Without this, every run would send a new hash and recreate the service that reads it.
 */
export function keepHostHashes(
  input: ProvisionInput,
  host: Readonly<Record<string, string | undefined>>,
): ProvisionInput {
  const rendered = renderBifrostEnvFiles(input.loaded.values, {
    secretsEnv: host[SECRETS_ENV],
    dotEnv: host[DOT_ENV],
  });
  const again = renderedFiles(rendered);
  const files = input.files.map((f) => again.find((r) => r.path === f.path) ?? f);
  return { ...input, rendered, files };
}
