/**
 * `secrets status`: where every value of the SOPS file stands in each place that holds it (the bootstrap
 * Kubernetes Secrets; the Bifrost host's .secrets.env, .env and rendered netbird/config.yaml). Values are
 * compared in memory; only states, lengths and keyed fingerprints come out, never a value.
 *
 * The comparison (`compareStatus`) is pure. The readers take what each side holds with one `kubectl get`
 * (live-secrets.ts) and one SSH connection (every host file over its one SFTP session). Host content is
 * untrusted: each file is size-checked before it is read, no path from the host is used, and every
 * value read is registered with the redactor before anything is printed.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { DEFAULT_BUNDLE_HOST_DIR } from '../bifrost/docker.ts';
import { parseEnvFile } from '../bifrost/env-file.ts';
import { proxyTokenMinted, RENDERED_ENV_CONSUMERS } from '../bifrost/host-state.ts';
import { BIFROST_PLAN, NB_IDP_MGMT_TOKEN, NB_PROXY_TOKEN } from '../bifrost/plan.ts';
import { normalizeRemoteDir } from '../bifrost/upload.ts';
import { EXIT, InputError, WorkError } from '../core/errors.ts';
import { formatTable } from '../core/format.ts';
import type { Output } from '../core/output.ts';
import { fingerprint, hasFingerprintKey, redactor } from '../core/redact.ts';
import type { Executor } from '../exec/executor.ts';
import { LocalExecutor } from '../exec/local.ts';
import { connectFromFlags, type SshFlags } from '../exec/ssh-cli.ts';
import { type BackendChoice, chooseBackend, describeBackendChoice } from '../kube/backend-choice.ts';
import { type KubectlOptions, kubectlBinary } from '../kube/kubectl.ts';
import { readLiveSecrets } from '../kube/live-secrets.ts';
import { describeKubeTarget, resolveKubeTarget } from '../kube/target.ts';
import type { BackendId } from '../secrets/backend-id.ts';
import { FINGERPRINT_KEY } from '../secrets/registry.ts';
import {
  allK8sConsumers,
  CONSUMERS,
  type ConsumerId,
  deliveredValue,
  k8sConsumersFor,
  SECRET_SCHEMA,
  type SecretUse,
} from '../secrets/schema.ts';
import { DEFAULT_SECRETS_FILE, loadSecrets } from '../secrets/source.ts';

/** in sync / differs / missing (the place exists, the name does not) / not deployed (no such place);
 * `not set`: neither the SOPS file nor the place has a value (an optional key not set yet). */
export type StatusState = 'in sync' | 'differs' | 'missing' | 'not deployed' | 'not set';

/** States that make `secrets status` exit 1. `not deployed` counts: the value is not where it belongs. */
export const OUT_OF_SYNC: readonly StatusState[] = ['differs', 'missing', 'not deployed'];

/** The netbird/config.yaml the engine renders on the host (the plan's render step). */
export const NETBIRD_CONFIG = 'netbird-config';

/** A checked place: a consumer of the schema, or the rendered NetBird config. */
export type PlaceId = ConsumerId | typeof NETBIRD_CONFIG;

/** What should be where: one name in one place, and the value the SOPS file gives it. */
export interface Expectation {
  key: string;
  place: PlaceId;
  /** The name the place knows it by (a Secret data key, an env-file name, a YAML path). */
  name: string;
  expected: string | undefined;
}

/** What each place holds, name → value; undefined when the place does not exist at all. */
export type LivePlaces = ReadonlyMap<PlaceId, Readonly<Record<string, string>> | undefined>;

export interface Seen {
  length: number;
  /** Keyed (FINGERPRINT_KEY); absent when the source has no fingerprint key. */
  fingerprint?: string;
}

export interface StatusRow {
  key: string;
  place: PlaceId;
  /** The host (as given to --host) for a host file's row. */
  host?: string;
  /** Where, for people: "Secret infisical/infisical-secrets", "host .secrets.env". */
  where: string;
  name: string;
  state: StatusState;
  source?: Seen;
  live?: Seen;
}

const seen = (value: string | undefined): Seen | undefined => {
  if (value === undefined || value === '') return undefined;
  const fp = fingerprint(value);
  return fp ? { length: [...value].length, fingerprint: fp } : { length: [...value].length };
};

