/**
 * What every output path uses to hide the running command's secrets: its redactor and its fingerprints.
 * Both belong to the run in progress (run-context.ts): the values one run registered and the key it
 * read are never what hides or fingerprints another run's output.
 */
import { createHmac } from 'node:crypto';
import type { Redactor } from './redactor.ts';
import { runContext } from './run-context.ts';

/** The running command's redactor: every output path of every command goes through it. */
export const redactor: Pick<Redactor, 'register' | 'redact' | 'holds'> = {
  register: (value, name) => runContext.redactor.register(value, name),
  redact: (text) => runContext.redactor.redact(text),
  holds: (text) => runContext.redactor.holds(text),
};

// ---- fingerprints ------------------------------------------------------------------------------------

/**
 * Fingerprints are keyed (HMAC-SHA-256 under FINGERPRINT_KEY from the SOPS file): a plain hash of a weak
 * password could be reversed by guessing, a keyed one cannot without the key. Without the key (a source
 * that lacks it, the engine on the VPS) no fingerprint is shown at all, only the length.
 */
export function setFingerprintKey(key: string): void {
  runContext.fingerprintKey = Buffer.from(key, 'utf8');
}

export function hasFingerprintKey(): boolean {
  return runContext.fingerprintKey !== undefined;
}

/** `hmac:1a2b3c4d`: enough for a person to recognise a value, useless to recover it; undefined without a key. */
export function fingerprint(value: string): string | undefined {
  const key = runContext.fingerprintKey;
  if (!key) return undefined;
  const mac = createHmac('sha256', key).update('secrets-flow fingerprint\0').update(value, 'utf8');
  return `hmac:${mac.digest('hex').slice(0, 8)}`;
}

/** `NAME (44 chars, hmac:1a2b3c4d)`, or `NAME (44 chars)` without a key: how a secret is shown to a person. */
export function describeSecret(name: string, value: string): string {
  const fp = fingerprint(value);
  return `${name} (${[...value].length} chars${fp ? `, ${fp}` : ''})`;
}
