import { WorkError } from '../errors.ts';
import type { CommandResult, Executor } from '../exec/executor.ts';
import { FIELD_MANAGER } from './manifests.ts';

export interface KubectlOptions {
  kubectl: string;
  context?: string;
  kubeconfig?: string;
}

export function kubectlBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.KUBECTL || 'kubectl';
}

/**
 * One `kubectl apply` for everything, manifests on stdin. Server-side apply keeps no
 * last-applied-configuration annotation, which under client-side apply holds every value in plaintext.
 * --force-conflicts: the SOPS file is the source of truth for these Secrets, so fields another manager
 * set (the original script's client-side apply) are taken over rather than reported as conflicts.
 */
export function applyArgv(opts: KubectlOptions & { dryRun: boolean }): string[] {
  const argv = [opts.kubectl];
  if (opts.kubeconfig) argv.push('--kubeconfig', opts.kubeconfig);
  if (opts.context) argv.push('--context', opts.context);
  if (opts.dryRun) return [...argv, 'apply', '--dry-run=client', '-f', '-'];
  return [
    ...argv,
    'apply',
    '--server-side',
    `--field-manager=${FIELD_MANAGER}`,
    '--force-conflicts',
    '-f',
    '-',
  ];
}

export async function kubectlApply(
  executor: Executor,
  opts: KubectlOptions & { dryRun: boolean; manifestsYaml: string },
): Promise<{ argv: string[]; result: CommandResult }> {
  const argv = applyArgv(opts);
  const result = await executor.run({ argv, input: opts.manifestsYaml, timeoutMs: 120_000 });
  if (result.spawnError) {
    throw new WorkError(
      `cannot run ${opts.kubectl}: ${result.spawnError}`,
      'install kubectl, or point KUBECTL at it',
    );
  }
  if (result.timedOut) {
    throw new WorkError(
      `${opts.kubectl} apply did not finish within 120 s`,
      'check that the cluster is reachable',
    );
  }
  return { argv, result };
}
