import { randomBytes } from 'node:crypto';
import { armor, Encrypter } from 'age-encryption';
import { InputError } from '../../core/errors.ts';
import { encryptValue } from './cipher.ts';
import { MacHasher, macBytes } from './mac.ts';
import { lastModifiedNow } from './metadata.ts';
import { compileRules, type RuleSet, ruleField } from './rules.ts';
import type { SopsFormat, Store } from './store.ts';
import { storeFor } from './stores.ts';
import { aadOf, type Branch, Comment, fromPlain, walkBranch } from './tree.ts';

/** The sops release whose file layout this writes (3.9: empty key lists present, quoted lastmodified). */
const WRITTEN_SOPS_VERSION = '3.9.4';

export interface EncryptOptions {
  /** age recipients (`age1…`, `age1pq1…`); each gets the data key. */
  recipients: string[];
  format: SopsFormat;
  /** At most one rule; `unencrypted_suffix: _unencrypted` when none is given, as sops does. */
  rules?: RuleSet;
  macOnlyEncrypted?: boolean;
}

function checkShape(docs: Record<string, unknown>[], store: Store): void {
  if (docs.length === 0) throw new InputError('encryptSops needs at least one document');
  if (!store.multiDocument && docs.length > 1)
    throw new InputError(`a ${store.format} file holds one document, not ${docs.length}`);
  for (const doc of docs) {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
      throw new InputError('each document must be a plain object');
    if (Object.hasOwn(doc, 'sops'))
      throw new InputError('the top-level key "sops" is reserved for the metadata');
  }
  for (const doc of docs) store.checkPlainDocument(doc);
}

async function ageEntries(
  recipients: string[],
  dataKey: Uint8Array,
): Promise<{ recipient: string; enc: string }[]> {
  if (recipients.length === 0) throw new InputError('encryptSops needs at least one age recipient');
  return Promise.all(
    recipients.map(async (recipient) => {
      const encrypter = new Encrypter();
      try {
        encrypter.addRecipient(recipient);
      } catch {
        throw new InputError(`"${recipient}" is not an age recipient (age1… or age1pq1…)`);
      }
      return { recipient, enc: armor.encode(await encrypter.encrypt(dataKey)) };
    }),
  );
}

/**
 * A SOPS file the sops binary can read: a random data key given to every age recipient, each
 * value AES-256-GCM encrypted under its key path (or left plain by the rule), and the MAC.
 */
export async function encryptSops(
  documentsOrObject: Record<string, unknown> | Record<string, unknown>[],
  opts: EncryptOptions,
): Promise<string> {
  const docs = Array.isArray(documentsOrObject) ? documentsOrObject : [documentsOrObject];
  const store = storeFor(opts.format);
  checkShape(docs, store);
  const rules = opts.rules ?? {};
  const shouldEncrypt = compileRules(rules, 'encryptSops');
  const macOnlyEncrypted = opts.macOnlyEncrypted ?? false;
  const dataKey = randomBytes(32);
  const hasher = new MacHasher(macOnlyEncrypted);

  const branches = docs.map((doc) =>
    walkBranch(fromPlain(doc, '') as Branch, (leaf, place) => {
      if (leaf instanceof Comment) return leaf;
      const encrypted = shouldEncrypt(place, false);
      hasher.add(macBytes(leaf), encrypted);
      return encrypted ? encryptValue(dataKey, leaf, aadOf(place.path)) : leaf;
    }),
  );

  const lastModified = lastModifiedNow();
  const [ruleName, ruleValue] = ruleField(rules);
  // sops 3.9 wrote every key type, empty ones as [] in YAML and null in JSON.
  const empty = store.emptyKeyList;
  const metadata: Record<string, unknown> = {
    kms: empty,
    gcp_kms: empty,
    azure_kv: empty,
    hc_vault: empty,
    age: await ageEntries(opts.recipients, dataKey),
    lastmodified: lastModified,
    mac: encryptValue(dataKey, hasher.hex(), lastModified),
    pgp: empty,
    [ruleName]: ruleValue,
    ...(macOnlyEncrypted ? { mac_only_encrypted: true } : {}),
    version: WRITTEN_SOPS_VERSION,
  };

  return store.emitEncryptedFile(branches, metadata, 'encryptSops');
}
