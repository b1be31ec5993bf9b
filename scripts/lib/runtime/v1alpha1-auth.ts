/**
 * The `auth` block of the apps table: exactly one of the operator's authentication methods, with the
 * field names of the CRD (secrets.infisical.com_infisicalsecrets.yaml, spec.authentication). Only the
 * methods this homelab has used are accepted (original flow §7: serviceToken, then universalAuth, then
 * kubernetesAuth); the CRD's other methods need cloud identities the cluster does not have.
 */
import {
  describe,
  dnsLabelProblem,
  dnsSubdomainProblem,
  idProblem,
  isPlainObject,
  type Plain,
  type Problems,
  readString,
  refuseUnknown,
} from './fields.ts';

export interface SecretRef {
  secretName: string;
  secretNamespace: string;
}

export type Auth =
  | { method: 'serviceToken'; serviceTokenSecretReference: SecretRef }
  | { method: 'universalAuth'; credentialsRef: SecretRef }
  | {
      method: 'kubernetesAuth';
      identityId: string;
      serviceAccountRef: { name: string; namespace: string };
      autoCreateServiceAccountToken?: boolean;
      serviceAccountTokenAudiences?: string[];
    };

export type AuthMethod = Auth['method'];

/**
 * Whether the method's secretsScope names a project. The CRD gives serviceToken's scope only envSlug,
 * secretsPath and recursive (the token itself is bound to one project); the identity methods' scopes
 * have projectSlug and projectId, of which the operator requires exactly one (anchors §4, ValidateScope).
 */
export const NEEDS_PROJECT: Record<AuthMethod, boolean> = {
  serviceToken: false,
  universalAuth: true,
  kubernetesAuth: true,
};

const METHODS = Object.keys(NEEDS_PROJECT) as AuthMethod[];

/** The CRD's methods this table refuses, named so the message says "not supported" rather than "typo". */
const OTHER_CRD_METHODS = [
  'awsIamAuth',
  'azureAuth',
  'gcpIamAuth',
  'gcpIdTokenAuth',
  'ldapAuth',
  'serviceAccount',
];

/** Unknown keys in a method block: every allowed key is the CRD's, so anything else is not the CRD's. */
function refuseNonCrd(body: Plain, method: AuthMethod, allowed: readonly string[], at: Problems): void {
  refuseUnknown(body, allowed, at, {
    unknown: `not a field of ${method} in the InfisicalSecret CRD`,
    hints: {
      secretsScope:
        "not set here: secretsScope is built from the app's path, envSlug and projectSlug/projectId",
    },
  });
}

export function parseAuth(value: unknown, at: Problems): Auth | undefined {
  if (!isPlainObject(value)) {
    at.add('', `must be a mapping with one of ${METHODS.join(', ')} (got ${describe(value)})`);
    return undefined;
  }
  const keys = Object.keys(value);
  if (keys.length !== 1) {
    at.add(
      '',
      `must name exactly one method (${METHODS.join(', ')}); got ${keys.length ? keys.join(', ') : 'none'}`,
    );
    return undefined;
  }
  const method = keys[0] as string;
  const body = value[method];
  const where = at.at(method);
  if (OTHER_CRD_METHODS.includes(method)) {
    at.add(method, `the CRD has this method but this table does not support it (use ${METHODS.join(', ')})`);
    return undefined;
  }
  if (!(METHODS as string[]).includes(method)) {
    at.add(method, `unknown auth method (use ${METHODS.join(', ')})`);
    return undefined;
  }
  if (!isPlainObject(body)) {
    where.add('', `must be a mapping (got ${describe(body)})`);
    return undefined;
  }
  const before = at.list.length;
  const auth = parseMethod(method as AuthMethod, body, where);
  return at.list.length === before ? auth : undefined;
}

function parseMethod(method: AuthMethod, body: Plain, at: Problems): Auth | undefined {
  switch (method) {
    case 'serviceToken': {
      refuseNonCrd(body, method, ['serviceTokenSecretReference'], at);
      const ref = readSecretRef(body, 'serviceTokenSecretReference', at);
      return ref && { method, serviceTokenSecretReference: ref };
    }
    case 'universalAuth': {
      refuseNonCrd(body, method, ['credentialsRef'], at);
      const ref = readSecretRef(body, 'credentialsRef', at);
      return ref && { method, credentialsRef: ref };
    }
    case 'kubernetesAuth':
      return parseKubernetesAuth(body, at);
  }
}

function parseKubernetesAuth(body: Plain, at: Problems): Auth | undefined {
  refuseNonCrd(
    body,
    'kubernetesAuth',
    ['identityId', 'serviceAccountRef', 'autoCreateServiceAccountToken', 'serviceAccountTokenAudiences'],
    at,
  );
  const identityId = readString(body, 'identityId', at, { required: true, check: idProblem });
  const sa = readObject(body, 'serviceAccountRef', at);
  let serviceAccountRef: { name: string; namespace: string } | undefined;
  if (sa) {
    const saAt = at.at('serviceAccountRef');
    refuseUnknown(sa, ['name', 'namespace'], saAt);
    const name = readString(sa, 'name', saAt, { required: true, check: dnsSubdomainProblem });
    const namespace = readString(sa, 'namespace', saAt, { required: true, check: dnsLabelProblem });
    if (name && namespace) serviceAccountRef = { name, namespace };
  }
  const auto = body.autoCreateServiceAccountToken;
  if (auto !== undefined && typeof auto !== 'boolean')
    at.add('autoCreateServiceAccountToken', `must be true or false (got ${describe(auto)})`);
  const audiences = body.serviceAccountTokenAudiences;
  if (
    audiences !== undefined &&
    !(Array.isArray(audiences) && audiences.every((a) => typeof a === 'string' && a !== ''))
  )
    at.add('serviceAccountTokenAudiences', 'must be a list of non-empty strings');
  if (!identityId || !serviceAccountRef) return undefined;
  return {
    method: 'kubernetesAuth',
    identityId,
    serviceAccountRef,
    ...(typeof auto === 'boolean' ? { autoCreateServiceAccountToken: auto } : {}),
    ...(Array.isArray(audiences) ? { serviceAccountTokenAudiences: audiences as string[] } : {}),
  };
}

function readSecretRef(body: Plain, key: string, at: Problems): SecretRef | undefined {
  const ref = readObject(body, key, at);
  if (!ref) return undefined;
  const refAt = at.at(key);
  refuseUnknown(ref, ['secretName', 'secretNamespace'], refAt);
  const secretName = readString(ref, 'secretName', refAt, { required: true, check: dnsSubdomainProblem });
  const secretNamespace = readString(ref, 'secretNamespace', refAt, {
    required: true,
    check: dnsLabelProblem,
  });
  return secretName && secretNamespace ? { secretName, secretNamespace } : undefined;
}

function readObject(body: Plain, key: string, at: Problems): Plain | undefined {
  const value = body[key];
  if (value === undefined || value === null) {
    at.add(key, 'missing');
    return undefined;
  }
  if (!isPlainObject(value)) {
    at.add(key, `must be a mapping (got ${describe(value)})`);
    return undefined;
  }
  return value;
}
