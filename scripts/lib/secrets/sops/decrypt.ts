import { InputError } from '../../core/errors.ts';
import { registerSecrets } from '../registry.ts';
import { keyFileWarnings } from './age-keys.ts';
import { CipherError, decryptValue } from './cipher.ts';
import { recoverDataKey } from './data-key.ts';
import { rememberBranch } from './exec-env.ts';
import { GoTime } from './go-values.ts';
import { notSopsHint, restoreHint } from './hints.ts';
import { modeWarning, readSecretsFile } from './limits.ts';
import { MacHasher, macBytes } from './mac.ts';
import { parseMetadata, type SopsMetadata } from './metadata.ts';
import { compileRules } from './rules.ts';
import type { SopsFormat } from './store.ts';
import { storeForPath } from './stores.ts';
import {
  aadOf,
  type Branch,
  Comment,
  type LeafPlace,
  type Scalar,
  scalarText,
  toPlain,
  topLevelKeys,
  walkBranch,
} from './tree.ts';

export interface DecryptedFile {
  path: string;
  format: SopsFormat;
  sopsVersion: string | null;
  /** One per branch (YAML document); plain objects in file key order, metadata removed. */
  documents: unknown[];
  macVerified: true;
  /** What the operator should know (file permissions, mac_only_encrypted); never a value. */
  warnings: string[];
}

export interface DecryptOptions {
  path: string;
  env?: NodeJS.ProcessEnv;
  format?: SopsFormat;
  /** Use exactly these age identities instead of looking for them as sops does. */
  identities?: string[];
  /** The data key, already recovered (a writer that re-encrypts with it); no identity is looked for. */
  dataKey?: Uint8Array;
}

/** The decrypted tree as sops holds it, for writers that must keep key order and types. */
export interface DecryptedTree {
  format: SopsFormat;
  metadata: SopsMetadata;
  branches: Branch[];
  /** The MAC recomputed over the plaintext (it equals the stored one, or decryption failed). */
  mac: string;
  /** What the operator should know (key file permissions, mac_only_encrypted); never a value. */
  warnings: string[];
  /** Each value that was encrypted, as text, by key path (booleans left out: `true` is no secret). */
  decrypted: Record<string, string>;
}

/** A SOPS file as read from disk, with what its permissions call for. */
export interface SopsFileText {
  text: string;
  warnings: string[];
}

const INSTALL_SOPS =
  'if the sops binary decrypts this file, install it (https://github.com/getsops/sops) and use it; otherwise restore the file from version control';

function kindOf(value: Exclude<Scalar, null>): string {
  if (value instanceof GoTime) return 'timestamp';
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'number') return 'float';
  return typeof value;
}

/** Decrypts every value and checks the MAC, failing closed on anything sops would refuse. */
export async function decryptToTree(text: string, opts: DecryptOptions): Promise<DecryptedTree> {
  const file = opts.path;
  const store = storeForPath(file, opts.format);
  const parsed = store.loadEncryptedFile(text, file);
  const metadata = parseMetadata(parsed.metadata, file);
  const shouldEncrypt = compileRules(metadata.rules, file);
  const recovered = opts.dataKey
    ? { key: opts.dataKey, warnings: [] }
    : await recoverDataKey(metadata, file, { env: opts.env ?? process.env, identities: opts.identities });
  const key = recovered.key;
  const hasher = new MacHasher(metadata.macOnlyEncrypted);
  const decrypted: Record<string, string> = {};

  const decryptLeaf = (leaf: Exclude<Scalar, null> | Comment, place: LeafPlace): Scalar | Comment => {
    // Comments are neither hashed nor part of the documents, so they are left as they are.
    if (leaf instanceof Comment) return leaf;
    if (!shouldEncrypt(place, false)) {
      hasher.add(macBytes(leaf), false);
      return leaf;
    }
    const where = `${file}: the value at key path ${place.where}`;
    if (typeof leaf !== 'string') {
      throw new InputError(`${where} should be encrypted but is a plain ${kindOf(leaf)}`, restoreHint(file));
    }
    try {
      const plain = decryptValue(key, leaf, aadOf(place.path));
      hasher.add(plain.mac, true);
      if (!(plain.value instanceof Comment) && typeof plain.value !== 'boolean') {
        // Documents of one file may repeat a key path; each value keeps its own entry.
        const name =
          place.where in decrypted ? `${place.where} #${Object.keys(decrypted).length}` : place.where;
        decrypted[name] = scalarText(plain.value);
      }
      return plain.value;
    } catch (err) {
      if (!(err instanceof CipherError)) throw err;
      if (err.reason === 'auth') {
        throw new InputError(
          `${where} does not decrypt (tampered with, or moved from another key)`,
          restoreHint(file),
        );
      }
      if (err.reason === 'cipher') throw new InputError(`${where} ${err.message}`, INSTALL_SOPS);
      throw new InputError(`${where} ${err.message}`, restoreHint(file));
    }
  };
  const branches = parsed.branches.map((branch) => walkBranch(branch, decryptLeaf));
  const mac = hasher.hex();
  verifyMac(metadata, key, mac, file);
  const warnings = [
    ...recovered.warnings,
    ...(opts.identities || opts.dataKey ? [] : await keyFileWarnings(opts.env ?? process.env)),
  ];
  if (metadata.macOnlyEncrypted) warnings.push(macOnlyNotice(file));
  return { format: store.format, metadata, branches, mac, warnings, decrypted };
}

