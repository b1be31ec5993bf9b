/**
 * Loads cloud/infisical/apps.yaml, the one table of runtime-tier apps, and resolves every app against
 * the table's defaults. Every problem is collected before anything is reported, and each one names the
 * app and the field, so one run shows the whole fix list (the original copy-pasted the CR into five Go
 * files and found its mistakes one reconcile at a time).
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { InputError } from '../errors.ts';
import { type Auth, NEEDS_PROJECT, parseAuth } from './auth.ts';
import {
  describe,
  dnsLabelProblem,
  dnsSubdomainProblem,
  idProblem,
  infisicalPathProblem,
  isPlainObject,
  type Plain,
  type Problem,
  Problems,
  readString,
  refuseUnknown,
  secretKeyProblem,
  slugProblem,
  urlProblem,
} from './fields.ts';

export const DEFAULT_APPS_FILE = 'cloud/infisical/apps.yaml';

export type Project = { projectSlug: string } | { projectId: string };

/** One app, fully resolved: what the renderer needs and nothing left to default. */
export interface RuntimeApp {
  /** The table's key for the app (`grafana`); names it in messages. */
  id: string;
  title: string;
  /** Infisical folder, absolute. */
  path: string;
  namespace: string;
  /** The managed Kubernetes Secret. */
  secret: string;
  /** The InfisicalSecret CR. */
  name: string;
  /** Keys the workload reads; documentation only, the CR cannot list them. */
  keys: string[];
  hostAPI: string;
  envSlug: string;
  resyncInterval: number;
  /** Present exactly when the auth method's secretsScope takes a project. */
  project?: Project;
  auth: Auth;
}

/** A table with problems: exit 2, with every problem in the message. */
export class AppsTableError extends InputError {
  constructor(
    readonly file: string,
    readonly problems: readonly Problem[],
  ) {
    super(
      `${file} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems
        .map((p) => `  - ${p.where}: ${p.message}`)
        .join('\n')}`,
      `fix the table (its header comment lists every field), then run again`,
    );
  }
}

/** The fields an app may override; `defaults` may hold exactly these. */
const SHARED_FIELDS = ['hostAPI', 'envSlug', 'resyncInterval', 'projectSlug', 'projectId', 'auth'] as const;
const APP_FIELDS = ['title', 'path', 'namespace', 'secret', 'name', 'keys', ...SHARED_FIELDS] as const;

interface Shared {
  /** The fields the level wrote, good or bad: a bad one is reported where it is, not as missing. */
  given: Set<string>;
  hostAPI?: string;
  envSlug?: string;
  resyncInterval?: number;
  /** Present when the level sets a project; `undefined` inside means it set both (already reported). */
  project?: { value?: Project };
  auth?: Auth;
}

