/**
 * A small in-memory Kubernetes API server that the real kubectl (1.32) can talk to over plain HTTP.
 * There is no real API server on these machines (reference/lab-notes.md §3), so tests and the sandbox demo
 * use this one. It serves discovery, a minimal OpenAPI v3 document (so kubectl's default `--validate=strict`
 * works and is enforced here, as `?fieldValidation=Strict`), and core/v1 namespaces and secrets with GET, LIST,
 * POST, PUT, DELETE and PATCH (server-side apply; merge and strategic merge patches for client-side apply; JSON
 * patch, which kubectl sends when server-side apply takes over an object made by client-side apply).
 *
 * Deliberate simplifications, all of them on the safe side for this project:
 * - Only these fields are stored and tracked for ownership: `metadata.labels`, `metadata.annotations` and,
 *   on Secrets, `data` (with `stringData` merged into it, as the real server does), `type` and `immutable`.
 *   Other known fields are accepted and dropped; unknown ones are refused under `fieldValidation=Strict`.
 * - Field ownership (`metadata.managedFields`) is tracked per map entry and scalar, with the real
 *   rules for those: apply conflicts (409 unless `force=true`), shared ownership of equal values, removal of
 *   fields a manager stops applying, and ownership moved to whoever changes a field with an update.
 *   A key set through `stringData` is owned as the `data` key it becomes.
 * - Strategic merge patches are treated as JSON merge patches with `$` directives dropped: every tracked
 *   field is a map or a scalar, where the two agree.
 * - Deleting a namespace removes it and its secrets at once (no Terminating phase). There is no watch and
 *   no selectors: requests that need them get a 400, so nothing silently misbehaves. Lists ignore `limit`
 *   and always come whole. Bodies are JSON or YAML; protobuf gets a 415 (kubectl `create` without
 *   `--dry-run` sends it and does not fall back, so callers build YAML and `kubectl apply` it).
 * - `kubectl get` asks for server-side Tables; it gets plain objects and prints its built-in columns.
 * Nothing happens at import; `startFakeKubeApiServer()` starts a server and `close()` stops it.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';

// biome-ignore lint/suspicious/noExplicitAny: API objects are schemaless JSON; tests read them without casts.
export type KubeObject = Record<string, any>;
export type Kind = 'Namespace' | 'Secret';

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType: string;
  body: string;
}

export interface FakeKubeApiServer {
  url: string;
  port: number;
  /** Stored objects: namespaces and secrets, as JSON objects including metadata.resourceVersion, managedFields. */
  get(kind: Kind, name: string, namespace?: string): KubeObject | undefined;
  list(kind: Kind): KubeObject[];
  /** Every request received: method, path, query, content-type, body text. For tests that check what kubectl sent. */
  requests: RecordedRequest[];
  /**
   * Count of writes that actually changed stored state (create, modify or delete), per object key `kind/ns/name`
   * (`Namespace//name` for namespaces). Dry runs and no-op writes are not counted.
   */
  writes: Map<string, number>;
  close(): Promise<void>;
}

interface Resource {
  kind: Kind;
  plural: 'namespaces' | 'secrets';
  singular: string;
  namespaced: boolean;
  /** Top-level fields the real API knows; anything else is an unknown field for strict validation. */
  knownFields: readonly string[];
}

const NAMESPACES: Resource = {
  kind: 'Namespace',
  plural: 'namespaces',
  singular: 'namespace',
  namespaced: false,
  knownFields: ['apiVersion', 'kind', 'metadata', 'spec', 'status'],
};
const SECRETS: Resource = {
  kind: 'Secret',
  plural: 'secrets',
  singular: 'secret',
  namespaced: true,
  knownFields: ['apiVersion', 'kind', 'metadata', 'data', 'stringData', 'type', 'immutable'],
};
const RESOURCES: Record<Kind, Resource> = { Namespace: NAMESPACES, Secret: SECRETS };

const KNOWN_METADATA = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);

/** Only what kubectl can act on: there is no watch or deletecollection here. */
const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update'];
const APPLY_PATCH = 'application/apply-patch+yaml';
const MERGE_PATCH = 'application/merge-patch+json';
const STRATEGIC_PATCH = 'application/strategic-merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';
const PATCH_TYPES = [APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH];
/** The real server's limit on a Secret's total data size. */
const MAX_SECRET_BYTES = 1024 * 1024;

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: KubeObject,
  ) {
    super(message);
  }
}

