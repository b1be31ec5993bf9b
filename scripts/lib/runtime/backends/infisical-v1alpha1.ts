/**
 * infisical-v1alpha1: one InfisicalSecret per app, exactly the design page's pattern ("InfisicalSecret
 * pattern"), with only fields the CRD defines (secrets.infisical.com_infisicalsecrets.yaml, chart 0.11.5).
 */
import { type AppsTable, outputFileName, type RuntimeApp } from '../apps.ts';
import type { Problem } from '../fields.ts';
import { type Auth, NEEDS_PROJECT } from '../v1alpha1-auth.ts';
import {
  appProblem,
  type BackendFile,
  type Document,
  MANAGED_LABELS,
  type RuntimeBackend,
} from './backend.ts';

export const API_VERSION = 'secrets.infisical.com/v1alpha1';
export const KIND = 'InfisicalSecret';

/**
 * Argo CD applies these CRs client-side, as on the design page and as the cluster's live CRs were
 * created (moving a live object between client-side and server-side apply changes field ownership).
 * The original reason, a projectSlug the CRD lacks, is gone: serviceToken scopes carry no project.
 */
export const SYNC_OPTIONS_ANNOTATION = 'argocd.argoproj.io/sync-options';
export const SYNC_OPTIONS_VALUE = 'ServerSideApply=false';

/** The operator's own restart mechanism: it restarts annotated workloads that use the managed Secret. */
export const INFISICAL_AUTO_RELOAD = 'secrets.infisical.com/auto-reload';

/** Both Infisical backends: the operator restarts workloads carrying its annotation (either API version). */
export const infisicalRestartHint: RuntimeBackend['restartHint'] = (app) =>
  app.restartOnChange
    ? { annotation: INFISICAL_AUTO_RELOAD, value: 'true', by: 'the Infisical operator' }
    : undefined;

/** Both Infisical backends: the operator writes a Secret whatever the row says. */
export const FILES_NEED_CSI =
  'files-only delivery needs the CSI driver: the Infisical operator always writes a Secret (use --backend openbao)';

export const infisicalV1alpha1: RuntimeBackend = {
  id: 'infisical-v1alpha1',
  kinds: [KIND],
  problems,
  files: (table) =>
    table.apps.map(
      (app): BackendFile => ({ file: outputFileName(app), app, documents: [infisicalSecretManifest(app)] }),
    ),
  restartHint: infisicalRestartHint,
};

function problems(table: AppsTable): Problem[] {
  const out: Problem[] = [];
  for (const app of table.apps) {
    const add = (field: string, message: string) => out.push(appProblem(app, field, message));
    for (const field of ['hostAPI', 'envSlug', 'resyncInterval', 'auth'] as const)
      if (app[field] === undefined) add(field, 'missing (set it on the app or in defaults)');
    if (app.delivery === 'files') add('delivery', FILES_NEED_CSI);
    for (const k of app.keys)
      if (k.from !== k.key)
        add(
          `keys.${k.key}.from`,
          `the design page's InfisicalSecret copies keys as named, it cannot rename ${k.from} to ${k.key}: rename the key in Infisical, or use --backend infisical (a template renames)`,
        );
    if (!app.auth) continue;
    if (!NEEDS_PROJECT[app.auth.method]) {
      const own = app.own.has('projectId')
        ? 'projectId'
        : app.own.has('projectSlug')
          ? 'projectSlug'
          : undefined;
      if (own)
        add(
          own,
          `the CRD's serviceToken.secretsScope has no project field (a service token is bound to its project); remove it, or switch auth to universalAuth or kubernetesAuth`,
        );
    } else if (!app.project)
      add(
        'projectSlug',
        `missing: auth ${app.auth.method} needs exactly one of projectSlug or projectId (here or in defaults)`,
      );
  }
  return out;
}

export function infisicalSecretManifest(app: RuntimeApp): Document {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: app.name,
      namespace: app.namespace,
      labels: { ...MANAGED_LABELS },
      annotations: { [SYNC_OPTIONS_ANNOTATION]: SYNC_OPTIONS_VALUE },
    },
    spec: {
      hostAPI: app.hostAPI,
      resyncInterval: app.resyncInterval,
      authentication: authentication(app),
      // managedSecretReference (deprecated upstream for managedKubeSecretReferences[]) is the design
      // page's field and what operator 0.10.x reads. Owner: deleting the CR deletes the Secret, so an
      // app removed from the table leaves no orphaned credentials (the CRD's default is Orphan).
      managedSecretReference: {
        secretName: app.secret,
        secretNamespace: app.namespace,
        creationPolicy: 'Owner',
      },
    },
  };
}

function authentication(app: RuntimeApp): Record<string, unknown> {
  const auth = app.auth as Auth;
  // A service token is bound to its project: its scope has no project field (problems() refused one).
  const secretsScope = {
    ...(NEEDS_PROJECT[auth.method] ? (app.project ?? {}) : {}),
    envSlug: app.envSlug,
    secretsPath: app.path,
  };
  switch (auth.method) {
    case 'serviceToken':
      return {
        serviceToken: {
          serviceTokenSecretReference: { ...auth.serviceTokenSecretReference },
          secretsScope,
        },
      };
    case 'universalAuth':
      return { universalAuth: { credentialsRef: { ...auth.credentialsRef }, secretsScope } };
    case 'kubernetesAuth':
      return {
        kubernetesAuth: {
          identityId: auth.identityId,
          serviceAccountRef: { ...auth.serviceAccountRef },
          ...(auth.autoCreateServiceAccountToken === undefined
            ? {}
            : { autoCreateServiceAccountToken: auth.autoCreateServiceAccountToken }),
          ...(auth.serviceAccountTokenAudiences === undefined
            ? {}
            : { serviceAccountTokenAudiences: [...auth.serviceAccountTokenAudiences] }),
          secretsScope,
        },
      };
  }
}
