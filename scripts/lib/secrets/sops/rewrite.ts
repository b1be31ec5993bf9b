/**
 * Writes a changed YAML SOPS file back with the smallest diff sops itself could make. Every command that
 * changes the bootstrap file (set, rotate, edit, init --fill, recipients) opens it here and hands back the
 * whole new document; what did not change keeps its bytes:
 *
 * - a value whose plaintext (and type) is unchanged keeps its `ENC[...]` string (same data key, same key path,
 *   so the same AAD: the old ciphertext is still exactly right);
 * - a top-level key whose value is unchanged keeps its lines verbatim, comments before it included;
 * - in the `sops:` block only `lastmodified` and `mac` change, and `age` when the recipients do.
 *
 * Rotating the data key (a recipient removed) re-encrypts every value, as `sops updatekeys` + `sops -r` do.
 * Before anything is written the new text is decrypted again, MAC verified, and must read back as the
 * intended tree; and a file changed by someone else since it was read is not overwritten.
 */

import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { armor, Encrypter } from 'age-encryption';
import { InputError, WorkError } from '../../core/errors.ts';
import { writeLocalFileAtomic } from '../../exec/local.ts';
import { registerSecrets } from '../registry.ts';
import { keyFileWarnings } from './age-keys.ts';
import { encryptValue } from './cipher.ts';
import { recoverDataKey } from './data-key.ts';
import { decryptToTree, readSopsFile } from './decrypt.ts';
import { layoutHint } from './hints.ts';
import { readSecretsFile } from './limits.ts';
import { MacHasher, macBytes } from './mac.ts';
import { type AgeEntry, lastModifiedNow, parseMetadata, type SopsMetadata } from './metadata.ts';
import { compileRules } from './rules.ts';
import { requireYaml } from './stores.ts';
import { aadOf, Branch, Comment, type Pair, type Scalar, toPlain, type Value, walkBranch } from './tree.ts';
import { emitYaml, yamlStore } from './yaml-store.ts';

/** A YAML SOPS file opened for a change: its text, its data key and its decrypted first document. */
export interface OpenedSops {
  file: string;
  text: string;
  /** The file's permission bits, kept on the new file. */
  mode: number;
  metadata: SopsMetadata;
  dataKey: Uint8Array;
  /** The document as it is in the file (values still `ENC[...]`). */
  encrypted: Branch;
  /** The same document decrypted. */
  branch: Branch;
  /** What the operator should know (file mode, key file); never a value. */
  warnings: string[];
}

export interface RewriteOptions {
  /** New age recipients: existing ones keep their `enc`, new ones get the data key wrapped for them. */
  recipients?: readonly string[];
  /** A new data key: every value re-encrypted, every recipient's `enc` new. */
  rotateDataKey?: boolean;
}

export interface Rewritten {
  text: string;
  /** Comment lines dropped because the data key changed (their ciphertext was under the old key). */
  droppedComments: number;
  /** Top-level keys with a value the file's rules leave unencrypted (`unencrypted_suffix` and the like). */
  plainKeys: string[];
}

/** Reads, decrypts (MAC verified) and registers every value with the redactor before anything is printed. */
export async function openSops(file: string, env: NodeJS.ProcessEnv = process.env): Promise<OpenedSops> {
  requireYaml(file, 'this command writes');
  const read = await readSopsFile(file);
  const { mode } = await stat(file);
  const parsed = yamlStore.loadEncryptedFile(read.text, file);
  if (parsed.branches.length !== 1)
    throw new InputError(
      `${file} holds ${parsed.branches.length} YAML documents; this writes one`,
      `the sops binary edits multi-document files (sops ${file})`,
    );
  const metadata = parseMetadata(parsed.metadata, file);
  const { key: dataKey, warnings: keyWarnings } = await recoverDataKey(metadata, file, { env });
  const tree = await decryptToTree(read.text, { path: file, dataKey });
  const branch = tree.branches[0] as Branch;
  registerLeaves(branch);
  return {
    file,
    text: read.text,
    mode: mode & 0o7777,
    metadata,
    dataKey,
    encrypted: parsed.branches[0] as Branch,
    branch,
    warnings: [...read.warnings, ...keyWarnings, ...(await keyFileWarnings(env)), ...tree.warnings],
  };
}

