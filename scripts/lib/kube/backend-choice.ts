/**
 * Which runtime backend's bootstrap Secrets a command serves, and where that choice came from, so that
 * the command can name it once ("backend  openbao (from cloud/runtime/apps.yaml)"). The choice itself
 * is `resolveBackend`'s; this only says which of its sources decided.
 */
import { readBoundedTextSync } from '../core/read-bounded.ts';
import {
  BACKEND_IDS,
  type BackendId,
  DEFAULT_APPS_FILE,
  DEFAULT_BACKEND,
  LEGACY_APPS_FILE,
  resolveBackend,
} from '../secrets/backend-id.ts';
import { CONSUMERS, k8sConsumersFor, namesFor, SECRET_SCHEMA, type SecretUse } from '../secrets/schema.ts';

export interface BackendChoice {
  id: BackendId;
  /** `--backend`, `from cloud/runtime/apps.yaml`, `default: no apps table`. */
  from: string;
}

const readable = (file: string) => {
  try {
    // Bounded and never blocking: a FIFO here is not readable.
    readBoundedTextSync(file, { what: '', kind: 'appsTable', hint: '' });
    return true;
  } catch {
    return false;
  }
};

/** The `--backend` flag, else the apps table's `backend:` (resolveBackend's order), named with its source. */
export function chooseBackend(flag: string | undefined): BackendChoice {
  if (flag !== undefined) return { id: resolveBackend(flag), from: '--backend' };
  // resolveBackend reads the first table it can read; the same one is named here.
  const table = [DEFAULT_APPS_FILE, LEGACY_APPS_FILE].find(readable);
  if (table === undefined) return { id: resolveBackend(undefined), from: 'default: no apps table' };
  return { id: resolveBackend(undefined, table), from: `from ${table}` };
}

export const describeBackendChoice = (c: BackendChoice) => `${c.id} (${c.from})`;

/** The `--backend` lines of a command's help; `what` says what the command does with the Secrets. */
export const backendOptionHelp = (
  what: string,
) => `  --backend B          the runtime backend whose Secrets to ${what}: ${BACKEND_IDS.join(', ')};
                       default: the \`backend:\` of the apps table (${DEFAULT_APPS_FILE}; a table
                       only in ${LEGACY_APPS_FILE}, written before backends, means
                       infisical-v1alpha1), else ${DEFAULT_BACKEND}`;

/**
 * Each backend's Secrets, one line per Secret (name, namespace, keys), generated from the schema table;
 * for help texts.
 */
export function describeBackendSecrets(indent = '  '): string {
  const lines: string[] = [];
  for (const backend of BACKEND_IDS) {
    lines.push(`${indent}${backend}${backend === DEFAULT_BACKEND ? ' (default)' : ''}:`);
    for (const name of k8sConsumersFor(backend)) {
      const info = CONSUMERS[name];
      if (info.kind !== 'k8s-secret') continue;
      const names = namesFor(name);
      // The derived names (DB_CONNECTION_URI) ride on their key: every Secret key, in schema order.
      const keys = SECRET_SCHEMA.flatMap((spec) =>
        (spec.uses as readonly SecretUse[]).filter((u) => u.consumer === name).map((u) => u.as),
      );
      const optional = names.every((n) => !n.required);
      const when = optional ? `, only when ${[...new Set(names.map((n) => n.key))].join(' or ')} is set` : '';
      lines.push(
        `${indent}  ${name.padEnd(28)}${`(ns ${info.namespace})`.padEnd(19)}${keys.join(' ')}${when}`,
      );
    }
  }
  return lines.join('\n');
}