/** Under mac_only_encrypted only the encrypted values are hashed (getsops/sops@v3.9.2:sops.go, `Tree.Encrypt`). */
function macOnlyNotice(file: string): string {
  return `${file} sets mac_only_encrypted: its MAC covers only the encrypted values, so its unencrypted values could be changed, added, removed or reordered without any error (sops behaves the same)`;
}

/** The mac_only_encrypted notice for a file decrypted by something else (the sops binary), if it sets it. */
export function macOnlyNotices(text: string, file: string): string[] {
  try {
    const { metadata } = storeForPath(file).loadEncryptedFile(text, file);
    return parseMetadata(metadata, file).macOnlyEncrypted ? [macOnlyNotice(file)] : [];
  } catch (err) {
    if (err instanceof InputError) return [];
    throw err;
  }
}

/** `common.DecryptTree`'s check, with sops's own wording where it has one. */
function verifyMac(metadata: SopsMetadata, key: Uint8Array, computed: string, file: string): void {
  if (!metadata.mac) {
    throw new InputError(
      `${file}: File has no MAC (sops.mac is missing): the file was modified outside sops`,
      restoreHint(file),
    );
  }
  let stored: unknown;
  try {
    stored = decryptValue(key, metadata.mac, metadata.macAad).value;
  } catch {
    throw new InputError(
      `${file}: the MAC does not decrypt: sops.mac or sops.lastmodified was modified outside sops`,
      restoreHint(file),
    );
  }
  if (stored !== computed) {
    throw new InputError(
      `${file}: MAC mismatch: the file was modified outside sops (a value or the order of values changed)`,
      `${restoreHint(file)}; if the sops binary decrypts this very file, the native reader typed a value differently: use sops`,
    );
  }
}

export async function decryptSopsText(text: string, opts: DecryptOptions): Promise<DecryptedFile> {
  return plainFile(await decryptToTree(text, opts), opts.path);
}

function plainFile(tree: DecryptedTree, path: string): DecryptedFile {
  const documents = tree.branches.map((branch) => {
    const doc = toPlain(branch);
    rememberBranch(doc, branch);
    return doc;
  });
  return {
    path,
    format: tree.format,
    sopsVersion: tree.metadata.version,
    documents,
    macVerified: true,
    warnings: tree.warnings,
  };
}

/** A SOPS file from disk: a regular file within LIMITS (never a FIFO or device), and a warning if others can read it. */
export async function readSopsFile(path: string): Promise<SopsFileText> {
  const { text, mode } = await readSecretsFile(path);
  const warning = modeWarning('the SOPS file', path, mode);
  return { text, warnings: warning ? [warning] : [] };
}

/** decryptToTree on a file from disk, its warnings first. */
export async function decryptFileToTree(
  path: string,
  opts: Omit<DecryptOptions, 'path'> = {},
): Promise<DecryptedTree> {
  const file = await readSopsFile(path);
  const tree = await decryptToTree(file.text, { ...opts, path });
  return { ...tree, warnings: [...file.warnings, ...tree.warnings] };
}

/**
 * A SOPS file's plain documents, every decrypted value (and, for top-level keys, the schema's derived
 * values) registered with the redactor before they are returned: no caller can forget. The tree-level
 * loaders above leave that to their callers (loadSecrets, the writer, `sops decrypt`, which prints the
 * plaintext on purpose): registering one value costs a scan of all those registered, too slow for a
 * file of many thousand keys.
 */
export async function decryptSopsFile(
  path: string,
  opts: { env?: NodeJS.ProcessEnv; format?: SopsFormat } = {},
): Promise<DecryptedFile> {
  const tree = await decryptFileToTree(path, opts);
  registerSecrets(tree.decrypted);
  return plainFile(tree, path);
}

/** Top-level key names of the first document, read without any key: SOPS keeps keys in plaintext. */
export function readPlainKeyNames(text: string, opts: { path: string; format?: SopsFormat }): string[] {
  const parsed = storeForPath(opts.path, opts.format).loadEncryptedFile(text, opts.path);
  const metadata = parsed.metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new InputError(`${opts.path} is not a SOPS file: it has no sops metadata`, notSopsHint(opts.path));
  }
  const [first] = parsed.branches;
  return first ? topLevelKeys(first) : [];
}
