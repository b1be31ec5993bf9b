/**
 * What the cluster holds now: the data of a few Secrets, read with ONE `kubectl get secrets
 * --all-namespaces` whose go-template prints only the wanted items (namespace/name, then each data key
 * with its base64 value), so no other Secret's value ever reaches this process. Values come back on
 * kubectl's stdout, never through argv, and each is registered with the redactor as soon as it is decoded.
 */
import { WorkError } from '../errors.ts';
import type { Executor } from '../exec/executor.ts';
import { redactor } from '../redact.ts';
import type { KubectlOptions } from './kubectl.ts';

export interface SecretRef {
  namespace: string;
  name: string;
}

const TIMEOUT_MS = 60_000;
/** Namespaces and names are DNS labels/subdomains: nothing that could break out of the template's strings. */
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The go-template: `S\tNS/NAME` for each wanted Secret, then `D\tKEY\tBASE64` for each of its data keys. */
export function liveSecretsTemplate(refs: readonly SecretRef[]): string {
  const wanted = refs
    .map((r) => `(and (eq .metadata.namespace "${r.namespace}") (eq .metadata.name "${r.name}"))`)
    .join(' ');
  const test = refs.length === 1 ? wanted : `(or ${wanted})`;
  // Tabs and newlines as Go string escapes: the argv stays one printable line.
  const tab = '{{"\\t"}}';
  const nl = '{{"\\n"}}';
  return `{{range .items}}{{if ${test}}}S${tab}{{.metadata.namespace}}/{{.metadata.name}}${nl}{{range $k, $v := .data}}D${tab}{{$k}}${tab}{{$v}}${nl}{{end}}{{end}}{{end}}`;
}

export function liveSecretsArgv(opts: KubectlOptions, refs: readonly SecretRef[]): string[] {
  const argv = [opts.kubectl];
  if (opts.kubeconfig) argv.push('--kubeconfig', opts.kubeconfig);
  if (opts.context) argv.push('--context', opts.context);
  return [...argv, 'get', 'secrets', '--all-namespaces', '-o', `go-template=${liveSecretsTemplate(refs)}`];
}

/** Parses the template's output into per-Secret data, registering every decoded value. */
export function parseLiveSecrets(
  stdout: string,
  refs: readonly SecretRef[],
): Map<string, Record<string, string> | undefined> {
  const out = new Map<string, Record<string, string> | undefined>(
    refs.map((r) => [`${r.namespace}/${r.name}`, undefined]),
  );
  let current: Record<string, string> | undefined;
  for (const line of stdout.split('\n')) {
    const [tag, a, b] = line.split('\t');
    if (tag === 'S' && a !== undefined && out.has(a)) {
      current = {};
      out.set(a, current);
    } else if (tag === 'D' && current && a !== undefined && b !== undefined) {
      const value = Buffer.from(b, 'base64').toString('utf8');
      redactor.register(value, a);
      current[a] = value;
    }
  }
  return out;
}

/** One `kubectl get` for all refs. Per `${namespace}/${name}`: the decoded (utf8) data, or undefined when the Secret does not exist. Every value read is registered with the redactor. */
export async function readLiveSecrets(
  executor: Executor,
  opts: KubectlOptions,
  refs: readonly SecretRef[],
): Promise<Map<string, Record<string, string> | undefined>> {
  const bad = refs.find((r) => !DNS_NAME.test(r.namespace) || !DNS_NAME.test(r.name));
  if (bad) throw new WorkError(`not a Kubernetes object name: ${JSON.stringify(bad)}`);
  if (refs.length === 0) return new Map();
  const result = await executor.run({ argv: liveSecretsArgv(opts, refs), timeoutMs: TIMEOUT_MS });
  if (result.spawnError) {
    throw new WorkError(
      `cannot run ${opts.kubectl}: ${result.spawnError}`,
      'install kubectl, or point KUBECTL at it',
    );
  }
  if (result.timedOut) {
    throw new WorkError(
      `${opts.kubectl} get secrets did not finish within ${TIMEOUT_MS / 1000} s`,
      'check that the cluster is reachable (kubectl cluster-info)',
    );
  }
  // Parsed (and registered) before any error text is built: stderr can only be shown redacted.
  const found = parseLiveSecrets(result.stdout, refs);
  if (result.exitCode !== 0) {
    throw new WorkError(
      `${opts.kubectl} get secrets failed (exit ${result.exitCode}): ${result.stderr.trim()}`,
      'check the context and that the cluster is reachable (kubectl cluster-info)',
    );
  }
  return found;
}