const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
const notFound = (plural: string, name: string) =>
  new ApiError(404, 'NotFound', `${plural} "${name}" not found`, { name, kind: plural });
const invalid = (res: Resource, name: string, field: string, problem: string) =>
  new ApiError(422, 'Invalid', `${res.kind} "${name}" is invalid: ${field}: ${problem}`, {
    name,
    kind: res.kind,
    causes: [{ reason: 'FieldValueInvalid', message: problem, field }],
  });

function statusBody(err: ApiError): KubeObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: err.message,
    reason: err.reason,
    ...(err.details && { details: err.details }),
    code: err.code,
  };
}

const isMap = (v: unknown): v is KubeObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Key-order-independent JSON, to tell whether a write changed anything. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (isMap(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stable(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

// ---------------------------------------------------------------------------------------------------------
// Tracked fields and their owners

/** A tracked leaf field as a JSON-encoded path, e.g. `["data","password"]`. */
type Field = string;

interface Manager {
  manager: string;
  operation: 'Apply' | 'Update';
  /** Empty when the entry changed in this request: it gets the current time. */
  time: string;
  fields: Set<Field>;
}

const fieldPath = (f: Field): string[] => JSON.parse(f);

function getAt(obj: KubeObject | undefined, f: Field): unknown {
  let cur: unknown = obj;
  for (const seg of fieldPath(f)) cur = isMap(cur) ? cur[seg] : undefined;
  return cur;
}

function setAt(obj: KubeObject, f: Field, value: unknown): void {
  const path = fieldPath(f);
  const leaf = path.pop() as string;
  let cur = obj;
  for (const seg of path) {
    if (!isMap(cur[seg])) cur[seg] = {};
    cur = cur[seg];
  }
  cur[leaf] = value;
}

/** Removes a field and the maps it leaves empty: the real server omits empty `data`, `labels`, `annotations`. */
function deleteAt(obj: KubeObject, f: Field): void {
  const path = fieldPath(f);
  const parents: KubeObject[] = [];
  let cur: unknown = obj;
  for (const seg of path.slice(0, -1)) {
    if (!isMap(cur)) return;
    parents.push(cur);
    cur = cur[seg];
  }
  if (!isMap(cur)) return;
  delete cur[path[path.length - 1] as string];
  for (let i = parents.length - 1; i >= 0; i--) {
    const parent = parents[i] as KubeObject;
    const key = path[i] as string;
    if (Object.keys(parent[key]).length > 0) break;
    delete parent[key];
  }
}

function trackedFields(kind: Kind, obj: KubeObject): Field[] {
  const out: string[][] = [];
  for (const map of ['labels', 'annotations']) {
    for (const key of Object.keys(obj.metadata?.[map] ?? {})) out.push(['metadata', map, key]);
  }
  if (kind === 'Secret') {
    for (const key of Object.keys(obj.data ?? {})) out.push(['data', key]);
    for (const scalar of ['type', 'immutable']) if (obj[scalar] !== undefined) out.push([scalar]);
  }
  return out.map((p) => JSON.stringify(p));
}

const sameAt = (a: KubeObject | undefined, b: KubeObject, f: Field) =>
  stable(getAt(a, f)) === stable(getAt(b, f));

/** `fieldsV1` as the real server writes it: nested `f:<name>` keys with `{}` leaves. */
function toFieldsV1(fields: Set<Field>): KubeObject {
  const out: KubeObject = {};
  for (const f of [...fields].sort()) setAt(out, JSON.stringify(fieldPath(f).map((s) => `f:${s}`)), {});
  return out;
}

function fromFieldsV1(fieldsV1: KubeObject, prefix: string[] = []): Field[] {
  return Object.entries(fieldsV1).flatMap(([key, sub]) => {
    const path = [...prefix, key.replace(/^f:/, '')];
    return isMap(sub) && Object.keys(sub).length > 0 ? fromFieldsV1(sub, path) : [JSON.stringify(path)];
  });
}

function readManagers(obj: KubeObject | undefined): Manager[] {
  const entries: unknown[] = obj?.metadata?.managedFields ?? [];
  return entries.filter(isMap).map((m) => ({
    manager: String(m.manager ?? ''),
    operation: m.operation === 'Apply' ? 'Apply' : 'Update',
    time: String(m.time ?? ''),
    fields: new Set(fromFieldsV1(isMap(m.fieldsV1) ? m.fieldsV1 : {})),
  }));
}

/** Entries that own nothing are dropped; an unchanged entry keeps its time, so a no-op stays a no-op. */
function writeManagers(managers: Manager[]): KubeObject[] {
  return managers
    .filter((m) => m.fields.size > 0)
    .map((m) => ({
      manager: m.manager,
      operation: m.operation,
      apiVersion: 'v1',
      time: m.time || now(),
      fieldsType: 'FieldsV1',
      fieldsV1: toFieldsV1(m.fields),
    }));
}

/**
 * Gives `manager` the entry for `operation` with these fields. Like the real server, the entry's time moves
 * when the write changed the object (`changedObject`) or the entry itself.
 */
function ownFields(
  managers: Manager[],
  manager: string,
  operation: Manager['operation'],
  fields: Set<Field>,
  changedObject: boolean,
): void {
  const mine = managers.find((m) => m.manager === manager && m.operation === operation);
  if (!mine) managers.push({ manager, operation, time: '', fields });
  else if (changedObject || stable([...mine.fields].sort()) !== stable([...fields].sort()))
    Object.assign(mine, { time: '', fields });
}

/**
 * Server-side apply of `applied` (the tracked fields of the request) by `manager`: returns the new tracked
 * fields and owners, or throws a 409 Conflict when another manager owns a field with a different value.
 */
function serverSideApply(
  kind: Kind,
  live: KubeObject | undefined,
  applied: KubeObject,
  manager: string,
  force: boolean,
): { content: KubeObject; managers: Manager[] } {
  const managers = readManagers(live);
  const appliedFields = new Set(trackedFields(kind, applied));
  const mine = managers.find((m) => m.manager === manager && m.operation === 'Apply');
  const conflicts = managers.flatMap((m) =>
    m === mine
      ? []
      : [...m.fields].filter((f) => appliedFields.has(f) && !sameAt(live, applied, f)).map((f) => ({ m, f })),
  );
  if (conflicts.length > 0 && !force) {
    const lines = conflicts.map(
      ({ m, f }) =>
        `conflict with "${m.manager}"${m.operation === 'Update' ? ' using v1' : ''}: .${fieldPath(f).join('.')}`,
    );
    throw new ApiError(
      409,
      'Conflict',
      `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${lines.join('\n')}`,
      {
        causes: conflicts.map(({ m, f }) => ({
          reason: 'FieldManagerConflict',
          message: `conflict with "${m.manager}"`,
          field: `.${fieldPath(f).join('.')}`,
        })),
      },
    );
  }
  for (const { m, f } of conflicts) m.fields.delete(f);

  const content = structuredClone(live ?? {});
  let changedObject = false;
  // Fields this manager applied before but omits now go away, unless another manager still owns them.
  for (const f of mine?.fields ?? []) {
    if (!appliedFields.has(f) && !managers.some((m) => m !== mine && m.fields.has(f))) {
      deleteAt(content, f);
      changedObject = true;
    }
  }
  for (const f of appliedFields) {
    if (sameAt(content, applied, f)) continue;
    setAt(content, f, getAt(applied, f));
    changedObject = true;
  }
  ownFields(managers, manager, 'Apply', appliedFields, changedObject);
  return { content, managers };
}

/**
 * Ownership after an ordinary write: whoever changes or removes a field takes it from everyone else.
 * `owners` are the entries to start from: the live ones, or those the request set (see `requestedOwners`).
 */
function recordUpdate(
  kind: Kind,
  live: KubeObject | undefined,
  owners: Manager[],
  next: KubeObject,
  manager: string,
): Manager[] {
  const before = new Set(live ? trackedFields(kind, live) : []);
  const after = trackedFields(kind, next);
  const changed = after.filter((f) => !before.has(f) || !sameAt(live, next, f));
  const removed = [...before].filter((f) => !after.includes(f));
  for (const m of owners) for (const f of [...changed, ...removed]) m.fields.delete(f);
  const mine = owners.find((m) => m.manager === manager && m.operation === 'Update');
  ownFields(owners, manager, 'Update', new Set([...(mine?.fields ?? []), ...changed]), changed.length > 0);
  return owners;
}

/**
 * Like the real server, a write that sets `metadata.managedFields` replaces them (kubectl does this to move
 * client-side-apply ownership over to server-side apply); an absent or empty list keeps the live ones.
 */
function requestedOwners(request: KubeObject, live: KubeObject | undefined): Manager[] {
  const requested = request.metadata?.managedFields;
  return readManagers(Array.isArray(requested) && requested.length > 0 ? request : live);
}

// ---------------------------------------------------------------------------------------------------------
// Validation and normalisation of request bodies

const FIELD_VALIDATION = ['Strict', 'Warn', 'Ignore'] as const;
type FieldValidation = (typeof FIELD_VALIDATION)[number];

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
// Go's base64.StdEncoding: standard alphabet, padding required.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function stringMap(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isMap(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw badRequest(`${what}: expected a map of strings`);
  }
  return value;
}

/**
 * Checks a request's object and reduces it to the tracked fields (see the module comment), with `stringData`
 * merged into `data`. `where` holds the name and namespace from the request path; the body must agree.
 */
function normalize(
  res: Resource,
  body: unknown,
  where: { name?: string; namespace?: string },
  validation: FieldValidation,
  warnings: string[],
): { name: string; content: KubeObject; request: KubeObject } {
  if (!isMap(body)) throw badRequest('the request body must be an object');
  if (body.apiVersion !== 'v1' || body.kind !== res.kind) {
    throw badRequest(
      `expected apiVersion "v1" and kind "${res.kind}", got "${body.apiVersion}" "${body.kind}"`,
    );
  }
  const meta = body.metadata ?? {};
  if (!isMap(meta)) throw badRequest('metadata must be an object');
  const unknown = [
    ...Object.keys(body).filter((k) => !res.knownFields.includes(k)),
    ...Object.keys(meta)
      .filter((k) => !KNOWN_METADATA.has(k))
      .map((k) => `metadata.${k}`),
  ];
  if (unknown.length > 0 && validation === 'Strict') {
    throw badRequest(
      `${res.kind} in version "v1" cannot be handled as a ${res.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`,
    );
  }
  if (validation === 'Warn') warnings.push(...unknown.map((u) => `unknown field "${u}"`));

  const name = typeof meta.name === 'string' ? meta.name : '';
  if (where.name !== undefined && name !== where.name) {
    throw badRequest(`the name of the object (${name}) does not match the name on the URL (${where.name})`);
  }
  if (!name) throw invalid(res, name, 'metadata.name', 'Required value: name or generateName is required');
  // Secret names are DNS subdomains; namespace names are DNS labels.
  if (!(res.namespaced ? DNS_SUBDOMAIN : DNS_LABEL).test(name) || name.length > (res.namespaced ? 253 : 63)) {
    throw invalid(res, name, 'metadata.name', `Invalid value: "${name}": must be a lowercase RFC 1123 name`);
  }
  if (res.namespaced && meta.namespace !== undefined && meta.namespace !== where.namespace) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }

  const content: KubeObject = {};
  const labels = stringMap(meta.labels, 'metadata.labels');
  const annotations = stringMap(meta.annotations, 'metadata.annotations');
  if (labels && Object.keys(labels).length > 0) content.metadata = { labels };
  if (annotations && Object.keys(annotations).length > 0)
    content.metadata = { ...content.metadata, annotations };
  if (res.kind === 'Secret') Object.assign(content, normalizeSecret(body, name));
  return { name, content, request: body };
}

