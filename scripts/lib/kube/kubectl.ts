import { WorkError } from '../core/errors.ts';
import { redactor } from '../core/redact.ts';
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

/** The binary and the flags that pick the cluster: `kubectl [--kubeconfig K] [--context C]`. */
export function globalArgs(opts: KubectlOptions): string[] {
  const argv = [opts.kubectl];
  if (opts.kubeconfig) argv.push('--kubeconfig', opts.kubeconfig);
  if (opts.context) argv.push('--context', opts.context);
  return argv;
}

const KLOG = /^[EWI]\d{4} [^\]]*\] /;

/**
 * kubectl's stderr, each thing said once and redacted. Its klog lines (`E1129 13:42:33.64 memcache.go:265]
 * ...`) repeat what its plain lines say, and with `-f -` it repeats one failure per object on stdin (an
 * unreachable cluster: the same line once per Secret), so a line already said is left out.
 */
export function kubectlSaid(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const plain = lines.filter((l) => !KLOG.test(l));
  const kept = plain.length > 0 ? plain : lines.map((l) => l.replace(KLOG, ''));
  return redactor.redact([...new Set(kept)].join('\n'));
}

/**
 * One `kubectl apply` for everything, manifests on stdin. Server-side apply keeps no
 * last-applied-configuration annotation, which under client-side apply holds every value in plaintext.
 * --force-conflicts: the SOPS file is the source of truth for these Secrets, so fields another manager
 * set (the original script's client-side apply) are taken over rather than reported as conflicts.
 * `serverDryRun` adds `--dry-run=server`: the API server validates and runs admission, and stores nothing.
 */
export function applyArgv(opts: KubectlOptions & { serverDryRun?: boolean }): string[] {
  return [
    ...globalArgs(opts),
    'apply',
    '--server-side',
    `--field-manager=${FIELD_MANAGER}`,
    '--force-conflicts',
    ...(opts.serverDryRun ? ['--dry-run=server'] : []),
    '-f',
    '-',
  ];
}

/**
 * Runs one kubectl command with its input on stdin and a wall-clock bound: a kubectl that cannot be
 * started or does not finish in time is a WorkError naming `what`; any exit code is the caller's to judge.
 */
export async function runKubectl(
  executor: Executor,
  opts: KubectlOptions,
  cmd: { argv: string[]; input: string; timeoutMs: number; what: string },
): Promise<CommandResult> {
  const result = await executor.run({ argv: cmd.argv, input: cmd.input, timeoutMs: cmd.timeoutMs });
  if (result.spawnError) {
    throw new WorkError(
      `cannot run ${opts.kubectl}: ${result.spawnError}`,
      'install kubectl, or point KUBECTL at it',
    );
  }
  if (result.timedOut) {
    throw new WorkError(
      `${cmd.what}: ${opts.kubectl} did not finish within ${cmd.timeoutMs / 1000} s`,
      'check that the cluster is reachable (kubectl cluster-info), then run again',
    );
  }
  return result;
}

export async function kubectlApply(
  executor: Executor,
  opts: KubectlOptions & { serverDryRun?: boolean; manifestsYaml: string },
): Promise<{ argv: string[]; result: CommandResult }> {
  const argv = applyArgv(opts);
  const result = await runKubectl(executor, opts, {
    argv,
    input: opts.manifestsYaml,
    timeoutMs: 120_000,
    what: 'applying the Secrets',
  });
  return { argv, result };
}
