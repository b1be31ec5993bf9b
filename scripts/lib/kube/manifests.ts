import { stringify } from 'yaml';
import type { BackendId } from '../secrets/backend-id.ts';
import { CONSUMERS, k8sConsumersFor, namesFor, valuesFor } from '../secrets/schema.ts';

/** A Kubernetes object as plain data; serialised only when handed to kubectl or shown. */
export interface Manifest {
  apiVersion: 'v1';
  kind: 'Namespace' | 'Secret';
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export const FIELD_MANAGER = 'secrets-flow';

const LABELS = { 'app.kubernetes.io/managed-by': FIELD_MANAGER };
// ArgoCD must never prune the bootstrap Secrets: nothing in git describes them (design page).
const ANNOTATIONS = { 'argocd.argoproj.io/sync-options': 'Prune=false' };

export interface SecretEntry {
  /** The key inside the Kubernetes Secret. */
  name: string;
  /** The schema key it comes from. */
  key: string;
  value: string;
}

export interface PlannedSecret {
  namespace: string;
  name: string;
  entries: SecretEntry[];
}

/**
 * The bootstrap Secrets to create for a runtime backend, derived from the schema: every k8s-secret
 * consumer of that backend that receives at least one value. A consumer whose keys are all optional and
 * absent (infisical-service-token before Phase 2) is left out rather than created empty; see
 * `unplannedSecrets` for saying so.
 */
export function planBootstrapSecrets(
  values: Readonly<Record<string, string | undefined>>,
  backend: BackendId,
): PlannedSecret[] {
  const planned: PlannedSecret[] = [];
  for (const name of k8sConsumersFor(backend)) {
    const info = CONSUMERS[name];
    if (info.kind !== 'k8s-secret') continue;
    const entries = valuesFor(name, values);
    if (entries.length > 0) planned.push({ namespace: info.namespace, name, entries });
  }
  return planned;
}

/** A backend's Secret that is not created because none of its (optional) keys has a value yet. */
export interface UnplannedSecret {
  namespace: string;
  name: string;
  /** The schema keys that would fill it. */
  keys: string[];
}

/** The backend's Secrets `planBootstrapSecrets` leaves out, with the keys that would create them. */
export function unplannedSecrets(
  values: Readonly<Record<string, string | undefined>>,
  backend: BackendId,
): UnplannedSecret[] {
  const planned = new Set(planBootstrapSecrets(values, backend).map((s) => s.name));
  const out: UnplannedSecret[] = [];
  for (const name of k8sConsumersFor(backend)) {
    const info = CONSUMERS[name];
    if (info.kind !== 'k8s-secret' || planned.has(name)) continue;
    out.push({ namespace: info.namespace, name, keys: [...new Set(namesFor(name).map((n) => n.key))] });
  }
  return out;
}

/**
 * Namespaces first (kubectl applies documents in order, and a Secret needs its namespace), then the
 * Secrets. `show` decides how a value appears: real runs put base64 in `data`; previews put a
 * fingerprint or placeholder in `stringData` so that a person can read it and no value is present.
 */
export function bootstrapManifests(
  planned: readonly PlannedSecret[],
  mode: { kind: 'apply' } | { kind: 'preview'; show: (entry: SecretEntry) => string },
): Manifest[] {
  const namespaces = [...new Set(planned.map((s) => s.namespace))].sort();
  const manifests: Manifest[] = namespaces.map((name) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { ...LABELS } },
  }));
  for (const secret of planned) {
    const body: Record<string, string> = {};
    for (const entry of secret.entries) {
      body[entry.name] =
        mode.kind === 'apply' ? Buffer.from(entry.value, 'utf8').toString('base64') : mode.show(entry);
    }
    manifests.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: secret.name,
        namespace: secret.namespace,
        labels: { ...LABELS },
        annotations: { ...ANNOTATIONS },
      },
      type: 'Opaque',
      ...(mode.kind === 'apply' ? { data: body } : { stringData: body }),
    });
  }
  return manifests;
}

/** A multi-document YAML stream, as kubectl reads it on stdin. */
export function toYamlStream(manifests: readonly Manifest[]): string {
  return manifests.map((m) => `---\n${stringify(m, { lineWidth: 0 })}`).join('');
}
