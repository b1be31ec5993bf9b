import { InputError } from '../../core/errors.ts';
import { parseRfc3339 } from './go-values.ts';
import { notSopsHint } from './hints.ts';
import { RULE_FIELDS, type RuleSet } from './rules.ts';
import { storeForPath } from './stores.ts';

export interface AgeEntry {
  recipient: string;
  enc: string;
}

/** What decryption needs from the `sops` block (`stores/stores.go`: Metadata.ToInternal). */
export interface SopsMetadata {
  version: string | null;
  /** The AAD of the MAC: `lastmodified` parsed and printed again as RFC 3339. */
  macAad: string;
  mac: string;
  macOnlyEncrypted: boolean;
  rules: RuleSet;
  ageEntries: AgeEntry[];
}

// Every key type sops knows, by its metadata name.
const KEY_TYPES = ['age', 'pgp', 'kms', 'gcp_kms', 'azure_kv', 'hc_vault', 'hckms'] as const;

const INSTALL_SOPS = 'install the sops binary (https://github.com/getsops/sops) and use it for this file';

type Raw = Record<string, unknown>;

function isRecord(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A key list: YAML writes `[]`, JSON `null`; every scalar in a dotenv or failsafe YAML is text. */
function listOf(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (v === undefined || v === null || v === '' || v === '~' || v === 'null') return [];
  return [v];
}

function text(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return null;
}

function usedKeyTypes(group: Raw): string[] {
  return KEY_TYPES.filter((t) => listOf(group[t]).length > 0);
}

/** The single key group sops would use: top-level key lists win over `key_groups` (internalKeygroups). */
function keyGroup(raw: Raw, file: string): Raw {
  if (usedKeyTypes(raw).length > 0) return raw;
  const groups = listOf(raw.key_groups).filter(isRecord);
  if (groups.length > 1) {
    throw new InputError(
      `${file} splits its data key over ${groups.length} key groups (Shamir secret sharing), which the native decryptor does not support`,
      INSTALL_SOPS,
    );
  }
  const [group] = groups;
  if (!group) throw new InputError(`${file}: the sops metadata lists no keys at all`, INSTALL_SOPS);
  return group;
}

function ageEntries(group: Raw, file: string): AgeEntry[] {
  const entries = listOf(group.age).map((e, i) => {
    const recipient = isRecord(e) ? text(e.recipient) : null;
    const enc = isRecord(e) ? text(e.enc) : null;
    if (recipient === null || enc === null) {
      throw new InputError(`${file}: sops.age[${i}] needs a recipient and an enc`);
    }
    // Informational to sops, but it is printed in messages and chosen on: garbage means an edit.
    if (
      !/^age1[0-9a-z]{10,}$/.test(recipient) &&
      !/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?$/.test(recipient)
    ) {
      throw new InputError(
        `${file}: sops.age[${i}].recipient is not an age recipient (age1…) or an SSH public key`,
        'restore the file from version control; its metadata was edited outside sops',
      );
    }
    return { recipient, enc };
  });
  if (entries.length === 0) {
    const others = usedKeyTypes(group).join(', ');
    throw new InputError(
      `${file} is encrypted only to ${others} keys; the native decryptor supports age keys only`,
      INSTALL_SOPS,
    );
  }
  return entries;
}

function parseBoolField(v: unknown, name: string, file: string): boolean {
  if (v === undefined || v === null || v === false || v === 'false' || v === '') return false;
  if (v === true || v === 'true') return true;
  throw new InputError(`${file}: sops.${name} must be true or false`);
}

function rulesOf(raw: Raw, file: string): RuleSet {
  const rules: RuleSet = {};
  for (const [name, field] of Object.entries(RULE_FIELDS) as [keyof RuleSet, string][]) {
    const value = raw[field];
    if (value === undefined || value === null || value === '') continue;
    const s = text(value);
    if (s === null) throw new InputError(`${file}: sops.${field} must be a string`);
    rules[name] = s;
  }
  return rules;
}

/**
 * `version` plays no part in decryption (it says which release wrote the file), and files
 * re-serialized by other tools leave it out; but a version that is there must be a 3.x one: a later major version may
 * change the format, and anything else is not what sops writes.
 */
function versionOf(v: unknown, file: string): string | null {
  if (v === undefined || v === null) return null;
  const version = text(v) ?? '';
  if (/^3\.\d{1,4}\.\d{1,4}(?:[-+][0-9A-Za-z.-]{1,40})?$/.test(version)) return version;
  const shown = /^[0-9A-Za-z.+-]{1,40}$/.test(version) ? ` ${version}` : '';
  const why = /^\d+\.\d+/.test(version) ? 'this reader knows 3.x only' : 'not a version sops writes';
  throw new InputError(
    `${file}: unsupported SOPS version${shown || (version === '' ? ' (sops.version is empty)' : ' (sops.version is malformed)')}: ${why}`,
    `${INSTALL_SOPS}; or restore the file from version control if its metadata was edited`,
  );
}

/** Validates the raw `sops` block of a file; the errors say which field is wrong, never a value. */
export function parseMetadata(raw: unknown, file: string): SopsMetadata {
  if (raw === undefined) {
    throw new InputError(`${file} is not a SOPS file: it has no sops metadata`, notSopsHint(file));
  }
  if (!isRecord(raw)) throw new InputError(`${file}: the sops metadata is not a map`);
  const lastModified = text(raw.lastmodified);
  const parsed = lastModified === null ? undefined : parseRfc3339(lastModified);
  if (!parsed) {
    throw new InputError(
      `${file}: sops.lastmodified is missing or not an RFC 3339 time`,
      'restore the file from version control; it was edited outside sops',
    );
  }
  return {
    version: versionOf(raw.version, file),
    macAad: parsed.seconds,
    mac: text(raw.mac) ?? '',
    macOnlyEncrypted: parseBoolField(raw.mac_only_encrypted, 'mac_only_encrypted', file),
    rules: rulesOf(raw, file),
    ageEntries: ageEntries(keyGroup(raw, file), file),
  };
}

/** The age recipients a SOPS file is encrypted to, read without any key: the metadata is plaintext. */
export function readAgeRecipients(text: string, file: string): string[] {
  return parseMetadata(storeForPath(file).loadEncryptedFile(text, file).metadata, file).ageEntries.map(
    (e) => e.recipient,
  );
}

/**
 * `sops.lastmodified` for a file written now: RFC 3339 in UTC to the second, as sops writes it (Go's
 * `time.Now().UTC().Format(time.RFC3339)`); it is also the MAC's additional data, so both writers use this.
 */
export function lastModifiedNow(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}
