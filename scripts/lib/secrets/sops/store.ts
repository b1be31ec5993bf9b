import { InputError } from '../../core/errors.ts';
import type { Branch } from './tree.ts';

/**
 * What one SOPS file format knows: how to read its files and how to write them, encrypted and plain.
 * One module per format implements it (yaml-store, json-store, binary-store, dotenv-store) and
 * stores.ts maps format names and file extensions to them; no other module switches on the format
 * (the writer only asks whether a file is YAML, the one format it rewrites). Modelled on sops's own `Store` (getsops/sops@v3.9.2:sops.go, `EncryptedFileLoader` …
 * `PlainFileEmitter`), with only the parts this product uses: the plain documents to encrypt come
 * as JS objects (encryptSops), not as a plain file's text.
 */
export type SopsFormat = 'yaml' | 'json' | 'dotenv' | 'binary';

export interface ParsedStore {
  /** One per YAML document; exactly one for the other formats. Metadata removed. */
  branches: Branch[];
  /** The raw `sops` block (dotenv: unflattened `sops_*` lines); undefined if there is none. */
  metadata: unknown;
}

export interface Store {
  readonly format: SopsFormat;
  /** Only YAML holds several documents in one file. */
  readonly multiDocument: boolean;
  /** How sops 3.9 wrote an empty key list (`kms`, `pgp`, …) in this format: YAML `[]`, JSON `null`. */
  readonly emptyKeyList: readonly [] | null;
  /** sops's `LoadEncryptedFile` without decrypting anything: the documents and the raw metadata. */
  loadEncryptedFile(text: string, file: string): ParsedStore;
  /** sops's `EmitEncryptedFile`: the documents (values already `ENC[...]`) with the `sops` metadata. */
  emitEncryptedFile(branches: Branch[], metadata: Record<string, unknown>, file: string): string;
  /** sops's `EmitPlainFile`: what `sops decrypt --output-type FORMAT` prints. */
  emitPlainFile(branches: Branch[], file: string): string;
  /** Refuses a plain document this format cannot be written from (encryptSops's input). */
  checkPlainDocument(doc: Record<string, unknown>): void;
}

/** The one document of a single-document format, or the error `sops decrypt --output-type` gives. */
export function onlyBranch(branches: Branch[], format: SopsFormat, file: string): Branch {
  const [first] = branches;
  if (branches.length !== 1 || !first) {
    throw new InputError(
      `${file} has ${branches.length} YAML documents; ${format} holds one`,
      'use --output-type yaml',
    );
  }
  return first;
}
