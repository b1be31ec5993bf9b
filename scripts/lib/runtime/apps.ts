/**
 * Loads cloud/runtime/apps.yaml, the one table of runtime-tier apps, and resolves every app against
 * the table's defaults. Every backend reads the rows resolved here; what a backend cannot express is
 * refused by that backend (backends/*.ts), not here. Every problem is collected before anything is
 * reported, and each one names the app and the field, so one run shows the whole fix list (the
 * original copy-pasted the CR into five Go files and found its mistakes one reconcile at a time).
 */
import { parseDocument } from 'yaml';
import { InputError } from '../core/errors.ts';
import { readBoundedText } from '../core/read-bounded.ts';
import {
  BACKEND_IDS,
  type BackendId,
  backendOfTable,
  DEFAULT_APPS_FILE,
  LEGACY_APPS_FILE,
} from '../secrets/backend-id.ts';
import type { Generator } from '../secrets/schema.ts';
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
import { type Auth, parseAuth } from './v1alpha1-auth.ts';

export { DEFAULT_APPS_FILE, LEGACY_APPS_FILE };

export type Project = { projectSlug: string } | { projectId: string };

/** One key of an app's Secret. */
export interface AppKey {
  /** The key in the Kubernetes Secret (and the mounted file's name). */
  key: string;
  /** The key's name at the source; equals `key` unless renamed. */
  from: string;
  /** How the initial value is made; `manual` values are set by an operator. */
  generate: Generator;
  rotatable: boolean;
  /** Why a key may not be rotated. */
  why?: string;
  setDuring: string;
}

export type Delivery = 'secret' | 'files';
export type MountedBy = 'workload' | 'sync-workload';

/** One app, fully resolved: what the renderers need and nothing left to default. */
export interface RuntimeApp {
  /** The table's key for the app (`grafana`); names it in messages, and OpenBao's role and policy. */
  id: string;
  title: string;
  /** The source path, absolute (`/grafana`): Infisical folder, or OpenBao KV path below the mount. */
  path: string;
  namespace: string;
  /** The managed Kubernetes Secret. */
  secret: string;
  /** The rendered resource (InfisicalSecret, InfisicalStaticSecret, SecretProviderClass). */
  name: string;
  keys: AppKey[];
  serviceAccount?: string;
  delivery: Delivery;
  mountedBy: MountedBy;
  restartOnChange: boolean;
  hostAPI?: string;
  envSlug?: string;
  resyncInterval?: number;
  project?: Project;
  /** The infisical-v1alpha1 authentication block. */
  auth?: Auth;
  /** Fields the app set itself (not inherited), for backends that refuse per-app overrides. */
  own: ReadonlySet<string>;
}

/** backend infisical: the one InfisicalConnection and InfisicalAuth every app's secret uses. */
export interface InfisicalSettings {
  namespace: string;
  serviceAccount: string;
}

/** backend openbao: where OpenBao runs and how its one-time setup configures it. */
export interface OpenBaoSettings {
  namespace: string;
  pod: string;
  mount: string;
  authMount: string;
  kubernetesHost: string;
  tokenTTL: string;
  /** Per-class address; unset means the provider's (the chart's), which keeps its agent cache. */
  address?: string;
}

export interface AppsTable {
  file: string;
  /** The backend the table names (or implies: an old table is v1alpha1). */
  backend: BackendId;
  infisical: InfisicalSettings;
  openbao: OpenBaoSettings;
  apps: RuntimeApp[];
}

export const INFISICAL_DEFAULTS: InfisicalSettings = {
  namespace: 'infisical',
  serviceAccount: 'infisical-auth',
};

export const OPENBAO_DEFAULTS: OpenBaoSettings = {
  namespace: 'openbao',
  pod: 'openbao-0',
  mount: 'secret',
  authMount: 'kubernetes',
  kubernetesHost: 'https://kubernetes.default.svc',
  tokenTTL: '1h',
};

/** A table with problems: exit 2, with every problem in the message. */
export class AppsTableError extends InputError {
  constructor(
    readonly file: string,
    readonly problems: readonly Problem[],
    hint = `fix the table (its header comment lists every field), then run again`,
  ) {
    super(
      `${file} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems
        .map((p) => `  - ${p.where}: ${p.message}`)
        .join('\n')}`,
      hint,
    );
  }
}