/** Compares every expectation with what its place holds. Pure: values in, states and fingerprints out. */
export function compareStatus(expectations: readonly Expectation[], live: LivePlaces): StatusRow[] {
  return expectations.map((e) => {
    const place = live.get(e.place);
    const actual = place?.[e.name] || undefined;
    const expected = e.expected || undefined;
    const state: StatusState =
      expected === undefined
        ? actual === undefined
          ? 'not set'
          : 'differs'
        : place === undefined
          ? 'not deployed'
          : actual === undefined
            ? 'missing'
            : actual === expected
              ? 'in sync'
              : 'differs';
    const row: StatusRow = { key: e.key, place: e.place, where: placeTitle(e.place), name: e.name, state };
    const source = seen(expected);
    const held = seen(actual);
    if (source) row.source = source;
    if (held) row.live = held;
    return row;
  });
}

export function placeTitle(place: PlaceId): string {
  if (place === NETBIRD_CONFIG) return `host ${NETBIRD_RENDER.output}`;
  const info = CONSUMERS[place];
  if (info.kind === 'k8s-secret') return `Secret ${info.namespace}/${place}`;
  if (info.kind === 'env-file') return `host ${info.path}`;
  return info.title;
}

// ---- what should be where -------------------------------------------------------------------------

/** The cluster's places: the bootstrap Secrets of the cluster's runtime backend. */
export function clusterPlaces(backend: BackendId): readonly ConsumerId[] {
  return k8sConsumersFor(backend);
}
export const HOST_ENV_PLACES: readonly ConsumerId[] = RENDERED_ENV_CONSUMERS.map(([, consumer]) => consumer);

const keysHeldBy = (places: readonly ConsumerId[]) =>
  SECRET_SCHEMA.filter((s) => (s.uses as readonly SecretUse[]).some((u) => places.includes(u.consumer))).map(
    (s) => s.key as string,
  );

/** Keys that no place of any backend holds (operator-only, the suite's own key): listed, not compared. */
export const UNCHECKED_KEYS: readonly string[] = (() => {
  const held = new Set(keysHeldBy([...allK8sConsumers(), ...HOST_ENV_PLACES]));
  return SECRET_SCHEMA.map((s) => s.key as string).filter((k) => !held.has(k));
})();

/** Keys only other backends' Secrets hold: not compared with this backend's cluster. */
export function otherBackendKeys(backend: BackendId): string[] {
  const held = new Set([...keysHeldBy([...clusterPlaces(backend), ...HOST_ENV_PLACES]), ...UNCHECKED_KEYS]);
  return SECRET_SCHEMA.map((s) => s.key as string).filter((k) => !held.has(k));
}

/**
 * Every use of a schema key by one of `places`, in schema order, with derived values computed. A place
 * that takes a hash is expected to hold one that verifies against the value: what `live` holds when it
 * does, else a new hash (which differs).
 */
export function consumerExpectations(
  values: Readonly<Record<string, string | undefined>>,
  places: readonly ConsumerId[],
  live?: LivePlaces,
): Expectation[] {
  const out: Expectation[] = [];
  for (const spec of SECRET_SCHEMA) {
    const value = values[spec.key] || undefined;
    for (const use of spec.uses as readonly SecretUse[]) {
      if (!places.includes(use.consumer)) continue;
      const expected =
        value === undefined ? undefined : deliveredValue(use, value, live?.get(use.consumer)?.[use.as]);
      out.push({ key: spec.key, place: use.consumer, name: use.as, expected });
    }
  }
  return out;
}

// ---- the NetBird config ---------------------------------------------------------------------------

const NETBIRD_RENDER = (() => {
  const step = BIFROST_PLAN.find((s) => s.kind === 'render');
  if (step?.kind !== 'render') throw new Error('the Bifrost plan has no render step');
  return { template: step.template, output: step.output };
})();

const LOCAL_TEMPLATE = resolve(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'cloud',
  'bifrost',
  NETBIRD_RENDER.template,
);

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Where a placeholder sits in the template: the YAML path, and the template string holding it. */
export interface Placement {
  placeholder: string;
  path: (string | number)[];
  pattern: string;
}

/** Every `${NAME}` in the template's string scalars, with its path (as the engine's render fills them). */
export function placementsOf(template: string): Placement[] {
  const out: Placement[] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    if (typeof node === 'string') {
      for (const m of node.matchAll(PLACEHOLDER))
        out.push({ placeholder: m[1] as string, path, pattern: node });
    } else if (Array.isArray(node)) {
      for (const [i, n] of node.entries()) walk(n, [...path, i]);
    } else if (node && typeof node === 'object')
      for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
  };
  walk(parse(template), []);
  return out;
}

