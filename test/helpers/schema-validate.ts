/**
 * A small, strict validator for Kubernetes structural OpenAPI v3 schemas (a CRD's openAPIV3Schema),
 * close to what the API server does with a custom resource:
 *   - unknown fields are errors unless the schema allows them (additionalProperties or
 *     x-kubernetes-preserve-unknown-fields); the server would prune them, or reject them under
 *     strict field validation, and either way the field never reaches the operator;
 *   - type, required, enum, pattern, lengths, bounds and the formats CRDs use are checked;
 *   - root `metadata` is checked as ObjectMeta (the server ignores the schema there).
 * A schema keyword it does not implement is an error of the schema, never silently skipped: a
 * validator that ignores a constraint would pass manifests the server refuses.
 */

export interface SchemaProblem {
  /** Dotted path into the object (`spec.authentication.serviceToken.secretsScope.projectSlug`). */
  path: string;
  message: string;
}

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  nullable?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

/** Keywords without effect on validity: documentation, and `default`, which the server applies first. */
const INERT = new Set([
  'description',
  'title',
  'example',
  'default',
  'x-kubernetes-list-type',
  'x-kubernetes-map-type',
]);
const CHECKED = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'format',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'nullable',
  'x-kubernetes-preserve-unknown-fields',
]);

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const FORMATS: Record<string, (v: unknown) => boolean> = {
  int32: (v) => typeof v === 'number' && v >= -(2 ** 31) && v <= 2 ** 31 - 1,
  // Beyond 2^53 a JS number is no longer the integer written, so int64 is checked as a safe integer.
  int64: (v) => typeof v === 'number' && Number.isSafeInteger(v),
  double: (v) => typeof v === 'number',
  float: (v) => typeof v === 'number',
  'date-time': (v) => typeof v === 'string' && DATE_TIME.test(v) && !Number.isNaN(Date.parse(v)),
  byte: (v) => typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v) && v.length % 4 === 0,
  uuid: (v) =>
    typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
};

/** Thrown for a schema this validator cannot judge faithfully. */
export class UnsupportedSchemaError extends Error {}

export function validateSchema(value: unknown, schema: Schema, path = ''): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  check(value, schema, path, problems);
  return problems;
}