function normalizeSecret(body: KubeObject, name: string): KubeObject {
  const out: KubeObject = {};
  const data: Record<string, string> = { ...stringMap(body.data, 'data') };
  for (const [key, value] of Object.entries(data)) {
    if (!BASE64.test(value)) {
      throw badRequest(
        `Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[${key}]`,
      );
    }
  }
  for (const [key, value] of Object.entries(stringMap(body.stringData, 'stringData') ?? {})) {
    data[key] = Buffer.from(value, 'utf8').toString('base64');
  }
  let size = 0;
  for (const [key, value] of Object.entries(data)) {
    if (!CONFIG_KEY.test(key) || key === '.' || key === '..' || key.length > 253) {
      throw invalid(
        SECRETS,
        name,
        `data[${key}]`,
        `Invalid value: "${key}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
      );
    }
    size += Buffer.from(value, 'base64').length;
  }
  if (size > MAX_SECRET_BYTES) {
    throw invalid(SECRETS, name, 'data', `Too long: must have at most ${MAX_SECRET_BYTES} bytes`);
  }
  if (Object.keys(data).length > 0) out.data = data;
  if (body.type !== undefined) {
    if (typeof body.type !== 'string') throw badRequest('type: expected a string');
    out.type = body.type;
  }
  if (body.immutable !== undefined && body.immutable !== null) {
    if (typeof body.immutable !== 'boolean') throw badRequest('immutable: expected a boolean');
    out.immutable = body.immutable;
  }
  return out;
}

/** RFC 7386, which is also what a strategic merge patch means for maps and scalars once `$` directives go. */
function mergePatch(target: unknown, patch: unknown, dropDirectives: boolean): unknown {
  if (!isMap(patch)) return patch;
  const out: KubeObject = isMap(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (dropDirectives && key.startsWith('$')) continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value, dropDirectives);
  }
  return out;
}

/**
 * RFC 6902 add/replace/remove on object members: enough for the patch kubectl sends to migrate ownership
 * from client-side apply (it replaces `/metadata/managedFields` and `/metadata/resourceVersion`).
 */
function jsonPatch(target: KubeObject, ops: unknown): KubeObject {
  if (!Array.isArray(ops)) throw badRequest('a JSON patch must be a list of operations');
  const doc = structuredClone(target);
  for (const op of ops) {
    const path = isMap(op) && typeof op.path === 'string' ? op.path.split('/').slice(1) : [];
    const keys = path.map((seg) => seg.replaceAll('~1', '/').replaceAll('~0', '~'));
    const key = keys.pop();
    let parent: unknown = doc;
    for (const seg of keys) parent = isMap(parent) ? parent[seg] : undefined;
    if (!isMap(op) || key === undefined || !isMap(parent) || !['add', 'replace', 'remove'].includes(op.op)) {
      throw badRequest(
        `this fake API server supports only add, replace and remove on object members: ${JSON.stringify(op)}`,
      );
    }
    if (op.op !== 'add' && !(key in parent)) {
      throw new ApiError(
        422,
        'Invalid',
        `the server rejected our request: ${op.op} of missing path ${op.path}`,
      );
    }
    if (op.op === 'remove') delete parent[key];
    else parent[key] = op.value;
  }
  return doc;
}

// ---------------------------------------------------------------------------------------------------------
// Discovery and OpenAPI

function discovery(): KubeObject {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: 'v1',
    resources: [NAMESPACES, SECRETS].map((r) => ({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: VERBS,
      ...(r.kind === 'Namespace' && { shortNames: ['ns'] }),
    })),
  };
}

/**
 * kubectl's default `--validate=strict` reads `/openapi/v3/api/v1` to see whether PATCH on the object's kind
 * takes `fieldValidation`; if so it leaves validation to the server. The schemas are the same shape as the real
 * ones for the fields kubectl looks at (client-side apply uses them for patch strategies).
 */
function openApiV1(): KubeObject {
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const stringMapSchema = { type: 'object', additionalProperties: { type: 'string', default: '' } };
  const gvk = (kind: Kind) => [{ group: '', version: 'v1', kind }];
  const paths: KubeObject = {};
  for (const r of [NAMESPACES, SECRETS]) {
    const item = r.namespaced
      ? `/api/v1/namespaces/{namespace}/${r.plural}/{name}`
      : `/api/v1/${r.plural}/{name}`;
    const op = (verb: string) => ({
      operationId: `${verb}${r.namespaced ? 'Namespaced' : ''}${r.kind}`,
      'x-kubernetes-action': verb,
      'x-kubernetes-group-version-kind': gvk(r.kind)[0],
      parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({
        name,
        in: 'query',
        schema: { type: name === 'force' ? 'boolean' : 'string', uniqueItems: true },
      })),
      responses: {
        '200': {
          description: 'OK',
          content: { 'application/json': { schema: ref(`io.k8s.api.core.v1.${r.kind}`) } },
        },
      },
    });
    // Client-side apply builds a strategic merge patch from these schemas only when the PATCH operation lists
    // that content type; otherwise it goes looking for /openapi/v2.
    const patchBody = {
      content: Object.fromEntries(PATCH_TYPES.map((t) => [t, { schema: { type: 'object' } }])),
    };
    paths[item] = {
      get: op('get'),
      put: op('put'),
      patch: { ...op('patch'), requestBody: patchBody },
      delete: op('delete'),
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0' },
    paths,
    components: {
      schemas: {
        'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': {
          type: 'object',
          properties: {
            name: { type: 'string' },
            namespace: { type: 'string' },
            uid: { type: 'string' },
            resourceVersion: { type: 'string' },
            creationTimestamp: { type: 'string', format: 'date-time' },
            labels: stringMapSchema,
            annotations: stringMapSchema,
            finalizers: {
              type: 'array',
              items: { type: 'string', default: '' },
              'x-kubernetes-list-type': 'set',
              'x-kubernetes-patch-strategy': 'merge',
            },
            managedFields: { type: 'array', items: { type: 'object' } },
          },
        },
        'io.k8s.api.core.v1.Secret': {
          type: 'object',
          properties: {
            apiVersion: { type: 'string' },
            kind: { type: 'string' },
            metadata: { allOf: [ref('io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta')], default: {} },
            data: { type: 'object', additionalProperties: { type: 'string', format: 'byte' } },
            stringData: stringMapSchema,
            type: { type: 'string' },
            immutable: { type: 'boolean' },
          },
          'x-kubernetes-group-version-kind': gvk('Secret'),
        },
        'io.k8s.api.core.v1.Namespace': {
          type: 'object',
          properties: {
            apiVersion: { type: 'string' },
            kind: { type: 'string' },
            metadata: { allOf: [ref('io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta')], default: {} },
            spec: {
              type: 'object',
              properties: { finalizers: { type: 'array', items: { type: 'string' } } },
            },
            status: { type: 'object', properties: { phase: { type: 'string' } } },
          },
          'x-kubernetes-group-version-kind': gvk('Namespace'),
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// The store

const keyOf = (kind: Kind, name: string, namespace?: string) => `${kind}/${namespace ?? ''}/${name}`;

class Store {
  readonly objects = new Map<string, KubeObject>();
  readonly writes = new Map<string, number>();
  /** Like etcd's revision: one counter for the whole store, bumped by every real change. */
  revision = 1;

  get(kind: Kind, name: string, namespace?: string): KubeObject | undefined {
    const obj = this.objects.get(keyOf(kind, name, RESOURCES[kind].namespaced ? namespace : undefined));
    return obj && structuredClone(obj);
  }

  list(kind: Kind, namespace?: string): KubeObject[] {
    return [...this.objects.values()]
      .filter((o) => o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace))
      .sort((a, b) =>
        keyOf(kind, a.metadata.name, a.metadata.namespace).localeCompare(
          keyOf(kind, b.metadata.name, b.metadata.namespace),
        ),
      )
      .map((o) => structuredClone(o));
  }

  /**
   * Builds the stored form of `content` and stores it, with a new resourceVersion, unless nothing changed or
   * this is a dry run. Returns the object as the server holds it (or would hold it, on a dry run).
   */
  commit(
    res: Resource,
    name: string,
    namespace: string | undefined,
    live: KubeObject | undefined,
    content: KubeObject,
    managers: Manager[],
    dryRun: boolean,
  ): KubeObject {
    const obj: KubeObject = {
      apiVersion: 'v1',
      kind: res.kind,
      metadata: {
        name,
        ...(namespace !== undefined && { namespace }),
        uid: live?.metadata.uid ?? randomUUID(),
        resourceVersion: live?.metadata.resourceVersion,
        creationTimestamp: live?.metadata.creationTimestamp ?? now(),
        ...(content.metadata?.labels && { labels: content.metadata.labels }),
        ...(content.metadata?.annotations && { annotations: content.metadata.annotations }),
        managedFields: writeManagers(managers),
      },
    };
    if (res.kind === 'Namespace') {
      // The real server always labels a namespace with its own name.
      obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': name };
      obj.spec = { finalizers: ['kubernetes'] };
      obj.status = { phase: 'Active' };
    } else {
      if (content.immutable !== undefined) obj.immutable = content.immutable;
      if (content.data) obj.data = content.data;
      obj.type = content.type ?? 'Opaque';
    }
    if (live) checkSecretUpdate(res, live, obj);
    if (live && stable(obj) === stable(live)) return live;
    if (dryRun) {
      if (!live) delete obj.metadata.resourceVersion;
      return obj;
    }
    this.revision++;
    obj.metadata.resourceVersion = String(this.revision);
    this.put(keyOf(res.kind, name, namespace), obj);
    return structuredClone(obj);
  }

  put(key: string, obj: KubeObject | undefined): void {
    if (obj) this.objects.set(key, obj);
    else this.objects.delete(key);
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
  }
}

/** The real server refuses to change an immutable Secret's data or any Secret's type. */
function checkSecretUpdate(res: Resource, live: KubeObject, next: KubeObject): void {
  if (res.kind !== 'Secret') return;
  const name = live.metadata.name;
  if (live.type !== next.type)
    throw invalid(res, name, 'type', `Invalid value: "${next.type}": field is immutable`);
  if (live.immutable === true && (stable(live.data) !== stable(next.data) || next.immutable !== true)) {
    throw invalid(res, name, 'data', 'Forbidden: field is immutable when `immutable` is set');
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

interface Route {
  res: Resource;
  namespace?: string;
  name?: string;
}

function route(segments: string[]): Route | undefined {
  const [api, version, r0, r1, r2, r3, ...extra] = segments;
  if (api !== 'api' || version !== 'v1' || extra.length > 0) return undefined;
  if (r0 === 'namespaces' && r2 === undefined) return { res: NAMESPACES, name: r1 };
  if (r0 === 'namespaces' && r1 !== undefined && r2 === 'secrets')
    return { res: SECRETS, namespace: r1, name: r3 };
  if (r0 === 'secrets' && r1 === undefined) return { res: SECRETS };
  return undefined;
}

interface Reply {
  code: number;
  body: unknown;
}

function parseBody(contentType: string, text: string): unknown {
  const type = contentType.split(';')[0]?.trim() ?? '';
  if (type.startsWith('application/vnd.kubernetes.protobuf')) {
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (this fake API server does not speak protobuf; send JSON, e.g. with kubectl apply)`,
    );
  }
  try {
    if ([APPLY_PATCH, 'application/yaml'].includes(type)) return parseYaml(text);
    if (['application/json', JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH].includes(type))
      return JSON.parse(text);
  } catch (err) {
    throw badRequest(`cannot decode the request body: ${(err as Error).message}`);
  }
  throw new ApiError(415, 'UnsupportedMediaType', `unsupported media type "${contentType}"`);
}

function handle(store: Store, req: IncomingMessage, text: string, url: URL, warnings: string[]): Reply {
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (req.method === 'GET') {
    switch (path) {
      case '/version':
        return {
          code: 200,
          body: {
            major: '1',
            minor: '32',
            gitVersion: 'v1.32.0-fake',
            gitTreeState: 'clean',
            goVersion: 'go1.23',
            compiler: 'gc',
            platform: 'linux/amd64',
          },
        };
      // Legacy discovery. kubectl asks for the aggregated form first and falls back to this when the
      // response's content type says plain JSON.
      case '/api':
        return { code: 200, body: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] } };
      case '/apis':
        return { code: 200, body: { kind: 'APIGroupList', apiVersion: 'v1', groups: [] } };
      case '/api/v1':
        return { code: 200, body: discovery() };
      case '/openapi/v3':
        return {
          code: 200,
          body: { paths: { 'api/v1': { serverRelativeURL: `/openapi/v3/api/v1?hash=${OPENAPI_HASH}` } } },
        };
      case '/openapi/v3/api/v1':
        return { code: 200, body: openApiV1() };
    }
  }
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  const r = route(segments);
  if (!r) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  const { res, namespace, name } = r;
  const q = url.searchParams;
  const dryRun = q.get('dryRun') === 'All';
  // kubectl always says which it wants (Strict by default); the real server's own default is Warn.
  const validation = (q.get('fieldValidation') ?? 'Warn') as FieldValidation;
  if (!FIELD_VALIDATION.includes(validation)) throw badRequest(`invalid fieldValidation "${validation}"`);
  const manager =
    q.get('fieldManager') ?? (req.headers['user-agent'] ?? 'unknown').split('/')[0] ?? 'unknown';
  const live = name === undefined ? undefined : store.get(res.kind, name, namespace);
  const requireNamespace = () => {
    if (namespace !== undefined && !store.get('Namespace', namespace))
      throw notFound('namespaces', namespace);
  };

  switch (req.method) {
    case 'GET': {
      if (name !== undefined) {
        if (!live) throw notFound(res.plural, name);
        return { code: 200, body: live };
      }
      for (const param of ['labelSelector', 'fieldSelector', 'watch', 'continue']) {
        if (q.has(param)) throw badRequest(`this fake API server does not support ${param}`);
      }
      return {
        code: 200,
        body: {
          kind: `${res.kind}List`,
          apiVersion: 'v1',
          metadata: { resourceVersion: String(store.revision) },
          items: store.list(res.kind, namespace),
        },
      };
    }
    case 'POST': {
      if (name !== undefined || (res.namespaced && namespace === undefined)) break;
      const body = parseBody(contentType(req), text);
      const { name: newName, content, request } = normalize(res, body, { namespace }, validation, warnings);
      if (store.get(res.kind, newName, namespace)) {
        throw new ApiError(409, 'AlreadyExists', `${res.plural} "${newName}" already exists`, {
          name: newName,
          kind: res.plural,
        });
      }
      requireNamespace();
      const managers = recordUpdate(
        res.kind,
        undefined,
        requestedOwners(request, undefined),
        content,
        manager,
      );
      return { code: 201, body: store.commit(res, newName, namespace, undefined, content, managers, dryRun) };
    }
    case 'PUT':
    case 'PATCH': {
      if (name === undefined) break;
      const type = contentType(req).split(';')[0]?.trim();
      const body = parseBody(contentType(req), text);
      if (type === APPLY_PATCH) {
        if (!q.get('fieldManager')) {
          throw new ApiError(422, 'Invalid', 'fieldManager: Required value: is required for apply patch');
        }
        const { content: applied } = normalize(res, body, { name, namespace }, validation, warnings);
        if (!live) requireNamespace();
        const { content, managers } = serverSideApply(
          res.kind,
          live,
          applied,
          manager,
          q.get('force') === 'true',
        );
        return {
          code: live ? 200 : 201,
          body: store.commit(res, name, namespace, live, content, managers, dryRun),
        };
      }
      if (!live) throw notFound(res.plural, name);
      let next: unknown = body;
      if (req.method === 'PATCH') {
        if (type === JSON_PATCH) next = jsonPatch(live, body);
        else next = mergePatch(live, body, type === STRATEGIC_PATCH);
      }
      const { content, request } = normalize(res, next, { name, namespace }, validation, warnings);
      // A resourceVersion in the request (PUT body, or one a patch sets) is a precondition.
      const expected = request.metadata?.resourceVersion;
      if (expected !== undefined && expected !== live.metadata.resourceVersion) {
        throw new ApiError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${res.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name, kind: res.plural },
        );
      }
      const managers = recordUpdate(res.kind, live, requestedOwners(request, live), content, manager);
      return { code: 200, body: store.commit(res, name, namespace, live, content, managers, dryRun) };
    }
    case 'DELETE': {
      if (name === undefined) break;
      if (!live) throw notFound(res.plural, name);
      if (!dryRun) {
        store.put(keyOf(res.kind, name, namespace), undefined);
        // The real server empties a namespace before it goes; this one does it at once.
        if (res.kind === 'Namespace') {
          for (const secret of store.list('Secret', name))
            store.put(keyOf('Secret', secret.metadata.name, name), undefined);
        }
        store.revision++;
      }
      return {
        code: 200,
        body: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name, kind: res.plural, uid: live.metadata.uid },
        },
      };
    }
  }
  throw new ApiError(
    405,
    'MethodNotAllowed',
    `the server does not allow this method on the requested resource`,
  );
}

const contentType = (req: IncomingMessage) => req.headers['content-type'] ?? '';
const OPENAPI_HASH = 'fake-v1';

export async function startFakeKubeApiServer(
  opts: { port?: number; host?: string } = {},
): Promise<FakeKubeApiServer> {
  const host = opts.host ?? '127.0.0.1';
  const store = new Store();
  const requests: RecordedRequest[] = [];

  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    requests.push({
      method: req.method ?? '',
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      contentType: contentType(req),
      body: text,
    });
    const warnings: string[] = [];
    let reply: Reply;
    try {
      reply = handle(store, req, text, url, warnings);
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : new ApiError(500, 'InternalError', String(err));
      reply = { code: apiErr.code, body: statusBody(apiErr) };
    }
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json' };
    if (warnings.length > 0) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    res.writeHead(reply.code, headers).end(JSON.stringify(reply.body));
  };
  const server = createServer((req, res) => {
    serve(req, res).catch((err) => res.destroy(err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    get: (kind, name, namespace) => store.get(kind, name, namespace),
    list: (kind) => store.list(kind),
    requests,
    writes: store.writes,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // kubectl keeps connections alive; without this, close() would wait for them to time out.
        server.closeAllConnections();
      }),
  };
}
