/**
 * What provisioning deployed, recorded on the host (`.deployed.json` in the bundle): the bundle digest
 * and a SHA-256 fingerprint of every secret, never a value. It lets a re-run skip a bootstrap that
 * would change nothing, and guards the secrets that must not change after the first deploy.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.ts';
import type { FileOps } from '../exec/executor.ts';
import { SECRET_SCHEMA, type SecretSpec, type SecretUse } from '../secrets/schema.ts';
import { BIFROST_CONSUMERS } from './render-env.ts';

export const DEPLOYED_FILE = '.deployed.json';

export interface DeployedState {
  /** SHA-256 over the uploaded files' hashes: equal digests mean an identical bundle. */
  bundleDigest: string;
  /** Fingerprints of the secrets as of the last successful deploy. */
  secrets: Record<string, string>;
  /** Fingerprints of the guarded secrets as first deployed (or last allowed to rotate). */
  guarded: Record<string, string>;
  deployedAt: string;
  by: string;
}

export const secretHash = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

/**
 * Secrets the Bifrost host reads whose change breaks something (NB_DATA_STORE_KEY encrypts NetBird's
 * database; NB_RELAY_SECRET disconnects every peer; the Authentik keys sign users out or lock the DB).
 */
export const GUARDED_SECRETS: readonly SecretSpec[] = (SECRET_SCHEMA as readonly SecretSpec[]).filter(
  (s) =>
    s.rotation.kind !== 'free' &&
    (s.uses as readonly SecretUse[]).some((u) => BIFROST_CONSUMERS.includes(u.consumer)),
);

export async function readDeployed(files: FileOps, dir: string): Promise<DeployedState | undefined> {
  const text = await files.readFile(`${dir}/${DEPLOYED_FILE}`);
  try {
    return text ? (JSON.parse(text) as DeployedState) : undefined;
  } catch {
    return undefined;
  }
}

export async function writeDeployed(files: FileOps, dir: string, state: DeployedState): Promise<void> {
  await files.writeFileAtomic(`${dir}/${DEPLOYED_FILE}`, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

/** Refuses, before anything is uploaded, a guarded secret that differs from what was first deployed. */
export function checkGuardedSecrets(
  values: Readonly<Record<string, string | undefined>>,
  deployed: DeployedState | undefined,
  allowRotate: readonly string[],
): { guarded: Record<string, string>; rotated: string[] } {
  const guarded: Record<string, string> = {};
  const refused: string[] = [];
  const rotated: string[] = [];
  for (const spec of GUARDED_SECRETS) {
    const value = values[spec.key];
    if (!value) continue;
    const now = secretHash(value);
    const before = deployed?.guarded?.[spec.key];
    guarded[spec.key] = now;
    if (before === undefined || before === now) continue;
    if (allowRotate.includes(spec.key)) {
      rotated.push(spec.key);
      continue;
    }
    const why =
      spec.rotation.kind === 'never'
        ? spec.rotation.reason
        : spec.rotation.kind === 'disruptive'
          ? spec.rotation.effect
          : '';
    refused.push(
      `  - ${spec.key}: differs from the value deployed first (sha256:${before.slice(0, 8)} → sha256:${now.slice(0, 8)}); ${why}`,
    );
  }
  if (refused.length > 0) {
    throw new InputError(
      `nothing uploaded: secrets that must not change have changed:\n${refused.join('\n')}`,
      `restore the old value in the SOPS file, or, if the rotation is intended, run again with --allow-rotate ${refused[0]?.trim().slice(2).split(':')[0]}`,
    );
  }
  return { guarded, rotated };
}
