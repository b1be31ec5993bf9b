/**
 * create-bootstrap-secrets' modes and what it prints: the offline preview, the per-key report from the
 * live Secrets, the final line and the --json objects. Values never appear: lengths and keyed fingerprints.
 */
import { InputError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import type { PlannedSecret } from './manifests.ts';
import {
  countStatuses,
  type DiffCounts,
  describeCounts,
  describeKeyDiff,
  type SecretDiff,
  secretChanges,
  shape,
} from './secret-diff.ts';

/**
 * What a run does: `offline` prints what it would apply and contacts nothing; `server` asks the API server
 * (`--dry-run=server`); `diff` reads the live Secrets and applies nothing; `apply` applies.
 */
export type RunMode = 'apply' | 'offline' | 'server' | 'diff';

/** `--dry-run` (bare: `client`, the offline one), `--dry-run=client|server`, `--diff`: one mode or exit 2. */
export function runMode(dryRun: string | undefined, diff: boolean): RunMode {
  if (dryRun !== undefined && diff) {
    throw new InputError('--diff and --dry-run are two ways of applying nothing: give one of them');
  }
  if (diff) return 'diff';
  if (dryRun === undefined) return 'apply';
  if (dryRun === 'client') return 'offline';
  if (dryRun === 'server') return 'server';
  throw new InputError(
    `--dry-run=${dryRun} is not a dry-run mode: give --dry-run (or --dry-run=client: offline, no cluster) or --dry-run=server (the API server checks the apply)`,
  );
}

export const MODE_TAG: Record<RunMode, string> = {
  apply: '',
  offline: '[dry run: offline, no cluster contacted]',
  server: '[dry run: the API server checks, stores nothing]',
  diff: '[diff: compares with the cluster, applies nothing]',
};

/** Per Secret a header (created, unchanged or what changes), then one line per key. */
export function printDiffs(out: Output, diffs: readonly SecretDiff[]): void {
  for (const d of diffs) {
    const state = !d.exists
      ? 'will be created'
      : secretChanges(d)
        ? describeCounts(countStatuses([d]))
        : 'unchanged';
    out.info(`${out.color.bold('secret')}  ${d.namespace}/${d.name}: ${state}`);
    for (const k of d.keys) out.info(`          ${describeKeyDiff(k)}`);
  }
}

/** The final line after the live Secrets were read (diff, server dry run, apply). */
export function finalLine(
  mode: Exclude<RunMode, 'offline'>,
  diffs: readonly SecretDiff[],
  namespaces: number,
  seconds: string,
): string {
  const changing = diffs.filter(secretChanges);
  const counts = countStatuses(diffs);
  if (changing.length === 0) {
    const upToDate = `nothing to change: ${diffs.length} secret(s) already up to date`;
    return mode === 'server' ? `dry run passed (the API server accepted the apply); ${upToDate}` : upToDate;
  }
  const what = `${changing.length} of ${diffs.length} secret(s) in ${namespaces} namespace(s): ${describeCounts(counts)}`;
  if (mode === 'diff') return `would change ${what}; nothing applied (run without --diff to apply)`;
  if (mode === 'server')
    return `dry run passed (the API server accepted the apply, stored nothing): would change ${what}`;
  return `applied: changed ${what} in ${seconds} s`;
}

export interface KeyResult {
  name: string;
  from?: string;
  length?: number;
  fingerprint?: string;
  status?: string;
  live?: { length: number; fingerprint?: string };
  ownedBy?: string[];
}

/** The --json objects: per Secret its keys, with statuses once the live Secrets were read. */
export function resultObjects(
  planned: readonly PlannedSecret[],
  opts: { keyless: boolean; diffs?: readonly SecretDiff[] },
): { kind: 'Secret'; namespace: string; name: string; exists?: boolean; keys: KeyResult[] }[] {
  return planned.map((s, i) => {
    const diff = opts.diffs?.[i];
    const keys: KeyResult[] = diff
      ? diff.keys.map((k) => ({
          name: k.name,
          ...(k.from ? { from: k.from } : {}),
          ...(k.planned ?? {}),
          status: k.status,
          ...(k.live ? { live: k.live } : {}),
          ...(k.ownedBy ? { ownedBy: k.ownedBy } : {}),
        }))
      : s.entries.map((e) => ({ name: e.name, from: e.key, ...(opts.keyless ? {} : shape(e.value)) }));
    return {
      kind: 'Secret' as const,
      namespace: s.namespace,
      name: s.name,
      ...(diff ? { exists: diff.exists } : {}),
      keys,
    };
  });
}

export function changeCounts(diffs: readonly SecretDiff[]): DiffCounts & { secretsChanging: number } {
  return { ...countStatuses(diffs), secretsChanging: diffs.filter(secretChanges).length };
}
