import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parse } from 'yaml';

export interface KubeTarget {
  /** The context kubectl will use, or undefined when no kubeconfig names one. */
  context?: string;
  /** The API server URL of that context's cluster, when the kubeconfig says. */
  server?: string;
  /** The kubeconfig files consulted, in kubectl's order. */
  files: string[];
}

interface KubeconfigDoc {
  'current-context'?: string;
  contexts?: { name?: string; context?: { cluster?: string } }[];
  clusters?: { name?: string; cluster?: { server?: string } }[];
}

/**
 * Which cluster kubectl is about to write to, read from the kubeconfig as kubectl resolves it
 * (--kubeconfig, else every file in KUBECONFIG, else ~/.kube/config; the first current-context wins).
 * Reading the files ourselves saves a `kubectl config` process per run.
 */
export function resolveKubeTarget(opts: {
  kubeconfig?: string;
  context?: string;
  env?: NodeJS.ProcessEnv;
}): KubeTarget {
  const env = opts.env ?? process.env;
  const files = opts.kubeconfig
    ? [opts.kubeconfig]
    : env.KUBECONFIG
      ? env.KUBECONFIG.split(delimiter).filter(Boolean)
      : [join(env.HOME ?? homedir(), '.kube', 'config')];
  const docs: KubeconfigDoc[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    try {
      docs.push((parse(readFileSync(file, 'utf8')) ?? {}) as KubeconfigDoc);
    } catch {
      // kubectl itself reports a broken kubeconfig with a better message when it runs.
    }
  }
  const context = opts.context ?? docs.map((d) => d['current-context']).find((c) => c);
  const cluster = docs.flatMap((d) => d.contexts ?? []).find((c) => c.name === context)?.context?.cluster;
  const server = docs.flatMap((d) => d.clusters ?? []).find((c) => c.name === cluster)?.cluster?.server;
  return { context: context || undefined, server, files };
}

export function describeKubeTarget(t: KubeTarget): string {
  if (!t.context)
    return `no current context (kubeconfig: ${t.files.join(', ')}); kubectl will use its default`;
  return `context "${t.context}"${t.server ? ` (${t.server})` : ''}`;
}