/** The fields an app may override; `defaults` may hold exactly these. */
const SHARED_FIELDS = [
  'delivery',
  'mountedBy',
  'restartOnChange',
  'serviceAccount',
  'hostAPI',
  'envSlug',
  'resyncInterval',
  'projectSlug',
  'projectId',
  'auth',
] as const;
const APP_FIELDS = ['title', 'path', 'namespace', 'secret', 'name', 'keys', ...SHARED_FIELDS] as const;
const KEY_FIELDS = ['from', 'generate', 'howTo', 'rotatable', 'why', 'setDuring'] as const;
const DELIVERIES: readonly Delivery[] = ['secret', 'files'];
const MOUNTED_BY: readonly MountedBy[] = ['workload', 'sync-workload'];
/** The old table's list of key names: values generated like this. */
const LIST_FORM_GENERATOR: Generator = { kind: 'random-chars', length: 32 };
const DEFAULT_SET_DURING = 'Phase 2';

interface Shared {
  /** The fields the level wrote, good or bad: a bad one is reported where it is, not as missing. */
  given: Set<string>;
  delivery?: Delivery;
  mountedBy?: MountedBy;
  restartOnChange?: boolean;
  serviceAccount?: string;
  hostAPI?: string;
  envSlug?: string;
  resyncInterval?: number;
  /** Present when the level sets a project; `undefined` inside means it set both (already reported). */
  project?: { value?: Project };
  auth?: Auth;
}

/**
 * Reads the table at `file`, or at its home, or (when only that exists) at its old home. `notice`
 * receives a sentence for the operator when the old home was used.
 */