export const pathName = (path: readonly (string | number)[]) => path.join('.');

/**
 * The value each placement has in a rendered config: the whole scalar, or the part matching the
 * placeholder inside a longer template string. undefined where the path or the surrounding text is gone.
 */
export function renderedValues(placements: readonly Placement[], rendered: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of placements) {
    let node: unknown = rendered;
    for (const step of p.path)
      node = node && typeof node === 'object' ? (node as Record<string, unknown>)[step] : undefined;
    if (typeof node !== 'string') continue;
    const parts = p.pattern.split(PLACEHOLDER);
    const names = parts.filter((_, i) => i % 2 === 1);
    const source = parts
      .map((part, i) => (i % 2 === 1 ? '([\\s\\S]*?)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    const m = new RegExp(`^${source}$`).exec(node);
    const at = names.indexOf(p.placeholder);
    if (m && at >= 0 && m[at + 1] !== undefined) out[pathName(p.path)] = m[at + 1] as string;
  }
  return out;
}

/**
 * The config's expectations: each placeholder's schema key (the engine fills them from .secrets.env, so
 * its names map back through the schema); NB_IDP_MGMT_TOKEN, minted on the host, against .secrets.env.
 */
export function configExpectations(
  placements: readonly Placement[],
  values: Readonly<Record<string, string | undefined>>,
  hostSecretsEnv: ReadonlyMap<string, string> | undefined,
  hostConfig?: Readonly<Record<string, string>>,
): Expectation[] {
  const useOf = new Map(usesBy('bifrost-secrets-env').map((u) => [u.use.as, u]));
  return placements.map((p) => {
    const found = useOf.get(p.placeholder);
    const name = pathName(p.path);
    const value = found ? values[found.key] || undefined : undefined;
    const expected = found
      ? value === undefined
        ? undefined
        : deliveredValue(found.use, value, hostConfig?.[name])
      : p.placeholder === NB_IDP_MGMT_TOKEN
        ? hostSecretsEnv?.get(NB_IDP_MGMT_TOKEN)
        : undefined;
    return { key: found?.key ?? p.placeholder, place: NETBIRD_CONFIG, name, expected };
  });
}

/** A consumer's uses that carry the value (or its hash) under a name of their own: not derived ones. */
function usesBy(consumer: ConsumerId): { key: string; use: SecretUse }[] {
  return SECRET_SCHEMA.flatMap((spec) =>
    (spec.uses as readonly SecretUse[])
      .filter((u) => u.consumer === consumer && !u.derive)
      .map((use) => ({ key: spec.key as string, use })),
  );
}

// ---- reading the host -----------------------------------------------------------------------------

/** Env files and the NetBird config are a few KiB; anything far larger is not ours to read. */
export const MAX_HOST_FILE_BYTES = 256 * 1024;

export interface HostRead {
  where: string;
  dir: string;
  /** Each rendered env file read, by the consumer whose names it holds; absent when the file is not there. */
  env: Map<ConsumerId, Map<string, string>>;
  /** The rendered config's values by YAML path; undefined when the file is not there. */
  config?: Record<string, string>;
  placements: Placement[];
  /** Notes for the operator (a rendered config that is not valid YAML). */
  notes: string[];
}

async function readBounded(executor: Executor, path: string): Promise<string | undefined> {
  const st = await executor.files.stat(path);
  if (st === undefined) return undefined;
  if (st.size > MAX_HOST_FILE_BYTES) {
    throw new WorkError(
      `${executor.where}: ${path} is ${st.size} bytes, over the ${MAX_HOST_FILE_BYTES}-byte limit; not read`,
      'look at the file on the host: a rendered env file or NetBird config is a few KiB',
    );
  }
  const text = await executor.files.readFile(path);
  if (text !== undefined && Buffer.byteLength(text) > MAX_HOST_FILE_BYTES) {
    throw new WorkError(`${executor.where}: ${path} grew past ${MAX_HOST_FILE_BYTES} bytes while read`);
  }
  return text;
}

/**
 * Reads .secrets.env, .env, and the rendered NetBird config under `dir`, all over the one
 * connection `executor` holds, and registers every value read with the redactor.
 */
export async function readHost(executor: Executor, dir: string): Promise<HostRead> {
  const texts = await Promise.all(
    [...RENDERED_ENV_CONSUMERS.map(([file]) => file), NETBIRD_RENDER.output].map((f) =>
      readBounded(executor, `${dir}/${f}`),
    ),
  );
  const configText = texts[RENDERED_ENV_CONSUMERS.length];
  const read: HostRead = { where: executor.where, dir, env: new Map(), placements: [], notes: [] };
  for (const [i, [, consumer]] of RENDERED_ENV_CONSUMERS.entries()) {
    const text = texts[i];
    if (text === undefined) continue;
    const env = parseEnvFile(text);
    for (const [k, v] of env) redactor.register(v, k);
    // A NB_PROXY_TOKEN the bootstrap minted on the host (the SOPS file has none) is the host's own, as
    // NB_IDP_MGMT_TOKEN is (its value registered above all the same): not provisioned, so not compared.
    if (consumer === 'bifrost-secrets-env' && proxyTokenMinted(text)) env.delete(NB_PROXY_TOKEN);
    read.env.set(consumer, env);
  }
  // Where the placeholders sit comes from the suite's own template (what provision uploads), not from
  // the host: host content only ever supplies values to compare.
  read.placements = placementsOf(await readFile(LOCAL_TEMPLATE, 'utf8'));
  if (configText !== undefined) {
    let rendered: unknown;
    try {
      rendered = parse(configText);
    } catch {
      // Nothing of a broken file is shown or kept: its values count as missing.
      read.notes.push(`${NETBIRD_RENDER.output} on the host is not valid YAML: its values count as missing`);
      rendered = undefined;
    }
    read.config = renderedValues(read.placements, rendered);
    for (const [path, v] of Object.entries(read.config)) redactor.register(v, path);
  }
  return read;
}

/** The host's places as the comparison takes them. */
export function hostPlaces(read: HostRead): [PlaceId, Record<string, string> | undefined][] {
  const obj = (m: Map<string, string> | undefined) => (m ? Object.fromEntries(m) : undefined);
  return [
    ...RENDERED_ENV_CONSUMERS.map(([, consumer]): [PlaceId, Record<string, string> | undefined] => [
      consumer,
      obj(read.env.get(consumer)),
    ]),
    [NETBIRD_CONFIG, read.config],
  ];
}

// ---- the command ----------------------------------------------------------------------------------

export interface StatusOptions {
  secretsFile: string;
  fromEnv: boolean;
  /** The cluster to read, or undefined for --no-cluster. */
  cluster?: KubectlOptions;
  /** Whose Secrets the cluster holds (--backend, else the apps table); resolved when absent. */
  backend?: BackendChoice;
  /** The hosts to read (--host, repeatable); none without --host. */
  hosts: (SshFlags & { host: string })[];
  remoteDir: string;
}

export interface StatusResult {
  ok: boolean;
  source: { kind: string; file?: string };
  cluster:
    | { checked: true; target: string; backend: { id: BackendId; from: string } }
    | { checked: false; skipped: string };
  /** One entry per --host; empty when none was given (`hostSkipped` says so). */
  hosts: { host: string; where: string; dir: string }[];
  hostSkipped?: string;
  rows: StatusRow[];
  counts: Record<StatusState, number>;
  /** Keys no checked place holds (operator-only, the suite's own): not compared. */
  unchecked: string[];
  /** Keys only other runtime backends' Secrets hold (with the cluster checked): not compared. */
  otherBackends: string[];
  notes: string[];
}

const showSeen = (s: Seen | undefined) =>
  s ? `${s.length} chars${s.fingerprint ? ` ${s.fingerprint}` : ''}` : '-';

/** Reads the SOPS file, then the cluster (one kubectl get) and the host (one SSH connection) together. */
export async function secretsStatus(opts: StatusOptions, out: Output): Promise<number> {
  if (!opts.cluster && opts.hosts.length === 0) {
    throw new InputError(
      'nothing to check: --no-cluster and no --host',
      'leave out --no-cluster to check the cluster, or give --host H to check the Bifrost host',
    );
  }
  const local = new LocalExecutor();
  // The cluster's places follow its runtime backend; an unknown one is bad input before anything is read.
  const backend = opts.cluster ? (opts.backend ?? chooseBackend(undefined)) : undefined;
  const places = backend ? clusterPlaces(backend.id) : [];
  const target = opts.cluster
    ? resolveKubeTarget({ kubeconfig: opts.cluster.kubeconfig, context: opts.cluster.context })
    : undefined;
  const loaded = await loadSecrets({
    secretsFile: opts.secretsFile,
    fromEnv: opts.fromEnv,
    required: [],
    executor: local,
  });
  for (const warning of loaded.warnings) out.warn(warning);
  out.info(`source   ${loaded.describe}`);
  if (!hasFingerprintKey())
    out.warn(`${FINGERPRINT_KEY} is not in ${loaded.describe}: values are shown by length only`);

  // Every side at once: the cluster (one kubectl get) and each host (one SSH connection each); all settle
  // before a failure is reported, so that no connection is left open behind it.
  const [clusterRead, ...hostReads] = await Promise.allSettled([
    opts.cluster ? readCluster(local, opts.cluster, places) : Promise.resolve(undefined),
    ...opts.hosts.map((h) => readHostOver(h, opts.remoteDir)),
  ]);
  for (const r of [clusterRead, ...hostReads]) if (r?.status === 'rejected') throw r.reason;
  const hosts = hostReads.map((r) => (r as PromiseFulfilledResult<HostRead>).value);

  const unsorted: StatusRow[] = [];
  const cluster = clusterRead?.status === 'fulfilled' ? clusterRead.value : undefined;
  if (cluster) unsorted.push(...compareStatus(consumerExpectations(loaded.values, places), new Map(cluster)));
  for (const [i, host] of hosts.entries()) {
    const name = opts.hosts[i]?.host ?? host.where;
    const live = new Map(hostPlaces(host));
    const expectations = [
      ...consumerExpectations(loaded.values, HOST_ENV_PLACES, live),
      ...configExpectations(host.placements, loaded.values, host.env.get('bifrost-secrets-env'), host.config),
    ];
    for (const row of compareStatus(expectations, live))
      unsorted.push({
        ...row,
        host: name,
        where: hosts.length > 1 ? row.where.replace(/^host /, `${name} `) : row.where,
      });
  }
  // Per key of the schema, then per place: the order people read the schema in.
  const order = new Map<string, number>(SECRET_SCHEMA.map((s, i) => [s.key, i]));
  const rows = unsorted
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (order.get(a.r.key) ?? 99) - (order.get(b.r.key) ?? 99) || a.i - b.i)
    .map((x) => x.r);

  const counts = { 'in sync': 0, differs: 0, missing: 0, 'not deployed': 0, 'not set': 0 } as Record<
    StatusState,
    number
  >;
  for (const r of rows) counts[r.state]++;
  const notes = hosts.flatMap((h) => (hosts.length > 1 ? h.notes.map((n) => `${h.where}: ${n}`) : h.notes));
  const result: StatusResult = {
    ok: rows.every((r) => !OUT_OF_SYNC.includes(r.state)),
    source: { kind: loaded.kind, ...(loaded.file ? { file: loaded.file } : {}) },
    cluster:
      opts.cluster && backend
        ? {
            checked: true,
            target: target ? describeKubeTarget(target) : '',
            backend: { id: backend.id, from: backend.from },
          }
        : { checked: false, skipped: '--no-cluster' },
    hosts: hosts.map((h, i) => ({ host: opts.hosts[i]?.host ?? h.where, where: h.where, dir: h.dir })),
    ...(hosts.length === 0 ? { hostSkipped: 'no --host given' } : {}),
    rows,
    counts,
    unchecked: [...UNCHECKED_KEYS],
    otherBackends: backend ? otherBackendKeys(backend.id) : [],
    notes,
  };

  out.info(`cluster  ${result.cluster.checked ? result.cluster.target : 'skipped (--no-cluster)'}`);
  if (backend) out.info(`backend  ${describeBackendChoice(backend)}`);
  out.info(
    hosts.length
      ? `${hosts.map((h) => `host     ${h.where}:${h.dir}`).join('\n')}\n`
      : 'host     skipped (no --host given)\n',
  );
  const paint = (cell: string, column: number) =>
    column !== 3
      ? cell
      : cell.startsWith('in sync')
        ? out.color.green(cell)
        : cell.startsWith('not set')
          ? cell
          : out.color.red(cell);
  out.info(
    formatTable(
      ['key', 'where', 'as', 'state', 'SOPS file', 'deployed'],
      rows.map((r) => [r.key, r.where, r.name, r.state, showSeen(r.source), showSeen(r.live)]),
      { paint },
    ),
  );
  for (const note of notes) out.warn(note);
  out.info(`\nnot compared (no deployed copy): ${UNCHECKED_KEYS.join(', ')}`);
  if (backend && result.otherBackends.length > 0)
    out.info(`not compared (not used with backend ${backend.id}): ${result.otherBackends.join(', ')}`);
  const summary = (Object.entries(counts) as [StatusState, number][])
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  out.result(result);
  if (result.ok) {
    out.info(out.color.green(`${summary || 'nothing checked'}`));
    return EXIT.ok;
  }
  const bad = rows.filter((r) => OUT_OF_SYNC.includes(r.state));
  const fixes = [
    ...(bad.some((r) => (places as readonly PlaceId[]).includes(r.place))
      ? [
          `the cluster: create-bootstrap-secrets${backend?.from === '--backend' ? ` --backend ${backend.id}` : ''} (just create-secrets)`,
        ]
      : []),
    ...(bad.some((r) => !(places as readonly PlaceId[]).includes(r.place))
      ? [
          `the host${hosts.length > 1 ? 's' : ''}: provision-bifrost (just bifrost-up HOST), which renders the NetBird config too`,
        ]
      : []),
  ];
  out.error(
    `not in sync: ${summary}`,
    `if the SOPS file is right, apply it again to ${fixes.join('; to ')}; if the deployed value is the right one, put it into the SOPS file with \`secrets set KEY\``,
  );
  return EXIT.failed;
}

