/**
 * What provisioning deployed, recorded on the host (`.deployed.json` in the bundle): the bundle digest and
 * a keyed fingerprint of each secret the host holds, never a value and never a plain hash. It lets a
 * re-run skip a bootstrap that would change nothing, and guards the secrets that must not change after
 * the first deploy.
 *
 * Fingerprints stored on the host are HMAC-SHA-256 under FINGERPRINT_KEY (from the SOPS file, never on the
 * host) with a random salt per host: a copy of the record reveals nothing about weak values, and the
 * same value on two hosts has unrelated fingerprints. Only the keys the host itself reads are recorded.
 * Version 1 records (plain SHA-256 of every bootstrap secret) are still read, compared in memory once,
 * and replaced by version 2 on the next successful provision.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { InputError } from '../core/errors.ts';
import type { FileOps } from '../exec/executor.ts';
import { FINGERPRINT_KEY } from '../secrets/registry.ts';
import { keysFor, SECRET_SCHEMA, type SecretSpec, type SecretUse } from '../secrets/schema.ts';
import { parseEnvFile } from './env-file.ts';
import { RENDERED_ENV_CONSUMERS } from './host-state.ts';
import { BIFROST_CONSUMERS } from './render-env.ts';
import type { Verdict } from './upload.ts';

export const DEPLOYED_FILE = '.deployed.json';
const RECORD_VERSION = 2;

export interface DeployedState {
  version: typeof RECORD_VERSION;
  /** Random, per host; part of every fingerprint in this record. */
  salt: string;
  /** HMAC of a fixed text: tells "FINGERPRINT_KEY changed" apart from "the secrets changed". */
  keyCheck: string;
  /** Keyed digest over the uploaded files: equal digests mean an identical bundle. */
  bundleDigest: string;
  /** Keyed fingerprints of the secrets the host reads, as of the last successful deploy. */
  secrets: Record<string, string>;
  /** Keyed fingerprints of the guarded secrets as first deployed (or last allowed to rotate). */
  guarded: Record<string, string>;
  deployedAt: string;
  by: string;
}

/** The first record format: plain SHA-256 hex of every loaded secret. Read for migration only. */
interface LegacyDeployedState {
  version?: undefined;
  bundleDigest: string;
  secrets: Record<string, string>;
  guarded: Record<string, string>;
  deployedAt: string;
  by: string;
}

export type DeployedRecord = DeployedState | LegacyDeployedState;

/** Only what the Bifrost host reads: a key it never sees has no business in its record. */
export const HOST_KEYS: readonly string[] = (() => {
  const { required, optional } = keysFor(BIFROST_CONSUMERS);
  return [...required, ...optional];
})();

/**
 * Secrets the Bifrost host reads whose change breaks something (NB_DATA_STORE_KEY encrypts NetBird's
 * database; NB_RELAY_SECRET disconnects every peer; the Authentik keys sign users out or lock the DB).
 */
export const GUARDED_SECRETS: readonly SecretSpec[] = (SECRET_SCHEMA as readonly SecretSpec[]).filter(
  (s) =>
    s.rotation.kind !== 'free' &&
    (s.uses as readonly SecretUse[]).some((u) => BIFROST_CONSUMERS.includes(u.consumer)),
);

/** Keyed fingerprints for one host: HMAC-SHA-256 under FINGERPRINT_KEY, salted per host. */
export class HostFingerprints {
  private constructor(
    private readonly key: Buffer,
    readonly salt: string,
  ) {}

  /**
   * The host's own salt: its record's (this version), else the one its upload manifest recorded (a host
   * whose first bootstrap has not succeeded yet: without it every run would key the secret files' digests
   * anew and send them again), else a new one.
   */
  static forHost(
    fingerprintKey: string | undefined,
    deployed: DeployedRecord | undefined,
    uploadedSalt?: string,
  ): HostFingerprints {
    if (!fingerprintKey) {
      throw new InputError(
        `${FINGERPRINT_KEY} is missing: the deploy record on the host is keyed with it`,
        'add it with `node --import tsx scripts/secrets.ts init --fill` (generates only the missing keys), then run again',
      );
    }
    const salt =
      deployed?.version === RECORD_VERSION
        ? deployed.salt
        : (uploadedSalt ?? randomBytes(16).toString('hex'));
    return new HostFingerprints(Buffer.from(fingerprintKey, 'utf8'), salt);
  }