export async function loadAppsTable(file?: string, notice?: (message: string) => void): Promise<AppsTable> {
  const candidates = file ? [file] : [DEFAULT_APPS_FILE, LEGACY_APPS_FILE];
  for (const candidate of candidates) {
    let text: string;
    try {
      text = await readBoundedText(candidate, {
        what: 'the apps table',
        kind: 'appsTable',
        hint: 'pass --apps the path of the apps table file',
      });
    } catch (err) {
      if (err instanceof InputError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && candidate !== candidates.at(-1)) continue;
      throw new InputError(
        `cannot read the apps table ${file ?? DEFAULT_APPS_FILE}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
        `pass --apps FILE, or run from the project root (default ${DEFAULT_APPS_FILE})`,
      );
    }
    if (!file && candidate === LEGACY_APPS_FILE)
      notice?.(
        `read the apps table from its old home ${LEGACY_APPS_FILE}; move it: git mv ${LEGACY_APPS_FILE} ${DEFAULT_APPS_FILE}`,
      );
    return parseAppsTable(text, candidate);
  }
  /* c8 ignore next */
  throw new Error('unreachable: the last candidate throws');
}

export function parseAppsTable(text: string, file: string): AppsTable {
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
export function resolveAppsTable(table: unknown, file: string): AppsTable {
  const problems = new Problems();
  const resolved = resolveTable(table, problems, file);
  if (problems.list.length > 0 || !resolved) throw new AppsTableError(file, problems.list);
  return resolved;
}

function resolveTable(table: unknown, problems: Problems, file: string): AppsTable | undefined {
  if (!isPlainObject(table)) {
    problems.add('(top level)', `must be a mapping with defaults and apps (got ${describe(table)})`);
    return undefined;
  }
  refuseUnknown(table, ['backend', 'defaults', 'infisical', 'openbao', 'apps'], problems);
  const backend = backendOfTable(table);
  if (typeof backend !== 'string')
    problems.add('backend', `${describe(backend.invalid)} is not a backend (use ${BACKEND_IDS.join(', ')})`);
  let defaults: Shared = { given: new Set() };
  if (table.defaults !== undefined) {
    if (isPlainObject(table.defaults)) {
      refuseUnknown(table.defaults, SHARED_FIELDS, problems.at('defaults'));
      defaults = readShared(table.defaults, problems.at('defaults'));
    } else problems.add('defaults', `must be a mapping (got ${describe(table.defaults)})`);
  }
  const infisical = readSettings(table.infisical, INFISICAL_DEFAULTS, problems.at('infisical'), {
    namespace: dnsLabelProblem,
    serviceAccount: dnsSubdomainProblem,
  });
  const openbao = readSettings(table.openbao, OPENBAO_DEFAULTS, problems.at('openbao'), {
    namespace: dnsLabelProblem,
    pod: dnsSubdomainProblem,
    mount: baoMountProblem,
    authMount: baoMountProblem,
    kubernetesHost: urlProblem,
    tokenTTL: durationProblem,
    address: urlProblem,
  });
  if (!isPlainObject(table.apps) || Object.keys(table.apps).length === 0) {
    problems.add('apps', `must be a non-empty mapping of app id to app (got ${describe(table.apps)})`);
    return undefined;
  }
  const apps: RuntimeApp[] = [];
  const identities: Identity[] = [];
  for (const [id, body] of Object.entries(table.apps)) {
    const app = resolveApp(id, body, defaults, problems.at(`apps.${id}`), identities);
    if (app) apps.push(app);
  }
  findCollisions(identities, problems);
  if (typeof backend !== 'string' || !infisical || !openbao) return undefined;
  return { file, backend, infisical, openbao, apps };
}

/** A settings block: known fields only, each checked, the rest from the defaults. */
function readSettings<T extends object>(
  value: unknown,
  defaults: T,
  at: Problems,
  checks: Record<string, (v: string) => string | undefined>,
): T | undefined {
  if (value === undefined) return { ...defaults };
  if (!isPlainObject(value)) {
    at.add('', `must be a mapping (got ${describe(value)})`);
    return undefined;
  }
  const before = at.list.length;
  refuseUnknown(value, Object.keys(checks), at);
  const out: Record<string, string> = { ...(defaults as Record<string, string>) };
  for (const [field, check] of Object.entries(checks)) {
    const v = readString(value, field, at, { check });
    if (v !== undefined) out[field] = v;
  }
  return at.list.length === before ? (out as T) : undefined;
}

/** OpenBao mount paths: one or more path segments of letters, digits, "-", "_" and ".". */
function baoMountProblem(value: string): string | undefined {
  return /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(value)
    ? undefined
    : `"${value}" is not a mount path (segments of letters, digits, "-", "_", "." joined by "/")`;
}

/** Go durations as OpenBao reads token TTLs: 90s, 30m, 1h, 1h30m. */
function durationProblem(value: string): string | undefined {
  return /^([0-9]+[smh])+$/.test(value) ? undefined : `"${value}" is not a duration such as 30m or 1h`;
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

  const pick = <K extends keyof Shared>(k: K): Shared[K] => own[k] ?? defaults[k];
  const project = own.project ?? defaults.project;
  if (at.list.length > before) return undefined;
  if (!path || !namespace || !secret || !name || !keys) return undefined;
  const optional = {
    serviceAccount: pick('serviceAccount'),
    hostAPI: pick('hostAPI'),
    envSlug: pick('envSlug'),
    resyncInterval: pick('resyncInterval'),
    project: project?.value,
    auth: pick('auth'),
  };
  return {
    id,
    title,
    path,
    namespace,
    secret,
    name,
    keys,
    delivery: pick('delivery') ?? 'secret',
    mountedBy: pick('mountedBy') ?? 'workload',
    restartOnChange: pick('restartOnChange') ?? false,
    ...(Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)) as Partial<
      typeof optional
    >),
    own: own.given,
  };
}

function readShared(obj: Plain, at: Problems): Shared {
  const shared: Shared = { given: new Set(Object.keys(obj).filter((k) => obj[k] !== undefined)) };
  const delivery = readChoice(obj, 'delivery', DELIVERIES, at);
  if (delivery) shared.delivery = delivery;
  const mountedBy = readChoice(obj, 'mountedBy', MOUNTED_BY, at);
  if (mountedBy) shared.mountedBy = mountedBy;
  const restart = readBoolean(obj, 'restartOnChange', at);
  if (restart !== undefined) shared.restartOnChange = restart;
  const serviceAccount = readString(obj, 'serviceAccount', at, { check: dnsSubdomainProblem });
  if (serviceAccount) shared.serviceAccount = serviceAccount;
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

function readChoice<T extends string>(
  obj: Plain,
  key: string,
  choices: readonly T[],
  at: Problems,
): T | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  at.add(key, `must be one of ${choices.join(', ')} (got ${describe(value)})`);
  return undefined;
}

function readBoolean(obj: Plain, key: string, at: Problems): boolean | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value === 'boolean') return value;
  at.add(key, `must be true or false (got ${describe(value)})`);
  return undefined;
}

function readKeys(body: Plain, at: Problems): AppKey[] | undefined {
  const keys = body.keys;
  if (keys === undefined) {
    at.add('keys', 'missing: list the keys the workload reads from the Secret');
    return undefined;
  }
  const entries: [string, unknown][] | undefined = Array.isArray(keys)
    ? keys.map((k, i) => (typeof k === 'string' ? [k, undefined] : [`[${i}]`, k]))
    : isPlainObject(keys)
      ? Object.entries(keys)
      : undefined;
  if (!entries || entries.length === 0) {
    at.add(
      'keys',
      `must be a non-empty mapping of Secret key to generator, or a list of names (got ${describe(keys)})`,
    );
    return undefined;
  }
  const before = at.list.length;
  const out: AppKey[] = [];
  const sources = new Map<string, string>();
  for (const [key, spec] of entries) {
    const keyAt = at.at(`keys.${key}`);
    if (key.startsWith('[')) {
      keyAt.add('', `must be a string (got ${describe(spec)})`);
      continue;
    }
    const problem = secretKeyProblem(key);
    if (problem) {
      keyAt.add('', problem);
      continue;
    }
    if (out.some((k) => k.key === key)) {
      keyAt.add('', `"${key}" is listed twice`);
      continue;
    }
    const parsed = readKey(key, Array.isArray(keys) ? undefined : spec, keyAt);
    if (!parsed) continue;
    const other = sources.get(parsed.from);
    if (other)
      keyAt.add('from', `source key "${parsed.from}" is also read by ${other}: give each key its own`);
    else sources.set(parsed.from, key);
    out.push(parsed);
  }
  return at.list.length === before ? out : undefined;
}

function readKey(key: string, spec: unknown, at: Problems): AppKey | undefined {
  const base = { key, from: key, rotatable: true, setDuring: DEFAULT_SET_DURING };
  if (spec === undefined) return { ...base, generate: LIST_FORM_GENERATOR };
  if (typeof spec === 'string') {
    const generate = parseGenerator(spec, undefined, at.at('generate'));
    return generate && { ...base, generate };
  }
  if (!isPlainObject(spec)) {
    at.add('', `must be a generator (chars N, hex N, base64 N, manual) or a mapping (got ${describe(spec)})`);
    return undefined;
  }
  const before = at.list.length;
  refuseUnknown(spec, KEY_FIELDS, at);
  const from = readString(spec, 'from', at, { check: secretKeyProblem }) ?? key;
  const howTo = readString(spec, 'howTo', at);
  const generateText = readString(spec, 'generate', at, { required: true });
  const generate =
    generateText === undefined ? undefined : parseGenerator(generateText, howTo, at.at('generate'));
  if (howTo !== undefined && generate && generate.kind !== 'manual')
    at.add('howTo', 'only for generate: manual (a generated value needs no instructions)');
  const rotatable = readBoolean(spec, 'rotatable', at) ?? true;
  const why = readString(spec, 'why', at);
  if (!rotatable && !why) at.add('why', 'missing: say what breaks when the key changes (rotatable: false)');
  if (rotatable && why !== undefined) at.add('why', 'only for rotatable: false');
  const setDuring = readString(spec, 'setDuring', at) ?? DEFAULT_SET_DURING;
  if (at.list.length > before || !generate) return undefined;
  return { key, from, generate, rotatable, ...(why ? { why } : {}), setDuring };
}

/** `chars 32`, `hex 16`, `base64 32` (bytes, as openssl rand counts them), `manual`. */
function parseGenerator(text: string, howTo: string | undefined, at: Problems): Generator | undefined {
  if (text === 'manual') {
    if (!howTo) {
      at.add('', 'manual keys need howTo: where the operator gets the value');
      return undefined;
    }
    return { kind: 'manual', howTo };
  }
  const m = /^(chars|hex|base64) ([0-9]+)$/.exec(text);
  const n = m ? Number(m[2]) : Number.NaN;
  // Below 16 characters or bytes a generated password is guessable; above 1024 no consumer wants it.
  if (!m || n < 16 || n > 1024) {
    at.add(
      '',
      `"${text}" is not a generator: chars N | hex N | base64 N (N from 16 to 1024; bytes for hex and base64) | manual`,
    );
    return undefined;
  }
  if (m[1] === 'chars') return { kind: 'random-chars', length: n };
  return { kind: m[1] === 'hex' ? 'hex' : 'base64', bytes: n };
}

/**
 * Two resources with one (namespace, name) overwrite each other; two managing one Secret fight over it
 * on every sync; and two pairs can still share an output file name (`a-b`/`c` and `a`/`b-c`).
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
      `resource ${app.namespace}/${app.name}`,
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
