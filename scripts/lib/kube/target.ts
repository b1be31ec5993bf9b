import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parse } from 'yaml';
import { InputError } from '../core/errors.ts';
import { readBoundedTextSync } from '../core/read-bounded.ts';

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
 *
 * Called before anything is decrypted, it also refuses (InputError, exit 2) what kubectl would only
 * refuse at the end: a --kubeconfig file that does not exist, and a --context the kubeconfig does not
 * have (what `kubectl config get-contexts` lists), naming the contexts it does have. A kubeconfig that
 * cannot be read or parsed is left for kubectl to report.
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
  if (opts.kubeconfig && !existsSync(opts.kubeconfig)) {
    throw new InputError(
      `--kubeconfig ${opts.kubeconfig}: no such file; nothing was decrypted or applied`,
      'give the path of an existing kubeconfig, or leave --kubeconfig out to use KUBECONFIG or ~/.kube/config',
    );
  }
  const docs: KubeconfigDoc[] = [];
  let unreadable = false;
  for (const file of files) {
    if (!existsSync(file)) continue;
    // Refused before kubectl starts (exit 2): kubectl would block on a FIFO, or read a device forever.
    const text = readKubeconfig(file, opts.kubeconfig ? '--kubeconfig' : env.KUBECONFIG ? 'KUBECONFIG' : '');
    if (text === undefined) {
      unreadable = true;
      continue;
    }
    try {
      docs.push((parse(text) ?? {}) as KubeconfigDoc);
    } catch {
      // kubectl itself reports a broken kubeconfig with a better message when it runs.
      unreadable = true;
    }
  }
  if (opts.context !== undefined && !unreadable) {
    const known = [
      ...new Set(docs.flatMap((d) => d.contexts ?? []).flatMap((c) => (c.name ? [c.name] : []))),
    ];
    if (!known.includes(opts.context)) {
      const found = files.filter((f) => existsSync(f));
      throw new InputError(
        `--context ${opts.context}: no such context in ${found.length > 0 ? found.join(', ') : `any kubeconfig (${files.join(', ')} not found)`}; ${known.length > 0 ? `it has: ${known.join(', ')}` : 'it has no contexts'}. Nothing was decrypted or applied`,
        known.length > 0
          ? `pass one of those with --context (kubectl config get-contexts lists them), or leave --context out to use the current context`
          : 'point --kubeconfig or KUBECONFIG at the kubeconfig that has it',
      );
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

/** A kubeconfig's text; undefined when it cannot be read (kubectl reports that better). */
function readKubeconfig(file: string, from: string): string | undefined {
  try {
    return readBoundedTextSync(file, {
      what: from ? `the kubeconfig (${from})` : 'the kubeconfig',
      kind: 'kubeconfig',
      hint: 'point --kubeconfig or KUBECONFIG at a kubeconfig file',
    });
  } catch (err) {
    if (err instanceof InputError) throw err;
    return undefined;
  }
}