  private mac(...parts: string[]): string {
    const h = createHmac('sha256', this.key).update(`secrets-flow host\0${this.salt}`);
    for (const p of parts) h.update('\0').update(p, 'utf8');
    return h.digest('hex');
  }

  /** A secret's fingerprint in this host's record; the name is part of it. */
  of(name: string, value: string): string {
    return this.mac('secret', name, value);
  }

  /** A keyed digest of any text that may hold secrets (a rendered env file, the bundle's file list). */
  digest(text: string | Buffer): string {
    return this.mac('digest', typeof text === 'string' ? text : text.toString('latin1'));
  }

  get keyCheck(): string {
    return this.mac('key check');
  }

  /** The fingerprints of the host's own keys among `values`. */
  secretsOf(values: Readonly<Record<string, string | undefined>>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of HOST_KEYS) {
      const value = values[key];
      if (value) out[key] = this.of(key, value);
    }
    return out;
  }
}

/** Plain SHA-256, only to compare with a version 1 record in memory; never written anywhere. */
const legacyHash = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

/** Does a value match what a record (either version) holds for `key`? */
export function sameAsRecorded(
  fp: HostFingerprints,
  deployed: DeployedRecord,
  key: string,
  value: string,
  recorded: string,
): boolean {
  return deployed.version === RECORD_VERSION
    ? fp.of(key, value) === recorded
    : legacyHash(value) === recorded;
}

/** The bundle digest as a version 1 record computed it, to recognise an unchanged bundle across the migration. */
export function legacyBundleDigest(
  files: readonly { path: string; content: string | Buffer; mode: number }[],
) {
  return legacyHash(bundleEntries(files, (text) => legacyHash(text)));
}

export function bundleDigest(
  fp: HostFingerprints,
  files: readonly { path: string; content: string | Buffer; mode: number }[],
): string {
  return fp.digest(bundleEntries(files, (text) => createHash('sha256').update(text, 'utf8').digest('hex')));
}

function bundleEntries(
  files: readonly { path: string; content: string | Buffer; mode: number }[],
  hash: (text: string) => string,
): string {
  return [...files]
    .sort((a, b) => a.path.localeCompare(b.path))
    .map(
      (f) =>
        `${f.path}\0${f.mode}\0${hash(typeof f.content === 'string' ? f.content : f.content.toString('latin1'))}`,
    )
    .join('\n');
}

/** Is the bundle the one the record describes? */
export function sameBundle(
  fp: HostFingerprints,
  deployed: DeployedRecord | undefined,
  files: readonly { path: string; content: string | Buffer; mode: number }[],
): boolean {
  if (!deployed) return false;
  const now = deployed.version === RECORD_VERSION ? bundleDigest(fp, files) : legacyBundleDigest(files);
  return deployed.bundleDigest === now;
}

export async function readDeployed(files: FileOps, dir: string): Promise<DeployedRecord | undefined> {
  const text = await files.readFile(`${dir}/${DEPLOYED_FILE}`);
  if (!text) return undefined;
  try {
    const doc = JSON.parse(text) as Partial<DeployedState> & { version?: unknown };
    const isMap = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (typeof doc.bundleDigest !== 'string' || !isMap(doc.secrets) || !isMap(doc.guarded)) return undefined;
    if (doc.version === RECORD_VERSION) {
      return typeof doc.salt === 'string' && typeof doc.keyCheck === 'string'
        ? (doc as DeployedState)
        : undefined;
    }
    return doc.version === undefined ? (doc as LegacyDeployedState) : undefined;
  } catch {
    return undefined;
  }
}

