/**
 * The one place a command hands its secrets to the redactor: the values as loaded, every value derived
 * from them (schema `derive`), and the fingerprint key. Commands call it before any external command
 * runs; the leak tests derive the forms they search for from `valuesToHide`, so both see the same set.
 */
import { redactor, setFingerprintKey } from '../core/redact.ts';
import { derivedValues } from './schema.ts';

export const FINGERPRINT_KEY = 'FINGERPRINT_KEY';

/** Name → value of everything a run must hide: the secrets and what is derived from them. */
export function valuesToHide(values: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) if (value) out[name] = value;
  for (const d of derivedValues(values)) out[`${d.name} (from ${d.key})`] = d.value;
  return out;
}

/** Registers every secret and derived value, in every encoded form, and keys the fingerprints. */
export function registerSecrets(values: Readonly<Record<string, string | undefined>>): void {
  for (const [name, value] of Object.entries(valuesToHide(values))) {
    redactor.register(value, name.split(' ')[0]);
  }
  if (values[FINGERPRINT_KEY]) setFingerprintKey(values[FINGERPRINT_KEY]);
}
