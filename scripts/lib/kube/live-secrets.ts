/**
 * What the cluster holds now, for the Secrets this project manages: ONE `kubectl get -f -` with stub
 * manifests (kind, namespace, name: no values) on stdin. kubectl GETs exactly those objects, so no other
 * Secret's data ever reaches this process, and only `get` on them is needed (no cluster-wide `list`).
 * A go-template prints only the data and which field manager owns which data key; the rest of the object
 * (a `last-applied-configuration` annotation from an old client-side apply holds every value in
 * plaintext) never leaves kubectl. Every value read is registered with the redactor before anything else.
 */
import { InputError, WorkError } from '../core/errors.ts';
import { type Executor, formatCommand } from '../exec/executor.ts';
import { registerSecrets } from '../secrets/registry.ts';
import { globalArgs, type KubectlOptions, kubectlSaid, runKubectl } from './kubectl.ts';
import { type Manifest, toYamlStream } from './manifests.ts';

export interface SecretRef {
  namespace: string;
  name: string;
}

/** One `metadata.managedFields` entry, reduced to the data keys it owns. */
export interface DataOwner {
  manager: string;
  operation: string;
  keys: string[];
}

/** A Secret as it is live: its decoded data and who owns which key. */
export interface LiveSecret {
  data: Record<string, string>;
  owners: DataOwner[];
}

/** How long kubectl may take for the read: its own request timeout, and a wall-clock bound around it. */
export const READ_TIMEOUT_SECONDS = 30;

export const refKey = (ref: SecretRef): string => `${ref.namespace}/${ref.name}`;

/**
 * Line-oriented, unambiguous output: Secret names and data keys cannot hold spaces; the manager name can,
 * so it is printed Go-quoted (`%q`) last. kubectl prints a List for `-f` (even of one object), and nothing
 * at all when --ignore-not-found left no object.
 */
export const LIVE_TEMPLATE = [
  '{{range .items}}',
  'secret {{.metadata.namespace}} {{.metadata.name}}{{"\\n"}}',
  '{{range $k, $v := .data}}data {{$k}} {{$v}}{{"\\n"}}{{end}}',
  '{{range .metadata.managedFields}}owner {{.operation}}',
  '{{with .fieldsV1}}{{with index . "f:data"}}{{range $k, $_ := .}} {{$k}}{{end}}{{end}}{{end}}',
  ' {{printf "%q" .manager}}{{"\\n"}}{{end}}',
  '{{end}}',
].join('');

export function liveArgv(opts: KubectlOptions): string[] {
  return [
    ...globalArgs(opts),
    'get',
    '-f',
    '-',
    '--ignore-not-found',
    `--request-timeout=${READ_TIMEOUT_SECONDS}s`,
    '-o',
    `go-template=${LIVE_TEMPLATE}`,
  ];
}

/** The stub manifests kubectl reads to know what to GET: no data. */
export function liveStubs(refs: readonly SecretRef[]): string {
  const stubs: Manifest[] = refs.map((r) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: r.name, namespace: r.namespace },
  }));
  return toYamlStream(stubs);
}

/** Parses LIVE_TEMPLATE's output. Values stay base64 until decoded here; nothing else sees them. */
export function parseLiveOutput(stdout: string): Map<string, LiveSecret> {
  const out = new Map<string, LiveSecret>();
  let current: LiveSecret | undefined;
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const [tag, ...rest] = line.split(' ');
    if (tag === 'secret') {
      current = { data: {}, owners: [] };
      out.set(`${rest[0]}/${rest[1]}`, current);
    } else if (tag === 'data' && current) {
      current.data[rest[0] as string] = Buffer.from(rest[1] ?? '', 'base64').toString('utf8');
    } else if (tag === 'owner' && current) {
      const quoted = line.slice(line.indexOf(' "') + 1);
      const fields = line.slice(0, line.indexOf(' "')).split(' ').slice(1);
      current.owners.push({
        operation: fields[0] ?? '',
        keys: fields.slice(1).map((k) => k.replace(/^f:/, '')),
        manager: unquote(quoted),
      });
    } else {
      throw new WorkError(
        `cannot read kubectl's output for the live Secrets: unexpected line "${line.slice(0, 40)}"`,
        'a bug, or a kubectl that does not honour -o go-template: please report it',
      );
    }
  }
  return out;
}

