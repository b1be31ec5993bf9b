/**
 * openbao: OpenBao through the Secrets Store CSI driver (shared/reference/openbao-runtime.md), where the
 * original project went after the Infisical operator's RBAC and server-side-apply problems. One
 * SecretProviderClass per app (secrets-store.csi.x-k8s.io/v1, provider `openbao`, the socket name the
 * OpenBao chart's provider listens on); `secretObjects` sync the mounted values into the app's Secret.
 * The driver syncs only while a pod mounts the volume, so an app whose chart cannot mount it gets a
 * minimal sync workload (a pause container with the volume, labelled as such).
 */
import { stringify } from 'yaml';
import type { AppsTable, OpenBaoSettings, RuntimeApp } from '../apps.ts';
import type { Problem } from '../fields.ts';
import {
  appProblem,
  type BackendFile,
  type Document,
  MANAGED_LABELS,
  type RuntimeBackend,
} from './backend.ts';

export const SPC_API_VERSION = 'secrets-store.csi.x-k8s.io/v1';
export const PROVIDER = 'openbao';
export const CSI_DRIVER = 'secrets-store.csi.k8s.io';
/** Reloader (stakater/Reloader) restarts a workload carrying this annotation when the named Secret changes. */
export const RELOADER_ANNOTATION = 'secret.reloader.stakater.com/reload';
/** Marks what the sync workload is, for people and for `kubectl get -l`. */
export const SYNC_COMPONENT = 'secret-sync';
export const SYNC_PURPOSE_ANNOTATION = 'secrets-flow/purpose';
/** registry.k8s.io/pause: does nothing, needs no capabilities, ~300 kB. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
const MOUNT_PATH = '/mnt/secrets';

export const openbao: RuntimeBackend = {
  id: 'openbao',
  kinds: ['SecretProviderClass', 'ServiceAccount', 'Deployment'],
  problems,
  files: (table) =>
    table.apps.map(
      (app): BackendFile => ({
        file: `${app.namespace}-${app.name}.yaml`,
        app,
        documents: [
          secretProviderClass(app, table.openbao),
          ...(needsSyncWorkload(app) ? syncWorkload(app) : []),
        ],
      }),
    ),
  restartHint: (app) =>
    app.restartOnChange && app.delivery === 'secret'
      ? { annotation: RELOADER_ANNOTATION, value: app.secret, by: 'Reloader (stakater/Reloader)' }
      : undefined,
};

/** The KV v2 path of an app's values below the mount: `/grafana` → `grafana`. */
export function kvPath(app: RuntimeApp): string {
  return app.path.slice(1);
}

/** What the CSI provider reads: KV v2 puts `data/` after the mount. */
export function apiPath(app: RuntimeApp, settings: OpenBaoSettings): string {
  return `${settings.mount}/data/${kvPath(app)}`;
}

export function needsSyncWorkload(app: RuntimeApp): boolean {
  return app.delivery === 'secret' && app.mountedBy === 'sync-workload';
}

function problems(table: AppsTable): Problem[] {
  const out: Problem[] = [];
  const paths = new Map<string, string>();
  const accounts = new Map<string, string>();
  for (const app of table.apps) {
    const add = (field: string, message: string) => out.push(appProblem(app, field, message));
    if (!app.serviceAccount)
      add('serviceAccount', "missing: OpenBao's role for the app is bound to the workload's service account");
    if (app.path === '/') add('path', 'OpenBao needs a KV path below the mount ("/grafana"), not "/"');
    else {
      const first = paths.get(app.path);
      // Each app's role reads its own path, and the create-only initial write is per path.
      if (first) add('path', `${app.path} is also used by app ${first}: give each app its own OpenBao path`);
      else paths.set(app.path, app.id);
    }
    if (app.delivery === 'files' && app.restartOnChange)
      add(
        'restartOnChange',
        'files-only delivery updates files in place; Reloader watches Secrets only: set delivery: secret, or restartOnChange: false',
      );
    if (app.delivery === 'files' && app.mountedBy === 'sync-workload')
      add(
        'mountedBy',
        "a sync workload only makes sense for a synced Secret; files-only delivery needs the app's own pod to mount the volume",
      );
    if (needsSyncWorkload(app) && app.serviceAccount) {
      // The sync workload renders its service account: two in one namespace would be one object.
      const key = `${app.namespace}/${app.serviceAccount}`;
      const first = accounts.get(key);
      if (first)
        add('serviceAccount', `ServiceAccount ${key} is also rendered for app ${first}'s sync workload`);
      else accounts.set(key, app.id);
    }
  }
  return out;
}

function secretProviderClass(app: RuntimeApp, settings: OpenBaoSettings): Document {
  const objects = app.keys.map((k) => ({
    objectName: k.key,
    secretPath: apiPath(app, settings),
    secretKey: k.from,
  }));
  return {
    apiVersion: SPC_API_VERSION,
    kind: 'SecretProviderClass',
    metadata: { name: app.name, namespace: app.namespace, labels: { ...MANAGED_LABELS } },
    spec: {
      provider: PROVIDER,
      parameters: {
        // The role is named after the app (setup plan); OpenBao checks the pod's service account.
        roleName: app.id,
        ...(settings.address ? { baoAddress: settings.address } : {}),
        ...(settings.authMount !== 'kubernetes' ? { baoKubernetesMountPath: settings.authMount } : {}),
        // parameters is a map of strings: the provider parses this one string as a YAML list.
        objects: stringify(objects, { lineWidth: 0 }),
      },
      ...(app.delivery === 'secret'
        ? {
            secretObjects: [
              {
                secretName: app.secret,
                type: 'Opaque',
                labels: { ...MANAGED_LABELS },
                data: app.keys.map((k) => ({ objectName: k.key, key: k.key })),
              },
            ],
          }
        : {}),
    },
  };
}

function syncWorkload(app: RuntimeApp): Document[] {
  const name = `${app.name}-${SYNC_COMPONENT}`;
  const labels = {
    ...MANAGED_LABELS,
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/component': SYNC_COMPONENT,
  };
  const purpose = `mounts the CSI volume only, so that the driver syncs Secret ${app.secret}: the ${app.title} chart cannot mount it`;
  const serviceAccount = app.serviceAccount as string;
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: serviceAccount, namespace: app.namespace, labels },
      // The pause container calls no API; the CSI driver requests its own token for the provider.
      automountServiceAccountToken: false,
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name,
        namespace: app.namespace,
        labels,
        annotations: { [SYNC_PURPOSE_ANNOTATION]: purpose },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'app.kubernetes.io/name': name } },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: serviceAccount,
            automountServiceAccountToken: false,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65535,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'pause',
                image: PAUSE_IMAGE,
                resources: { requests: { cpu: '1m', memory: '8Mi' }, limits: { memory: '16Mi' } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'secrets', mountPath: MOUNT_PATH, readOnly: true }],
              },
            ],
            volumes: [
              {
                name: 'secrets',
                csi: {
                  driver: CSI_DRIVER,
                  readOnly: true,
                  volumeAttributes: { secretProviderClass: app.name },
                },
              },
            ],
          },
        },
      },
    },
  ];
}
