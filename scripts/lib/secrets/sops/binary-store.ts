import { InputError } from '../../core/errors.ts';
import { emitJsonLayout, loadJsonLayout } from './json-store.ts';
import { onlyBranch, type Store } from './store.ts';

/**
 * sops's binary store (getsops/sops@v3.9.2:stores/json/store.go, `BinaryStore`): a file of any other
 * kind is kept whole as the string value of one top-level key, written in the JSON layout (tab
 * indented). The key's name is said here only.
 */
const DATA_KEY = 'data';

export const binaryStore: Store = {
  format: 'binary',
  multiDocument: false,
  emptyKeyList: null,
  loadEncryptedFile: (text, file) => loadJsonLayout(text, file),
  emitEncryptedFile: (branches, metadata) => emitJsonLayout(branches, metadata, '\t'),
  // The plaintext is the data itself, printed raw.
  emitPlainFile: (branches, file) => {
    const data = onlyBranch(branches, 'binary', file)
      .pairs()
      .find((p) => p.key === DATA_KEY)?.value;
    if (typeof data !== 'string') {
      throw new InputError(
        `${file} has no top-level string "${DATA_KEY}" to print as binary`,
        'use --output-type yaml or json',
      );
    }
    return data;
  },
  checkPlainDocument: (doc) => {
    if (Object.keys(doc).join() !== DATA_KEY || typeof doc[DATA_KEY] !== 'string') {
      throw new InputError(`a binary file is written from exactly { ${DATA_KEY}: string }`);
    }
  },
};
