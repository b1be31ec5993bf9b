/**
 * infisical: the Infisical operator's current API, secrets.infisical.com/v1beta1 (shared/reference/
 * infisical/v1beta1/). One InfisicalConnection and one InfisicalAuth (Kubernetes auth: a machine
 * identity whose id is read from a Secret, so no long-lived token exists anywhere) serve every app;
 * each app gets one InfisicalStaticSecret whose target template names exactly the app's keys, so a
 * stray secret in the Infisical folder never reaches the Kubernetes Secret, and keys can be renamed.
 *
 * No ServerSideApply=false annotation: it worked around v1alpha1's CRD lacking projectSlug in the
 * service-token scope; the v1beta1 schema defines every field rendered here, so Argo CD's server-side
 * apply validates these resources as they are.
 */

import { CONSUMERS, type ConsumerId, namesFor } from '../../secrets/schema.ts';
import type { AppsTable, RuntimeApp } from '../apps.ts';
import type { Problem } from '../fields.ts';
import {
  appProblem,
  type BackendFile,
  type Document,
  MANAGED_LABELS,
  type RuntimeBackend,
} from './backend.ts';
import { FILES_NEED_CSI, infisicalRestartHint } from './infisical-v1alpha1.ts';

export const API_VERSION = 'secrets.infisical.com/v1beta1';
export const CONNECTION_NAME = 'infisical';
export const AUTH_NAME = 'infisical-kubernetes';
/**
 * The bootstrap Secret that holds the machine identity's id: create-bootstrap-secrets makes it from
 * INFISICAL_IDENTITY_ID, so its name, namespace and key come from the bootstrap schema's table.
 */
const IDENTITY_SECRET = 'infisical-machine-identity' satisfies ConsumerId;
export const identityIdRef = () => ({
  key: namesFor(IDENTITY_SECRET)[0]?.name ?? 'identityId',
  name: IDENTITY_SECRET,
  namespace: CONSUMERS[IDENTITY_SECRET].namespace,
});
/** The operator refuses a shorter refreshInterval (internal/util/time.go, shared/reference v1beta1 README). */
const MIN_REFRESH_SECONDS = 5;

export const infisicalV1beta1: RuntimeBackend = {
  id: 'infisical',
  kinds: ['InfisicalConnection', 'InfisicalAuth', 'ServiceAccount', 'InfisicalStaticSecret'],
  problems,
  files,
  restartHint: infisicalRestartHint,
};

/** One address for every app: each InfisicalConnection is one Infisical instance. */
function connectionAddress(table: AppsTable): string | undefined {
  return table.apps.find((a) => !a.own.has('hostAPI'))?.hostAPI ?? table.apps[0]?.hostAPI;
}

function problems(table: AppsTable): Problem[] {
  const out: Problem[] = [];
  const address = connectionAddress(table);
  for (const app of table.apps) {
    const add = (field: string, message: string) => out.push(appProblem(app, field, message));
    if (app.hostAPI === undefined) add('hostAPI', 'missing (set it on the app or in defaults)');
    else if (app.hostAPI !== address)
      add(
        'hostAPI',
        `differs from the other apps' ${address}: one InfisicalConnection serves every app; use one instance, or --backend infisical-v1alpha1`,
      );
    if (app.envSlug === undefined) add('envSlug', 'missing (set it on the app or in defaults)');
    if (app.resyncInterval === undefined) add('resyncInterval', 'missing (set it on the app or in defaults)');
    else if (app.resyncInterval < MIN_REFRESH_SECONDS)
      add('resyncInterval', `the operator refuses a refreshInterval under ${MIN_REFRESH_SECONDS}s`);
    if (!app.project)
      add(
        'projectSlug',
        'missing: each InfisicalStaticSecret source needs exactly one of projectSlug or projectId (here or in defaults)',
      );
    if (app.own.has('auth'))
      add(
        'auth',
        `one InfisicalAuth (Kubernetes auth, the table's infisical block) serves every app; per-app auth is infisical-v1alpha1's`,
      );
    if (app.delivery === 'files') add('delivery', FILES_NEED_CSI);
  }
  return out;
}

function files(table: AppsTable): BackendFile[] {
  const ns = table.infisical.namespace;
  const shared: Document[] = [
    {
      apiVersion: API_VERSION,
      kind: 'InfisicalConnection',
      metadata: { name: CONNECTION_NAME, namespace: ns, labels: { ...MANAGED_LABELS } },
      spec: { address: connectionAddress(table) },
    },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: table.infisical.serviceAccount, namespace: ns, labels: { ...MANAGED_LABELS } },
    },
    {
      apiVersion: API_VERSION,
      kind: 'InfisicalAuth',
      metadata: { name: AUTH_NAME, namespace: ns, labels: { ...MANAGED_LABELS } },
      spec: {
        infisicalConnectionRef: { name: CONNECTION_NAME, namespace: ns },
        method: 'kubernetes',
        kubernetes: {
          identityIdRef: identityIdRef(),
          serviceAccountRef: { name: table.infisical.serviceAccount, namespace: ns },
        },
      },
    },
  ];
  return [
    { file: `${ns}-${AUTH_NAME}.yaml`, documents: shared },
    ...table.apps.map(
      (app): BackendFile => ({
        file: `${app.namespace}-${app.name}.yaml`,
        app,
        documents: [staticSecret(app, ns)],
      }),
    ),
  ];
}

function staticSecret(app: RuntimeApp, authNamespace: string): Document {
  return {
    apiVersion: API_VERSION,
    kind: 'InfisicalStaticSecret',
    metadata: { name: app.name, namespace: app.namespace, labels: { ...MANAGED_LABELS } },
    spec: {
      infisicalAuthRef: { name: AUTH_NAME, namespace: authNamespace },
      syncOptions: { refreshInterval: `${app.resyncInterval}s` },
      sources: [{ ...app.project, environmentSlug: app.envSlug, secretPath: app.path }],
      targets: [
        {
          name: app.secret,
          namespace: app.namespace,
          kind: 'Secret',
          // Owner: deleting the resource deletes the Secret, so an app removed from the table leaves
          // no orphaned credentials.
          creationPolicy: 'Owner',
          secretType: 'Opaque',
          template: {
            engineVersion: 'v1',
            data: Object.fromEntries(app.keys.map((k) => [k.key, templateOf(k.from)])),
          },
          // Given maps stop the operator copying this resource's labels and annotations onto the
          // Secret: Argo CD's tracking label there made Argo show the Secret OutOfSync and prune it
          // (Infisical/infisical#1732). Both maps are required by the schema once metadata is given.
          metadata: { labels: { ...MANAGED_LABELS }, annotations: {} },
        },
      ],
    },
  };
}

/**
 * The template context maps each Infisical key to {Value, SecretPath} (operator v0.11.5
 * internal/services/infisicalstaticsecret). `.KEY.Value` works for Go identifiers only; a key with "-"
 * or "." needs `index`.
 */
function templateOf(sourceKey: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(sourceKey)
    ? `{{ .${sourceKey}.Value }}`
    : `{{ (index . ${JSON.stringify(sourceKey)}).Value }}`;
}
