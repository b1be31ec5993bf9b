/**
 * One interface for the runtime tier's backends, one module per backend (as sops's stores/): each says
 * which rows it cannot express, and renders the rest as Kubernetes documents. Rendering is a pure
 * function of the table, so the shared writer (../render.ts) gives byte-identical files on a re-run.
 */

import type { BackendId } from '../../secrets/backend-id.ts';
import type { AppsTable, RuntimeApp } from '../apps.ts';
import type { Problem } from '../fields.ts';

/** A Kubernetes document as plain data, built in a fixed key order. */
export interface Document {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** One output file: the app's resources, or resources every app shares (`app` undefined). */
export interface BackendFile {
  file: string;
  app?: RuntimeApp;
  documents: Document[];
}

/** What an app's workloads need so that they restart when a value changes. */
export interface RestartHint {
  annotation: string;
  value: string;
  /** Who acts on it. */
  by: string;
}

export interface RuntimeBackend {
  id: BackendId;
  /** The kinds it renders, for the summary ("3 InfisicalStaticSecret(s)"). */
  kinds: readonly string[];
  /** Rows (or table settings) it cannot express, each with the reason; empty when it can render all. */
  problems(table: AppsTable): Problem[];
  files(table: AppsTable): BackendFile[];
  restartHint(app: RuntimeApp): RestartHint | undefined;
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'secrets-flow';
export const MANAGED_LABELS: Readonly<Record<string, string>> = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };

/** Problems of one app under `apps.<id>.<field>`, as the table loader names them. */
export function appProblem(app: RuntimeApp, field: string, message: string): Problem {
  return { where: `apps.${app.id}${field ? `.${field}` : ''}`, message };
}