function check(value: unknown, schema: Schema, path: string, out: SchemaProblem[]): void {
  for (const key of Object.keys(schema)) {
    if (!CHECKED.has(key) && !INERT.has(key))
      throw new UnsupportedSchemaError(`schema keyword ${key} at ${path || '(root)'} is not supported`);
  }
  const at = (message: string) => out.push({ path: path || '(root)', message });
  if (value === null) {
    if (!schema.nullable) at('null is not allowed');
    return;
  }
  if (schema.type && !hasType(value, schema.type)) {
    at(`must be ${schema.type} (got ${typeName(value)})`);
    return;
  }
  if (schema.enum && !schema.enum.some((e) => e === value))
    at(`must be one of ${schema.enum.map(String).join(', ')}`);
  if (schema.format) {
    const test = FORMATS[schema.format];
    if (!test) throw new UnsupportedSchemaError(`format ${schema.format} at ${path} is not supported`);
    if (!test(value)) at(`is not a valid ${schema.format}`);
  }
  if (typeof value === 'string') checkString(value, schema, at);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) at(`must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) at(`must be at most ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems)
      at(`needs at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      at(`has more than ${schema.maxItems} items`);
    const items = schema.items;
    if (items) for (const [i, item] of value.entries()) check(item, items, `${path}[${i}]`, out);
  }
  if (schema.type === 'object') checkObject(value as Record<string, unknown>, schema, path, out);
}

function checkString(value: string, schema: Schema, at: (m: string) => void): void {
  // Lengths count code points, as Go's validation does with runes.
  const length = [...value].length;
  if (schema.minLength !== undefined && length < schema.minLength)
    at(`must be at least ${schema.minLength} characters`);
  if (schema.maxLength !== undefined && length > schema.maxLength)
    at(`must be at most ${schema.maxLength} characters`);
  if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value))
    at(`does not match ${schema.pattern}`);
}

function checkObject(obj: Record<string, unknown>, schema: Schema, path: string, out: SchemaProblem[]): void {
  const join = (key: string) => (path ? `${path}.${key}` : key);
  for (const key of schema.required ?? []) {
    if (obj[key] === undefined) out.push({ path: join(key), message: 'required field is missing' });
  }
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  for (const [key, child] of Object.entries(obj)) {
    const known = schema.properties?.[key];
    if (known) check(child, known, join(key), out);
    else if (typeof schema.additionalProperties === 'object')
      check(child, schema.additionalProperties, join(key), out);
    else if (schema.additionalProperties === true || preserve) continue;
    else
      out.push({
        path: join(key),
        message: 'unknown field (not in the schema; the API server would prune or reject it)',
      });
  }
}

function hasType(value: unknown, type: NonNullable<Schema['type']>): boolean {
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
  }
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

// ---- custom resources against their CRD ----

const LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
/** A qualified name (label and annotation keys): optional DNS-subdomain prefix, then a name of ≤63. */
const QUALIFIED_KEY =
  /^(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * ObjectMeta as the server checks a custom resource's: names are DNS subdomains, the namespace a DNS
 * label; fields a manifest should not set (uid, resourceVersion, …) are unknown here on purpose.
 */
const OBJECT_META: Schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 253, pattern: SUBDOMAIN },
    generateName: { type: 'string' },
    namespace: { type: 'string', maxLength: 63, pattern: LABEL },
    labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
    finalizers: { type: 'array', items: { type: 'string' } },
  },
};

interface CrdVersion {
  name: string;
  served?: boolean;
  schema?: { openAPIV3Schema?: Schema };
}

/**
 * Validates one custom resource against a CustomResourceDefinition: apiVersion and kind must name a
 * served version of the CRD, then the object must satisfy that version's openAPIV3Schema.
 */
export function validateCustomResource(crd: unknown, resource: unknown): SchemaProblem[] {
  const spec = (crd as { spec?: { group?: string; names?: { kind?: string }; versions?: CrdVersion[] } })
    ?.spec;
  if (!spec?.group || !spec.names?.kind || !Array.isArray(spec.versions))
    throw new UnsupportedSchemaError(
      'not a CustomResourceDefinition (spec.group, spec.names.kind, spec.versions)',
    );
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource))
    return [{ path: '(root)', message: 'must be an object' }];
  const obj = resource as Record<string, unknown>;
  const problems: SchemaProblem[] = [];
  if (obj.kind !== spec.names.kind) problems.push({ path: 'kind', message: `must be ${spec.names.kind}` });
  const [group, version] = String(obj.apiVersion ?? '').split('/');
  const served = spec.versions.find((v) => v.name === version && v.served !== false);
  if (group !== spec.group || !served) {
    problems.push({
      path: 'apiVersion',
      message: `must be ${spec.group}/ followed by a served version (${spec.versions.map((v) => v.name).join(', ')})`,
    });
    return problems;
  }
  const schema = served.schema?.openAPIV3Schema;
  if (!schema) throw new UnsupportedSchemaError(`version ${served.name} has no openAPIV3Schema`);
  problems.push(
    ...validateSchema(obj, { ...schema, properties: { ...schema.properties, metadata: OBJECT_META } }),
  );
  problems.push(...metadataKeyProblems(obj.metadata));
  return problems;
}

function metadataKeyProblems(metadata: unknown): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  if (typeof metadata !== 'object' || metadata === null) return problems;
  for (const field of ['labels', 'annotations'] as const) {
    const map = (metadata as Record<string, unknown>)[field];
    if (typeof map !== 'object' || map === null) continue;
    for (const key of Object.keys(map)) {
      const name = key.split('/').pop() ?? '';
      if (!QUALIFIED_KEY.test(key) || name.length > 63 || key.length - name.length - 1 > 253)
        problems.push({ path: `metadata.${field}.${key}`, message: 'is not a qualified name' });
    }
  }
  return problems;
}