export async function writeDeployed(files: FileOps, dir: string, state: DeployedState): Promise<void> {
  await files.writeFileAtomic(`${dir}/${DEPLOYED_FILE}`, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

/**
 * Refuses, before anything is uploaded, a guarded secret that differs from what was first deployed, and
 * a FINGERPRINT_KEY other than the one the record was made with (the comparison would be meaningless).
 * Without a readable record (deleted, or not one this code reads), the host's live env files are what was
 * deployed: `live` (each rendered env file's text on the host, by name) is compared instead, so deleting
 * the record is no way past the guard. Returns the guarded fingerprints to record (version 2, whatever
 * the record's version was).
 */
export function checkGuardedSecrets(
  values: Readonly<Record<string, string | undefined>>,
  deployed: DeployedRecord | undefined,
  allowRotate: readonly string[],
  fp: HostFingerprints,
  live: Readonly<Record<string, string | undefined>> = {},
): { guarded: Record<string, string>; rotated: string[] } {
  const guarded: Record<string, string> = {};
  const rotated: string[] = [];
  let previous = deployed;
  if (deployed?.version === RECORD_VERSION && deployed.keyCheck !== fp.keyCheck) {
    if (!allowRotate.includes(FINGERPRINT_KEY)) {
      throw new InputError(
        `nothing uploaded: ${FINGERPRINT_KEY} is not the key this host's deploy record was made with, so the secrets that must not change (${GUARDED_SECRETS.map((s) => s.key).join(', ')}) cannot be compared`,
        `restore the old ${FINGERPRINT_KEY} in the SOPS file, or, after checking those secrets by hand, run again with --allow-rotate ${FINGERPRINT_KEY} (the record is made anew under the new key)`,
      );
    }
    rotated.push(FINGERPRINT_KEY);
    previous = undefined;
  }
  const refused: { key: string; line: string }[] = [];
  for (const spec of GUARDED_SECRETS) {
    const value = values[spec.key];
    if (!value) continue;
    guarded[spec.key] = fp.of(spec.key, value);
    const before = previous?.guarded?.[spec.key];
    const differs = deployed
      ? previous !== undefined &&
        before !== undefined &&
        !sameAsRecorded(fp, previous, spec.key, value, before)
      : liveDiffers(spec, value, live);
    if (!differs) continue;
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
    const against = deployed
      ? 'differs from the value deployed first'
      : `differs from the value in the host's live ${differs} (compared with the live file because the host's deploy record ${DEPLOYED_FILE} is missing or unreadable)`;
    refused.push({ key: spec.key, line: `  - ${spec.key}: ${against}; ${why}` });
  }
  if (refused.length > 0) {
    throw new InputError(
      `nothing uploaded: secrets that must not change have changed:\n${refused.map((r) => r.line).join('\n')}`,
      `restore the old value in the SOPS file, or, if the rotation is intended, run again with --allow-rotate ${refused[0]?.key}`,
    );
  }
  return { guarded, rotated };
}

/**
 * The live env file on the host that holds `spec`'s secret as another value, or false. Only the secret
 * itself is compared (a hash or derived form is not the value), and a file or line the host lacks is
 * nothing to compare (a first deploy).
 */
function liveDiffers(
  spec: SecretSpec,
  value: string,
  live: Readonly<Record<string, string | undefined>>,
): string | false {
  for (const [file, consumer] of RENDERED_ENV_CONSUMERS) {
    const held = parseEnvFile(live[file] ?? '');
    for (const use of spec.uses as readonly SecretUse[]) {
      if (use.consumer !== consumer || use.hash || use.derive) continue;
      const there = held.get(use.as);
      if (there && there !== value) return file;
    }
  }
  return false;
}

export interface SecretVerdict {
  key: string;
  status: Verdict;
  note?: string;
}

/** Each of `keys`, set locally or recorded on the host, against the deploy record (fingerprints only). */
export function compareSecrets(
  keys: readonly string[],
  values: Readonly<Record<string, string>>,
  record: DeployedRecord | undefined,
  fp: HostFingerprints,
): SecretVerdict[] {
  const guarded = new Set(GUARDED_SECRETS.map((s) => s.key as string));
  // A record keyed with another FINGERPRINT_KEY cannot be compared value by value.
  const otherKey = record?.version === 2 && record.keyCheck !== fp.keyCheck;
  const out: SecretVerdict[] = [];
  for (const key of keys) {
    const value = values[key];
    const was = record?.secrets[key];
    if (value === undefined && was === undefined) continue;
    if (value === undefined) out.push({ key, status: 'only on host', note: 'not set locally' });
    else if (!record || was === undefined)
      out.push({ key, status: 'missing on host', note: 'not deployed yet' });
    else if (otherKey)
      out.push({ key, status: 'differs', note: `recorded under another ${FINGERPRINT_KEY}` });
    else if (sameAsRecorded(fp, record, key, value, was)) out.push({ key, status: 'same' });
    else {
      out.push({
        key,
        status: 'differs',
        note: guarded.has(key) ? `guarded: provision needs --allow-rotate ${key}` : 'changed locally',
      });
    }
  }
  return out;
}