/** The bootstrap Secrets, by place, with one `kubectl get`. A cluster that cannot be read is bad input. */
async function readCluster(
  executor: Executor,
  kubectl: KubectlOptions,
  places: readonly ConsumerId[],
): Promise<[PlaceId, Record<string, string> | undefined][]> {
  const refs = places.map((c) => {
    const info = CONSUMERS[c];
    return { namespace: info.kind === 'k8s-secret' ? info.namespace : '', name: c };
  });
  let found: Map<string, Record<string, string> | undefined>;
  try {
    found = await readLiveSecrets(executor, kubectl, refs);
  } catch (err) {
    throw new InputError(
      `cannot read the cluster's Secrets: ${(err as Error).message}`,
      `${(err as { hint?: string }).hint ?? 'check --context / --kubeconfig and that the cluster is reachable (kubectl cluster-info)'}; or skip the cluster with --no-cluster`,
    );
  }
  return refs.map((r) => [r.name as PlaceId, found.get(`${r.namespace}/${r.name}`)]);
}

/** One connection for every host file; a host that cannot be reached is bad input (exit 2). */
async function readHostOver(flags: SshFlags & { host: string }, remoteDir: string): Promise<HostRead> {
  const dir = normalizeRemoteDir(remoteDir);
  let executor: Executor;
  try {
    executor = await connectFromFlags(flags);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(
      `cannot reach the host: ${(err as Error).message}`,
      `${(err as { hint?: string }).hint ?? 'check --host and --port'}; or leave --host out to check the cluster only`,
    );
  }
  try {
    return await readHost(executor, dir);
  } finally {
    await executor.close();
  }
}