export async function loadAppsTable(file: string): Promise<RuntimeApp[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      `cannot read the apps table ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      `pass --apps FILE, or run from the project root (default ${DEFAULT_APPS_FILE})`,
    );
  }
  return parseAppsTable(text, file);
}

export function parseAppsTable(text: string, file: string): RuntimeApp[] {
  // uniqueKeys (the default) makes a repeated app id a parse error rather than a silent override.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new AppsTableError(
      file,
      doc.errors.map((e) => ({
        where: 'yaml',
        message: (e.message.split('\n')[0] ?? e.message).replace(/:$/, ''),
      })),
    );
  }
  return resolveAppsTable(doc.toJS({ maxAliasCount: 100 }), file);
}

/** Validates a parsed table and resolves each app; throws AppsTableError listing every problem. */
export function resolveAppsTable(table: unknown, file: string): RuntimeApp[] {
  const problems = new Problems();
  const apps = resolveTable(table, problems);
  if (problems.list.length > 0) throw new AppsTableError(file, problems.list);
  return apps;
}

function resolveTable(table: unknown, problems: Problems): RuntimeApp[] {
  if (!isPlainObject(table)) {
    problems.add('(top level)', `must be a mapping with defaults and apps (got ${describe(table)})`);
    return [];
  }
  refuseUnknown(table, ['defaults', 'apps'], problems);
  let defaults: Shared = { given: new Set() };
  if (table.defaults !== undefined) {
    if (isPlainObject(table.defaults)) {
      refuseUnknown(table.defaults, SHARED_FIELDS, problems.at('defaults'));
      defaults = readShared(table.defaults, problems.at('defaults'));
    } else problems.add('defaults', `must be a mapping (got ${describe(table.defaults)})`);
  }
  if (!isPlainObject(table.apps) || Object.keys(table.apps).length === 0) {
    problems.add('apps', `must be a non-empty mapping of app id to app (got ${describe(table.apps)})`);
    return [];
  }
  const resolved: RuntimeApp[] = [];
  const identities: Identity[] = [];
  for (const [id, body] of Object.entries(table.apps)) {
    const app = resolveApp(id, body, defaults, problems.at(`apps.${id}`), identities);
    if (app) resolved.push(app);
  }
  findCollisions(identities, problems);
  return resolved;
}

/** What two apps must not share; collected even from apps with other problems, to report all at once. */
type Identity = Pick<RuntimeApp, 'id' | 'namespace' | 'name' | 'secret'>;

function resolveApp(
  id: string,
  body: unknown,
  defaults: Shared,
  at: Problems,
  identities: Identity[],
): RuntimeApp | undefined {
  const before = at.list.length;
  const idProblemText = dnsLabelProblem(id);
  if (idProblemText) at.add('', `app id ${idProblemText}`);
  if (!isPlainObject(body)) {
    at.add('', `must be a mapping (got ${describe(body)})`);
    return undefined;
  }
  refuseUnknown(body, APP_FIELDS, at);
  const own = readShared(body, at);
  const title = readString(body, 'title', at) ?? id;
  const path = readString(body, 'path', at, { required: true, check: infisicalPathProblem });
  const namespace = readString(body, 'namespace', at, { required: true, check: dnsLabelProblem });
  const secret = readString(body, 'secret', at, { required: true, check: dnsSubdomainProblem });
  // The design page names the CR after the Secret it manages.
  const name = readString(body, 'name', at, { check: dnsSubdomainProblem }) ?? secret;
  const keys = readKeys(body, at);
  if (namespace && secret && name) identities.push({ id, namespace, name, secret });

  const hostAPI = own.hostAPI ?? defaults.hostAPI;
  const envSlug = own.envSlug ?? defaults.envSlug;
  const resyncInterval = own.resyncInterval ?? defaults.resyncInterval;
  const auth = own.auth ?? defaults.auth;
  for (const [field, value] of Object.entries({ hostAPI, envSlug, resyncInterval, auth })) {
    // Missing only when neither level set it; a level that set a bad value has reported that already.
    if (value === undefined && !own.given.has(field) && !defaults.given.has(field))
      at.add(field, 'missing (set it on the app or in defaults)');
  }
  const project = auth ? resolveProject(auth, own, defaults, at) : undefined;

  if (at.list.length > before) return undefined;
  if (!path || !namespace || !secret || !name || !keys || !hostAPI || !envSlug || !resyncInterval || !auth)
    return undefined;
  return {
    id,
    title,
    path,
    namespace,
    secret,
    name,
    keys,
    hostAPI,
    envSlug,
    resyncInterval,
    ...(project ? { project } : {}),
    auth,
  };
}

/**
 * An app that names a project replaces the default pair whole, so `projectId` on an app overrides a
 * default `projectSlug` instead of yielding both. The project is emitted only where the CRD's scope has
 * the field; naming one on a serviceToken app would be silently dropped, so it is refused instead.
 */
function resolveProject(auth: Auth, own: Shared, defaults: Shared, at: Problems): Project | undefined {
  if (!NEEDS_PROJECT[auth.method]) {
    if (own.project)
      at.add(
        own.project.value && 'projectId' in own.project.value ? 'projectId' : 'projectSlug',
        `the CRD's serviceToken.secretsScope has no project field (a service token is bound to its project); remove it, or switch auth to universalAuth or kubernetesAuth`,
      );
    return undefined;
  }
  const chosen = own.project ?? defaults.project;
  if (!chosen)
    at.add(
      'projectSlug',
      `missing: auth ${auth.method} needs exactly one of projectSlug or projectId (here or in defaults)`,
    );
  return chosen?.value;
}