/** Every string leaf of a tree, known to the redactor under its key path (FINGERPRINT_KEY keys fingerprints). */
export function registerLeaves(branch: Branch): void {
  const values: Record<string, string> = {};
  walkBranch(branch, (leaf, place) => {
    if (typeof leaf === 'string' && leaf !== '') values[place.where] = leaf;
    return leaf;
  });
  registerSecrets(values);
}

type Leaf = Exclude<Scalar, null>;

/** Same value and same type: what lets an `ENC[...]` string stay as it is. */
function sameLeaf(a: Leaf, b: Leaf): boolean {
  if (typeof a !== typeof b) return false;
  if (typeof a === 'object' || typeof b === 'object') return isDeepStrictEqual(a, b);
  return a === b;
}

/** Every leaf of the old file by its place (list indices included): plaintext and text in the file. */
function oldLeaves(opened: OpenedSops): Map<string, { plain: Leaf; stored: Leaf }> {
  const stored = new Map<string, Leaf>();
  walkBranch(opened.encrypted, (leaf, place) => {
    if (!(leaf instanceof Comment)) stored.set(place.where, leaf);
    return leaf;
  });
  const out = new Map<string, { plain: Leaf; stored: Leaf }>();
  walkBranch(opened.branch, (leaf, place) => {
    const s = stored.get(place.where);
    if (!(leaf instanceof Comment) && s !== undefined) out.set(place.where, { plain: leaf, stored: s });
    return leaf;
  });
  return out;
}

