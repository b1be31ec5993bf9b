/**
 * The runtime tier's backends: which in-cluster platform syncs app secrets. One cluster runs one of
 * them; the apps table names it (`backend:`), and both tiers follow it: the runtime renderer picks the
 * resources to render, the bootstrap tier the Secrets the platform itself needs.
 */
import { parse } from 'yaml';
import { InputError } from '../core/errors.ts';
import { readBoundedTextSync } from '../core/read-bounded.ts';

export const BACKENDS = {
  infisical: {
    title: 'Infisical operator, secrets.infisical.com/v1beta1 (machine identity, Kubernetes auth)',
  },
  'infisical-v1alpha1': {
    title: "Infisical operator, secrets.infisical.com/v1alpha1 (the design page's InfisicalSecret pattern)",
  },
  openbao: { title: 'OpenBao through the Secrets Store CSI driver' },
} as const;

export type BackendId = keyof typeof BACKENDS;

export const BACKEND_IDS = Object.keys(BACKENDS) as BackendId[];

/** The default for new setups: Infisical's current API. */
export const DEFAULT_BACKEND: BackendId = 'infisical';

/** The apps table's home; `cloud/infisical/apps.yaml` is its old one, still read (see runtime/apps.ts). */
export const DEFAULT_APPS_FILE = 'cloud/runtime/apps.yaml';
export const LEGACY_APPS_FILE = 'cloud/infisical/apps.yaml';

export function isBackendId(value: unknown): value is BackendId {
  return typeof value === 'string' && Object.hasOwn(BACKENDS, value);
}

export function parseBackend(value: string, flag = '--backend'): BackendId {
  if (isBackendId(value)) return value;
  throw new InputError(
    `${flag} ${JSON.stringify(value)} is not a runtime backend`,
    `use one of ${BACKEND_IDS.join(', ')}`,
  );
}

/**
 * The backend a table names. A table without `backend` and without the per-backend blocks was written
 * before backends existed (the old cloud/infisical/apps.yaml): it describes v1alpha1 InfisicalSecrets.
 */
export function backendOfTable(table: unknown): BackendId | { invalid: unknown } {
  const t = (typeof table === 'object' && table !== null ? table : {}) as Record<string, unknown>;
  if (t.backend === undefined)
    return t.infisical === undefined && t.openbao === undefined ? 'infisical-v1alpha1' : DEFAULT_BACKEND;
  return isBackendId(t.backend) ? t.backend : { invalid: t.backend };
}

/**
 * The backend a command follows when no `--backend` is given: the one the apps table names (the table
 * at its home, else at its old one). Without any table (a user's own layout), the default for new setups.
 */
export function resolveBackend(flag: string | undefined, appsFile?: string): BackendId {
  if (flag !== undefined) return parseBackend(flag);
  const files = appsFile ? [appsFile] : [DEFAULT_APPS_FILE, LEGACY_APPS_FILE];
  for (const file of files) {
    let text: string;
    try {
      // Bounded and never blocking (a FIFO is refused unopened); whatever fails, loadAppsTable reports.
      text = readBoundedTextSync(file, { what: 'the apps table', kind: 'appsTable', hint: '' });
    } catch {
      continue;
    }
    let table: unknown;
    try {
      table = parse(text);
    } catch {
      // A broken table is reported by the command that reads it whole; here it names no backend.
      return DEFAULT_BACKEND;
    }
    const named = backendOfTable(table);
    if (typeof named === 'string') return named;
    throw new InputError(
      `${file}: backend ${JSON.stringify(named.invalid)} is not a runtime backend`,
      `set backend to one of ${BACKEND_IDS.join(', ')}, or pass --backend`,
    );
  }
  return DEFAULT_BACKEND;
}
