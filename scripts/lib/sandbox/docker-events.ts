/**
 * `docker events` as the Docker daemon and CLI do it, for the simulator: the message (moby
 * api/types/events.Message as `--format '{{json .}}'` prints it), the daemon's filter rules
 * (moby daemon/events/filter.go) and the CLI's time arguments (`--since`/`--until`).
 */

/** One event; timeNano is exact (an int64 in Docker), so it is a bigint here. */
export interface DockerEvent {
  /** Deprecated in Docker's API but still printed: the Action (for containers). */
  status: string;
  id: string;
  from: string;
  Type: 'container';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: bigint;
}

/** The line `--format '{{json .}}'` prints: Docker's field order, attributes sorted (a Go map), exact nanos. */
export function eventJson(ev: DockerEvent): string {
  const attributes = Object.fromEntries(
    Object.entries(ev.Actor.Attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  const { timeNano, ...rest } = { ...ev, Actor: { ID: ev.Actor.ID, Attributes: attributes } };
  return `${JSON.stringify(rest).slice(0, -1)},"timeNano":${timeNano}}`;
}

/** The CLI's default line: `2026-01-01T00:00:00.000000000Z container start <id> (image=…, name=…)`. */
export function eventText(ev: DockerEvent): string {
  const ms = Number(ev.timeNano / 1_000_000n);
  const nanos = String(ev.timeNano % 1_000_000_000n).padStart(9, '0');
  const when = `${new Date(ms).toISOString().slice(0, 19)}.${nanos}Z`;
  const attrs = Object.entries(ev.Actor.Attributes)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return `${when} ${ev.Type} ${ev.Action} ${ev.Actor.ID} (${attrs})`;
}

/** The filters the daemon knows; any other key is refused, as Docker refuses it. */
const FILTER_KEYS = new Set([
  'config',
  'container',
  'daemon',
  'event',
  'image',
  'label',
  'network',
  'node',
  'plugin',
  'scope',
  'secret',
  'service',
  'type',
  'volume',
]);

export type EventFilters = Map<string, string[]>;

/** `--filter key=value`, several times: values of one key are OR'd, keys AND'd. */
export function parseEventFilters(values: readonly string[]): EventFilters | string {
  const filters: EventFilters = new Map();
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) return `bad format of filter (expected name=value)`;
    const key = value.slice(0, eq).trim().toLowerCase();
    if (!FILTER_KEYS.has(key)) return `invalid filter '${key}'`;
    filters.set(key, [...(filters.get(key) ?? []), value.slice(eq + 1)]);
  }
  return filters;
}

/** moby's filters.Args.ExactMatch: true without a filter for `key`. */
function exact(filters: EventFilters, key: string, source: string): boolean {
  const values = filters.get(key);
  return !values || values.includes(source);
}

/** moby's filters.Args.FuzzyMatch: exact, or any value a prefix of `source`. */
function fuzzy(filters: EventFilters, key: string, source: string): boolean {
  const values = filters.get(key);
  return !values || values.some((v) => source.startsWith(v));
}

/**
 * moby's Filter.Include for a container event. Note what Docker does and a watcher must allow for:
 * `container=` matches an id OR a name by prefix (`container=authentik` matches `authentik-server`),
 * and `event=health_status` (also exec_create, exec_start) switches every `event=` value to prefix
 * matching, so `health_status` matches `health_status: healthy`.
 */
export function eventMatches(filters: EventFilters, ev: DockerEvent): boolean {
  const events = filters.get('event') ?? [];
  const fuzzyEvents = events.some((e) => e === 'health_status' || e === 'exec_create' || e === 'exec_start');
  const image = ev.Actor.Attributes.image ?? '';
  const labels = filters.get('label');
  return (
    (fuzzyEvents ? fuzzy(filters, 'event', ev.Action) : exact(filters, 'event', ev.Action)) &&
    exact(filters, 'type', ev.Type) &&
    exact(filters, 'scope', ev.scope) &&
    (fuzzy(filters, 'container', ev.Actor.ID) ||
      fuzzy(filters, 'container', ev.Actor.Attributes.name ?? '')) &&
    (exact(filters, 'image', ev.Actor.ID) ||
      exact(filters, 'image', image) ||
      exact(filters, 'image', image.replace(/:[^/:]*$/, ''))) &&
    // Filters on other object types exclude every container event, as they do in Docker.
    ['config', 'daemon', 'network', 'node', 'plugin', 'secret', 'service', 'volume'].every(
      (k) => !filters.has(k),
    ) &&
    (!labels ||
      labels.every((l) => {
        const eq = l.indexOf('=');
        const [k, v] = eq < 0 ? [l, undefined] : [l.slice(0, eq), l.slice(eq + 1)];
        const have = ev.Actor.Attributes[k];
        return have !== undefined && (v === undefined || have === v);
      }))
  );
}

const UNITS_NS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration (`30s`, `1h30m`, `250ms`) in nanoseconds, or undefined. */
export function goDurationNs(text: string): number | undefined {
  // time.ParseDuration takes a sign: `--until=-600s` is 600 s after now (GetTimestamp subtracts it).
  const sign = text.startsWith('-') ? -1 : 1;
  const body = text.replace(/^[-+]/, '');
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(body)) return undefined;
  let total = 0;
  for (const m of body.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
    total += Number(m[1]) * (UNITS_NS[m[2] as string] as number);
  return sign * total;
}

/**
 * `--since`/`--until` as the CLI reads them: Unix seconds with optional fraction (exact to the
 * nanosecond), a duration before now (`10m`), or an RFC 3339 date. Nanoseconds since the epoch.
 */
export function eventTimeNs(text: string, nowMs: number): bigint | undefined {
  const unix = /^(\d+)(?:\.(\d{1,9}))?$/.exec(text);
  if (unix) return BigInt(unix[1] as string) * 1_000_000_000n + BigInt((unix[2] ?? '').padEnd(9, '0'));
  // A duration or a date becomes whole Unix seconds (GetTimestamp formats `.Unix()`): `--since=0s` is the
  // start of the current second, so that second's earlier events are replayed, as dockerd does.
  const second = (ns: bigint) => (ns / 1_000_000_000n) * 1_000_000_000n;
  const ago = goDurationNs(text);
  if (ago !== undefined) return second(BigInt(nowMs) * 1_000_000n - BigInt(Math.round(ago)));
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : second(BigInt(ms) * 1_000_000n);
}