/** The status command's flags as parsed: the SSH options, with --host repeatable. */
export type StatusFlags = Omit<SshFlags, 'host'> & {
  'secrets-file'?: string;
  'from-env'?: boolean;
  context?: string;
  kubeconfig?: string;
  'no-cluster'?: boolean;
  backend?: string;
  'remote-dir'?: string;
  host?: string[];
};

/** `secrets status` from its parsed flags: the cluster unless --no-cluster, each --host over its own connection. */
export async function secretsStatusFromFlags(flags: StatusFlags, out: Output): Promise<number> {
  // Only the cluster follows the backend; --backend itself is checked either way.
  const backend =
    flags['no-cluster'] && flags.backend === undefined ? undefined : chooseBackend(flags.backend);
  return secretsStatus(
    {
      secretsFile: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      fromEnv: Boolean(flags['from-env']),
      ...(backend ? { backend } : {}),
      ...(flags['no-cluster']
        ? {}
        : { cluster: { kubectl: kubectlBinary(), context: flags.context, kubeconfig: flags.kubeconfig } }),
      hosts: (flags.host ?? []).map((host) => ({ ...flags, host })),
      remoteDir: flags['remote-dir'] ?? DEFAULT_BUNDLE_HOST_DIR,
    },
    out,
  );
}
