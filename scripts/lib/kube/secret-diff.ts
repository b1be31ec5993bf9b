/**
 * What an apply would change, per Secret and per key, compared by value in this process and shown by keyed
 * fingerprint (or length without FINGERPRINT_KEY): never a value.
 *
 * Server-side apply decides what happens to a key that is live but no longer planned: it is removed only
 * when this project's field manager owns it and no other manager does. A key that another manager set
 * (`kubectl edit`, the original script's client-side apply) and we never applied stays: "kept".
 */
import { fingerprint } from '../core/redact.ts';
import type { LiveSecret } from './live-secrets.ts';
import { FIELD_MANAGER, type PlannedSecret } from './manifests.ts';

export type KeyStatus = 'added' | 'changed' | 'unchanged' | 'removed' | 'kept';

/** How a value is shown: its length in characters, and its keyed fingerprint when there is a key. */
export interface ValueShape {
  length: number;
  fingerprint?: string;
}

export interface KeyDiff {
  /** The key inside the Kubernetes Secret. */
  name: string;
  status: KeyStatus;
  /** The schema key a planned value comes from. */
  from?: string;
  /** The value the apply writes (absent for removed and kept keys). */
  planned?: ValueShape;
  /** The value live now (absent for added keys). */
  live?: ValueShape;
  /** For a kept key: the field managers that own it. */
  ownedBy?: string[];
}

export interface SecretDiff {
  namespace: string;
  name: string;
  /** Whether the Secret exists now; when not, the apply creates it and every key is added. */
  exists: boolean;
  keys: KeyDiff[];
}

export type DiffCounts = Record<KeyStatus, number>;

export function shape(value: string): ValueShape {
  const fp = fingerprint(value);
  return { length: [...value].length, ...(fp ? { fingerprint: fp } : {}) };
}

/** Compares each planned Secret with its live form (keyed `${namespace}/${name}`; undefined: absent). */
export function diffSecrets(
  planned: readonly PlannedSecret[],
  live: ReadonlyMap<string, LiveSecret | undefined>,
  manager: string = FIELD_MANAGER,
): SecretDiff[] {
  return planned.map((secret) => {
    const now = live.get(`${secret.namespace}/${secret.name}`);
    const keys: KeyDiff[] = secret.entries.map((entry) => {
      const current = now?.data[entry.name];
      const status: KeyStatus =
        current === undefined ? 'added' : current === entry.value ? 'unchanged' : 'changed';
      return {
        name: entry.name,
        status,
        from: entry.key,
        planned: shape(entry.value),
        ...(current !== undefined ? { live: shape(current) } : {}),
      };
    });
    const plannedNames = new Set(secret.entries.map((e) => e.name));
    for (const [name, value] of Object.entries(now?.data ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      if (plannedNames.has(name)) continue;
      const owners = (now?.owners ?? []).filter((o) => o.keys.includes(name));
      const others = owners.filter((o) => !(o.manager === manager && o.operation === 'Apply'));
      const ours = owners.length > others.length;
      keys.push(
        ours && others.length === 0
          ? { name, status: 'removed', live: shape(value) }
          : { name, status: 'kept', live: shape(value), ownedBy: [...new Set(others.map((o) => o.manager))] },
      );
    }
    return { namespace: secret.namespace, name: secret.name, exists: now !== undefined, keys };
  });
}

export function countStatuses(diffs: readonly SecretDiff[]): DiffCounts {
  const counts: DiffCounts = { added: 0, changed: 0, unchanged: 0, removed: 0, kept: 0 };
  for (const d of diffs) for (const k of d.keys) counts[k.status]++;
  return counts;
}

/** Whether applying changes a value: something added, changed or removed, or a Secret to create. */
export function secretChanges(diff: SecretDiff): boolean {
  return !diff.exists || diff.keys.some((k) => ['added', 'changed', 'removed'].includes(k.status));
}

const showShape = (s: ValueShape) => `${s.length} chars${s.fingerprint ? `, ${s.fingerprint}` : ''}`;

/** `DB_PASSWORD (24 chars, hmac:1a2b3c4d) from INFISICAL_DB_PASSWORD: changed (was 20 chars, hmac:…)`. */
export function describeKeyDiff(k: KeyDiff): string {
  const from = k.from && k.from !== k.name ? ` from ${k.from}` : '';
  const shown = k.planned ?? k.live;
  const head = `${k.name}${shown ? ` (${showShape(shown)})` : ''}${from}`;
  switch (k.status) {
    case 'changed':
      return `${head}: changed (was ${showShape(k.live as ValueShape)})`;
    case 'removed':
      return `${head}: removed (no longer planned; this tool set it, so server-side apply deletes it)`;
    case 'kept':
      return `${head}: kept (not planned, but ${k.ownedBy?.length ? `owned by ${k.ownedBy.join(', ')}` : 'not owned by this tool'}: server-side apply leaves it)`;
    default:
      return `${head}: ${k.status}`;
  }
}

/** `3 added, 1 changed, 2 unchanged`: the non-zero counts, in a fixed order. */
export function describeCounts(counts: DiffCounts): string {
  const order: KeyStatus[] = ['added', 'changed', 'removed', 'unchanged', 'kept'];
  const parts = order.filter((s) => counts[s] > 0).map((s) => `${counts[s]} ${s}`);
  return parts.length > 0 ? `${parts.join(', ')} key(s)` : 'no keys';
}