/** Go's %q of a manager name: JSON's escapes cover what a manager name holds in practice. */
function unquote(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted.replace(/^"|"$/g, '');
  }
}

/**
 * One `kubectl get` for all refs. Per `${namespace}/${name}`: the Secret as live (data and owners), or
 * undefined when it does not exist. Every value read is registered with the redactor.
 */
export async function readLiveSecretDetails(
  executor: Executor,
  opts: KubectlOptions,
  refs: readonly SecretRef[],
): Promise<Map<string, LiveSecret | undefined>> {
  const result = new Map<string, LiveSecret | undefined>(refs.map((r) => [refKey(r), undefined]));
  if (refs.length === 0) return result;
  const argv = liveArgv(opts);
  const run = await runKubectl(executor, opts, {
    argv,
    input: liveStubs(refs),
    timeoutMs: (READ_TIMEOUT_SECONDS + 15) * 1000,
    what: 'reading the live Secrets',
  });
  if (run.exitCode !== 0) throw getError(opts, run.exitCode, run.stderr);
  const parsed = parseLiveOutput(run.stdout);
  for (const [key, live] of parsed) {
    if (!result.has(key)) continue;
    // Named `KEY (live ns/name)`: the redactor labels it KEY, and a live key can never be taken for one
    // of the schema's own keys (a live FINGERPRINT_KEY must not become this process's fingerprint key).
    registerSecrets(Object.fromEntries(Object.entries(live.data).map(([k, v]) => [`${k} (live ${key})`, v])));
    result.set(key, live);
  }
  return result;
}

/**
 * One `kubectl get` for all refs. Per `${namespace}/${name}`: the decoded (utf8) data, or undefined when
 * the Secret does not exist. Every value read is registered with the redactor (registerSecrets).
 */
export async function readLiveSecrets(
  executor: Executor,
  opts: KubectlOptions,
  refs: readonly SecretRef[],
): Promise<Map<string, Record<string, string> | undefined>> {
  const details = await readLiveSecretDetails(executor, opts, refs);
  return new Map([...details].map(([key, live]) => [key, live?.data]));
}

/** kubectl's failure, named: unreachable, not allowed, a wrong context or kubeconfig, or anything else. */
function getError(opts: KubectlOptions, exitCode: number, stderr: string): Error {
  const said = kubectlSaid(stderr);
  const what = `reading the live Secrets failed (kubectl get, exit ${exitCode})`;
  if (
    /context was not found|context "[^"]*" does not exist|no such file or directory|invalid configuration/i.test(
      said,
    )
  ) {
    return new InputError(
      `${what}: the kubeconfig or context is wrong:\n${said}`,
      `check --kubeconfig${opts.kubeconfig ? ` ${opts.kubeconfig}` : ''} and --context${opts.context ? ` ${opts.context}` : ''} (kubectl config get-contexts)`,
    );
  }
  if (
    /Unable to connect|connection refused|no such host|i\/o timeout|dial tcp|deadline exceeded|Client.Timeout|was refused/i.test(
      said,
    )
  ) {
    // Nothing was read or written: a wrong server in the kubeconfig, a VPN down. Fix the target, run again.
    return new InputError(
      `${what}: the cluster cannot be reached:\n${said}`,
      `check the context (--context, --kubeconfig) and that the API server is up and reachable from here (${formatCommand(['kubectl', ...globalArgs(opts).slice(1), 'cluster-info'])}), then run again`,
    );
  }
  if (/forbidden/i.test(said)) {
    return new WorkError(
      `${what}: not allowed to get these Secrets:\n${said}`,
      'use a context whose user may get, create and patch Secrets in these namespaces',
    );
  }
  return new WorkError(`${what}:\n${said}`, 'check the context (kubectl cluster-info), then run again');
}