function readShared(obj: Plain, at: Problems): Shared {
  const shared: Shared = { given: new Set(Object.keys(obj).filter((k) => obj[k] !== undefined)) };
  const hostAPI = readString(obj, 'hostAPI', at, { check: urlProblem });
  if (hostAPI) shared.hostAPI = hostAPI;
  const envSlug = readString(obj, 'envSlug', at, { check: slugProblem });
  if (envSlug) shared.envSlug = envSlug;
  if (obj.resyncInterval !== undefined) {
    const r = obj.resyncInterval;
    if (typeof r === 'number' && Number.isSafeInteger(r) && r >= 1) shared.resyncInterval = r;
    else at.add('resyncInterval', `must be a whole number of seconds, at least 1 (got ${describe(r)})`);
  }
  const projectSlug = readString(obj, 'projectSlug', at, { check: slugProblem });
  const projectId = readString(obj, 'projectId', at, { check: idProblem });
  if (obj.projectSlug !== undefined && obj.projectId !== undefined) {
    // The operator requires exactly one (ValidateScope) and rejects the CR only while reconciling.
    at.add('projectId', 'projectSlug and projectId are both set; keep exactly one (prefer projectId)');
    shared.project = {};
  } else if (projectSlug) shared.project = { value: { projectSlug } };
  else if (projectId) shared.project = { value: { projectId } };
  else if (obj.projectSlug !== undefined || obj.projectId !== undefined) shared.project = {};
  if (obj.auth !== undefined) {
    const auth = parseAuth(obj.auth, at.at('auth'));
    if (auth) shared.auth = auth;
  }
  return shared;
}

function readKeys(body: Plain, at: Problems): string[] | undefined {
  const keys = body.keys;
  if (keys === undefined) {
    at.add('keys', 'missing: list the keys the workload reads from the Secret');
    return undefined;
  }
  if (!Array.isArray(keys) || keys.length === 0) {
    at.add('keys', `must be a non-empty list of Secret keys (got ${describe(keys)})`);
    return undefined;
  }
  const seen = new Set<string>();
  let ok = true;
  keys.forEach((key, i) => {
    const problem =
      typeof key === 'string' ? secretKeyProblem(key) : `must be a string (got ${describe(key)})`;
    if (problem) at.add(`keys[${i}]`, problem);
    else if (seen.has(key)) at.add(`keys[${i}]`, `"${key}" is listed twice`);
    else seen.add(key);
    ok &&= !problem;
  });
  return ok && seen.size === keys.length ? (keys as string[]) : undefined;
}

/**
 * Two CRs with one (namespace, name) overwrite each other; two CRs managing one Secret fight over it
 * every resync; and two pairs can still share an output file name (`a-b`/`c` and `a`/`b-c`).
 */
function findCollisions(apps: readonly Identity[], problems: Problems): void {
  const seen = {
    cr: new Map<string, string>(),
    secret: new Map<string, string>(),
    file: new Map<string, string>(),
  };
  for (const app of apps) {
    const at = problems.at(`apps.${app.id}`);
    const claim = (map: Map<string, string>, key: string, field: string, what: string): boolean => {
      const first = map.get(key);
      if (first) at.add(field, `${what} is also used by app ${first}`);
      else map.set(key, app.id);
      return !first;
    };
    const crFree = claim(
      seen.cr,
      `${app.namespace}/${app.name}`,
      'name',
      `InfisicalSecret ${app.namespace}/${app.name}`,
    );
    claim(
      seen.secret,
      `${app.namespace}/${app.secret}`,
      'secret',
      `managed Secret ${app.namespace}/${app.secret}`,
    );
    // Same (namespace, name) means same file name too: report the cause once.
    if (crFree) claim(seen.file, outputFileName(app), 'name', `output file ${outputFileName(app)}`);
  }
}

/** `--out` writes one file per app under this name. */
export function outputFileName(app: Pick<RuntimeApp, 'namespace' | 'name'>): string {
  return `${app.namespace}-${app.name}.yaml`;
}
