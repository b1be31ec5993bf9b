/**
 * Field checks shared by the apps table's parts. Each returns the problem as text, or undefined when
 * the value is fine, so a caller can collect every problem of a table before reporting any.
 */

/** One problem in the apps table: `where` is the dotted path into the table (`apps.grafana.path`). */
export interface Problem {
  where: string;
  message: string;
}

/** Collects problems under a common prefix so every message names the app and the field. */
export class Problems {
  constructor(
    readonly list: Problem[] = [],
    private readonly prefix = '',
  ) {}

  at(field: string): Problems {
    return new Problems(this.list, this.join(field));
  }

  add(field: string, message: string): void {
    this.list.push({ where: this.join(field), message });
  }

  private join(field: string): string {
    if (!field) return this.prefix;
    return this.prefix ? `${this.prefix}.${field}` : field;
  }
}

export type Plain = Record<string, unknown>;

export function isPlainObject(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Refuses keys outside `allowed`, so a typo cannot silently fall back to a default. `hints` explains
 * keys that are refused on purpose (a CRD field this table builds itself, for instance).
 */
export function refuseUnknown(
  obj: Plain,
  allowed: readonly string[],
  at: Problems,
  opts: { hints?: Record<string, string>; unknown?: string } = {},
): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    const hint = opts.hints && Object.hasOwn(opts.hints, key) ? opts.hints[key] : undefined;
    at.add(key, hint ?? `${opts.unknown ?? 'unknown field'} (allowed: ${allowed.join(', ')})`);
  }
}

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A namespace is an RFC 1123 label (Kubernetes IsDNS1123Label). */
export function dnsLabelProblem(value: string): string | undefined {
  if (value.length > 63) return `"${value}" is ${value.length} characters; a DNS-1123 label has at most 63`;
  if (!LABEL.test(value))
    return `"${value}" is not a DNS-1123 label (lower-case letters, digits and "-", starting and ending alphanumeric)`;
  return undefined;
}

/** Object names (Secret, InfisicalSecret, ServiceAccount) are RFC 1123 subdomains (IsDNS1123Subdomain). */
export function dnsSubdomainProblem(value: string): string | undefined {
  if (value.length > 253)
    return `"${value.slice(0, 20)}…" is ${value.length} characters; a DNS-1123 subdomain has at most 253`;
  if (!SUBDOMAIN.test(value))
    return `"${value}" is not a DNS-1123 subdomain (lower-case letters, digits, "-" and ".", each part starting and ending alphanumeric)`;
  return undefined;
}

/** Infisical folder paths are absolute; empty segments ("//", a trailing "/") name no folder. */
export function infisicalPathProblem(value: string): string | undefined {
  if (!value.startsWith('/')) return `"${value}" must start with "/" (Infisical paths are absolute)`;
  if (value === '/') return undefined;
  if (
    value
      .split('/')
      .slice(1)
      .some((part) => part === '')
  )
    return `"${value}" has an empty segment ("//" or a trailing "/")`;
  if (/\s/.test(value)) return `"${value}" contains whitespace`;
  return undefined;
}

/** Kubernetes Secret data keys (IsConfigMapKey): letters, digits, "-", "_" and ".". */
export function secretKeyProblem(value: string): string | undefined {
  if (value.length > 253 || !/^[-._a-zA-Z0-9]+$/.test(value) || value === '.' || value === '..')
    return `"${value}" is not a valid Secret key (letters, digits, "-", "_", ".")`;
  return undefined;
}

/** Infisical slugs (environment, project): lower-case words joined by "-" or "_". */
export function slugProblem(value: string): string | undefined {
  return /^[a-z0-9]+([-_][a-z0-9]+)*$/.test(value) ? undefined : `"${value}" is not an Infisical slug`;
}

/** Opaque identifiers (project and identity ids): non-empty, no whitespace. */
export function idProblem(value: string): string | undefined {
  return value !== '' && !/\s/.test(value)
    ? undefined
    : `"${value}" is not an id (empty or contains whitespace)`;
}

export function urlProblem(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol === 'https:' || url.protocol === 'http:') return undefined;
  } catch {
    // fall through: reported below
  }
  return `"${value}" is not an http(s) URL`;
}

/**
 * Reads a string field: reports a missing required one or a wrong type, then applies `check`.
 * Returns the value only when it passed, so callers never build a manifest from a bad field.
 */
export function readString(
  obj: Plain,
  key: string,
  at: Problems,
  opts: { required?: boolean; check?: (v: string) => string | undefined } = {},
): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) {
    if (opts.required) at.add(key, 'missing');
    return undefined;
  }
  if (typeof value !== 'string') {
    at.add(key, `must be a string (got ${describe(value)})`);
    return undefined;
  }
  const problem = opts.check?.(value);
  if (problem) {
    at.add(key, problem);
    return undefined;
  }
  return value;
}

export function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}
