/**
 * Writes a kubeconfig that points kubectl at one API server (the fake one in tests and the sandbox demo).
 * The file is mode 0600 like one kubectl writes itself: it may hold a token, and kubectl warns about
 * group- or world-readable kubeconfigs.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface KubeconfigOptions {
  /** The API server URL, e.g. `http://127.0.0.1:39251`. */
  server: string;
  /** Directory to write into; the file is `<dir>/<name>.kubeconfig`. */
  dir: string;
  /** Name of the cluster, user and context, which is also the current context. */
  name?: string;
  /** A bearer token for the user; without one the user has no credentials. */
  token?: string;
  /** Default namespace of the context. */
  namespace?: string;
}

/** Writes the kubeconfig and returns its path. An existing file is replaced and set to 0600. */
export async function writeKubeconfig(opts: KubeconfigOptions): Promise<string> {
  const name = opts.name ?? 'sandbox';
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: opts.server } }],
    users: [{ name, user: opts.token ? { token: opts.token } : {} }],
    contexts: [
      { name, context: { cluster: name, user: name, ...(opts.namespace && { namespace: opts.namespace }) } },
    ],
    'current-context': name,
  };
  const path = join(opts.dir, `${name}.kubeconfig`);
  await writeFile(path, stringify(config), { mode: 0o600 });
  // writeFile's mode applies only when it creates the file.
  await chmod(path, 0o600);
  return path;
}