/** `KEY:` at column 0: the first line of a top-level item as sops (go-yaml) writes it. */
const TOP_LEVEL_LINE = /^[^\s#-]/;

interface Block {
  /** Comment and blank lines before the key, then the key's own lines. */
  lines: string[];
}

/**
 * The document's lines cut into one block per top-level key, in file order, or undefined when the text is
 * not laid out as sops writes it (then the whole document is written anew).
 */
function blocksOf(body: string[], count: number): { blocks: Block[]; tail: string[] } | undefined {
  const blocks: Block[] = [];
  let pending: string[] = [];
  for (const line of body) {
    if (TOP_LEVEL_LINE.test(line) && !line.startsWith('---')) {
      blocks.push({ lines: [...pending, line] });
      pending = [];
    } else if (line === '' || line.startsWith('#')) {
      pending.push(line);
    } else {
      const last = blocks.at(-1);
      if (!last || pending.length > 0) return undefined;
      last.lines.push(line);
    }
  }
  return blocks.length === count ? { blocks, tail: pending } : undefined;
}

/** The lines of one top-level pair as the emitter (sops's layout) writes it. */
function pairLines(pair: Pair): string[] {
  return emitYaml([new Branch([pair])])
    .replace(/\n$/, '')
    .split('\n');
}

/** A sops metadata field's line (`    name: value`), which must be there exactly once. */
function metadataLine(lines: string[], from: number, indent: string, name: string, file: string): number {
  const found: number[] = [];
  for (let i = from; i < lines.length; i++)
    if ((lines[i] as string).startsWith(`${indent}${name}:`)) found.push(i);
  if (found.length !== 1)
    throw new InputError(`${file}: sops.${name} is not one line as sops writes it`, layoutHint(file));
  return found[0] as number;
}

function isBelow(line: string, indent: string): boolean {
  return line.startsWith(`${indent} `) || line.startsWith(`${indent}- `);
}

async function wrapDataKey(recipient: string, dataKey: Uint8Array): Promise<string> {
  const encrypter = new Encrypter();
  try {
    encrypter.addRecipient(recipient);
  } catch {
    throw new InputError(
      `"${recipient}" is not an age recipient`,
      'age1… (age-keygen -y keys.txt prints yours)',
    );
  }
  return armor.encode(await encrypter.encrypt(dataKey));
}

/** The `age:` entries for the new recipient list: kept ones keep their `enc` unless the data key is new. */
async function ageEntriesFor(
  old: readonly AgeEntry[],
  recipients: readonly string[],
  dataKey: Uint8Array,
  rotated: boolean,
): Promise<AgeEntry[]> {
  return Promise.all(
    recipients.map(async (recipient) => {
      const kept = rotated ? undefined : old.find((e) => e.recipient === recipient);
      return kept ?? { recipient, enc: await wrapDataKey(recipient, dataKey) };
    }),
  );
}

/**
 * The new file's text for the document `next` (and the options' recipients or data key), read back
 * before it is returned. Throws InputError, naming the problem, when the result would not be right.
 */
export async function rewriteSops(
  opened: OpenedSops,
  next: Branch,
  opts: RewriteOptions = {},
): Promise<Rewritten> {
  const { file, metadata } = opened;
  const rotated = Boolean(opts.rotateDataKey);
  const dataKey = rotated ? new Uint8Array(randomBytes(32)) : opened.dataKey;
  const shouldEncrypt = compileRules(metadata.rules, file);
  const previous = rotated ? new Map() : oldLeaves(opened);
  const hasher = new MacHasher(metadata.macOnlyEncrypted);
  const plainKeys = new Set<string>();
  const encrypted = walkBranch(next, (leaf, place) => {
    if (leaf instanceof Comment) return leaf;
    const encrypt = shouldEncrypt(place, false);
    hasher.add(macBytes(leaf), encrypt);
    if (!encrypt) {
      plainKeys.add(place.path[0] ?? '');
      return leaf;
    }
    const old = previous.get(place.where);
    if (old && sameLeaf(old.plain, leaf)) return old.stored;
    return encryptValue(dataKey, leaf, aadOf(place.path));
  });

  const lines = opened.text.split('\n');
  const sopsAt = lines.indexOf('sops:');
  if (sopsAt < 0)
    throw new InputError(`${file}: no top-level sops: line as sops writes it`, layoutHint(file));
  const { body, droppedComments } = documentLines(opened, lines.slice(0, sopsAt), encrypted, rotated);
  const meta = lines.slice(sopsAt);
  const indent = /^( +)/.exec(meta[1] ?? '')?.[1] ?? '';
  if (!indent) throw new InputError(`${file}: the sops: block is empty`, layoutHint(file));

  const recipients = opts.recipients ?? metadata.ageEntries.map((e) => e.recipient);
  const sameRecipients = isDeepStrictEqual(
    recipients,
    metadata.ageEntries.map((e) => e.recipient),
  );
  if (rotated || !sameRecipients) {
    const entries = await ageEntriesFor(metadata.ageEntries, recipients, dataKey, rotated);
    const at = metadataLine(meta, 1, indent, 'age', file);
    let end = at + 1;
    // The list's lines: deeper than `age:`, or (2-space files) `- ` items at its own indent.
    while (
      end < meta.length &&
      /^ +(- |\S)/.test(meta[end] as string) &&
      isBelow(meta[end] as string, indent)
    )
      end++;
    const age = pairLines({
      key: 'age',
      value: entries.map(
        (e) =>
          new Branch([
            { key: 'recipient', value: e.recipient },
            { key: 'enc', value: e.enc },
          ]),
      ),
    });
    meta.splice(at, end - at, ...age.map((l) => `${indent}${l}`));
  }
  const lastModified = lastModifiedNow();
  const lm = metadataLine(meta, 1, indent, 'lastmodified', file);
  const quote = /: (["']?)/.exec(meta[lm] as string)?.[1] ?? '';
  meta[lm] = `${indent}lastmodified: ${quote}${lastModified}${quote}`;
  const mac = metadataLine(meta, 1, indent, 'mac', file);
  meta[mac] = `${indent}mac: ${encryptValue(dataKey, hasher.hex(), lastModified)}`;
  const text = [...body, ...meta].join('\n');

  // Read back with the new data key: it must decrypt, MAC verified, to exactly the intended document.
  const check = await decryptToTree(text, { path: file, dataKey });
  const entries = parseMetadata(yamlStore.loadEncryptedFile(text, file).metadata, file).ageEntries;
  if (
    check.branches.length !== 1 ||
    !isDeepStrictEqual(toPlain(check.branches[0] as Branch), toPlain(next)) ||
    !isDeepStrictEqual(
      entries.map((e) => e.recipient),
      [...recipients],
    )
  )
    throw new InputError(
      `${file}: the new file does not read back as intended; nothing was written`,
      layoutHint(file),
    );
  return { text, droppedComments, plainKeys: [...plainKeys] };
}

/** The document's new lines: unchanged top-level keys verbatim, changed and new ones emitted. */
function documentLines(
  opened: OpenedSops,
  body: string[],
  encrypted: Branch,
  rotated: boolean,
): { body: string[]; droppedComments: number } {
  const oldPairs = opened.encrypted.pairs();
  const cut = blocksOf(body, oldPairs.length);
  const oldKeys = oldPairs.map((p) => p.key);
  // Duplicate keys, or text not laid out as sops writes it: the whole document is written anew.
  if (!cut || new Set(oldKeys).size !== oldKeys.length) {
    const dropped = body.filter((l) => /^\s*#/.test(l)).length;
    return { body: pairsLines(encrypted.pairs()), droppedComments: dropped };
  }
  const blockOf = new Map(oldKeys.map((k, i) => [k, cut.blocks[i] as Block]));
  const oldValue = new Map(oldPairs.map((p) => [p.key, p.value]));
  const out: string[] = [];
  let dropped = 0;
  for (const pair of encrypted.pairs()) {
    const block = blockOf.get(pair.key);
    if (block && !rotated && isDeepStrictEqual(oldValue.get(pair.key), pair.value)) {
      out.push(...block.lines);
      continue;
    }
    // Comments before a changed key stay, unless the data key changed: then their ciphertext is stale.
    const comments = block ? block.lines.slice(0, commentCount(block)) : [];
    if (rotated) dropped += comments.filter((l) => l.startsWith('#')).length;
    else out.push(...comments);
    out.push(...pairLines(pair));
  }
  const tail = rotated ? cut.tail.filter((l) => !l.startsWith('#')) : cut.tail;
  dropped += cut.tail.length - tail.length;
  return { body: [...out, ...tail], droppedComments: dropped };
}

function commentCount(block: Block): number {
  let n = 0;
  while (n < block.lines.length && /^(#|$)/.test(block.lines[n] as string)) n++;
  return n;
}

function pairsLines(pairs: readonly Pair[]): string[] {
  return pairs.flatMap((p) => pairLines(p));
}

/**
 * Writes the new text over the file: a 0600 temp file beside it, given the file's own mode, renamed over
 * it; refused when the file's bytes are no longer those it was opened with (sops in another terminal).
 * The bytes, not the size or mtime: a writer that keeps both still changed the file. Compared once the
 * temp file is written and synced, just before the rename, so the window left is the compare itself.
 */
export async function commitSops(opened: OpenedSops, text: string): Promise<void> {
  const beforeRename = async () => {
    if ((await readSecretsFile(opened.file)).text !== opened.text)
      throw new WorkError(
        `${opened.file} changed while this command was working; nothing was written`,
        'run it again',
      );
  };
  await writeLocalFileAtomic(opened.file, text, opened.mode, 0o600, { beforeRename });
}

/** A new document: `next`'s top-level keys replacing or added to the opened one's, in file order. */
export function withValues(branch: Branch, values: Readonly<Record<string, Value>>): Branch {
  const left = new Map(Object.entries(values));
  const items = branch.items.map((item) => {
    if (item instanceof Comment || !left.has(item.key)) return item;
    const value = left.get(item.key) as Value;
    left.delete(item.key);
    return { key: item.key, value };
  });
  return new Branch([...items, ...[...left].map(([key, value]) => ({ key, value }))]);
}
