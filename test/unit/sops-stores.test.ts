/**
 * One store per SOPS format, reached through one table: every format name and file extension leads to the
 * store of that format, each store reads back what it writes (encrypted layout, metadata included), and
 * the binary store's one rule (the file is the string under `data`) is the same for writing and printing.
 */
import { describe, expect, it } from 'vitest';
import { InputError } from '../../scripts/lib/core/errors.ts';
import { Branch, formatNamed, SOPS_FORMATS, storeFor } from '../../scripts/lib/secrets/sops/index.ts';
import { storeForPath } from '../../scripts/lib/secrets/sops/stores.ts';
import { toPlain } from '../../scripts/lib/secrets/sops/tree.ts';

const ENC = 'ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]';
// A flattened dotenv layout holds text only: every metadata value is a string here.
const METADATA = {
  age: [
    {
      recipient: 'age1xyz',
      enc: '-----BEGIN AGE ENCRYPTED FILE-----\nabc\n-----END AGE ENCRYPTED FILE-----\n',
    },
  ],
  lastmodified: '2024-01-01T00:00:00Z',
  mac: ENC,
  unencrypted_suffix: '_unencrypted',
  version: '3.9.4',
};

describe('the store table', () => {
  it('maps each format name to the store of that format, and names only those', () => {
    expect(SOPS_FORMATS).toEqual(['yaml', 'json', 'dotenv', 'binary']);
    for (const format of SOPS_FORMATS) {
      expect(formatNamed(format)).toBe(format);
      expect(storeFor(format).format).toBe(format);
    }
    for (const name of ['ini', 'YAML', '', 'toString', '__proto__', 'constructor'])
      expect(formatNamed(name), name).toBeUndefined();
  });

  it('maps extensions as sops does: anything unknown is binary, an INI file is refused unless a type is given', () => {
    const paths = ['a.yaml', 'a.yml', 'a.json', 'a.env', 'a.txt', 'a.yaml.bak', 'yaml'];
    expect(paths.map((p) => storeForPath(p).format)).toEqual([
      'yaml',
      'yaml',
      'json',
      'dotenv',
      'binary',
      'binary',
      'binary',
    ]);
    expect(() => storeForPath('app.ini')).toThrow(InputError);
    expect(() => storeForPath('app.ini')).toThrow('app.ini: INI files are not supported natively');
    expect(storeForPath('app.ini', 'json').format).toBe('json');
    expect(storeForPath('a.yaml', 'dotenv').format).toBe('dotenv');
  });
});

describe('each store reads back what it writes', () => {
  for (const format of SOPS_FORMATS) {
    it(`${format}: the document in file order and the metadata`, () => {
      const store = storeFor(format);
      const doc =
        format === 'binary'
          ? new Branch([{ key: 'data', value: ENC }])
          : new Branch([
              { key: 'b', value: ENC },
              { key: '1', value: ENC },
              { key: 'a_unencrypted', value: 'plain' },
            ]);
      const text = store.emitEncryptedFile([doc], METADATA, 'test');
      const read = store.loadEncryptedFile(text, `test.${format}`);
      expect(read.branches.map((b) => toPlain(b))).toEqual([toPlain(doc)]);
      expect(read.branches[0]?.pairs().map((p) => p.key)).toEqual(doc.pairs().map((p) => p.key));
      expect(JSON.parse(JSON.stringify(read.metadata))).toEqual(METADATA);
    });
  }

  it('yaml holds several documents, each with the metadata; the others hold one', () => {
    const docs = [new Branch([{ key: 'a', value: ENC }]), new Branch([{ key: 'b', value: ENC }])];
    const text = storeFor('yaml').emitEncryptedFile(docs, METADATA, 'test');
    expect(text.match(/^sops:$/gm)).toHaveLength(2);
    expect(
      storeFor('yaml')
        .loadEncryptedFile(text, 't.yaml')
        .branches.map((b) => toPlain(b)),
    ).toEqual(docs.map((b) => toPlain(b)));
    for (const format of SOPS_FORMATS.filter((f) => f !== 'yaml')) {
      expect(storeFor(format).multiDocument).toBe(false);
      expect(() => storeFor(format).emitPlainFile(docs, 'two.yaml')).toThrow(
        `two.yaml has 2 YAML documents; ${format} holds one`,
      );
    }
  });
});

describe('the binary store: the file is the string under data', () => {
  const binary = storeFor('binary');

  it('what it is written from is what it prints', () => {
    const doc = { data: 'raw bytes\nline 2' };
    binary.checkPlainDocument(doc);
    expect(binary.emitPlainFile([new Branch([{ key: 'data', value: doc.data }])], 'f.bin')).toBe(doc.data);
  });

  it('refuses any other shape, for writing and for printing alike', () => {
    for (const doc of [{ data: 1 }, { other: 'x' }, { data: 'x', more: 'y' }, {}])
      expect(() => binary.checkPlainDocument(doc), JSON.stringify(doc)).toThrow(
        'a binary file is written from exactly { data: string }',
      );
    for (const branch of [
      new Branch([{ key: 'data', value: 1n }]),
      new Branch([{ key: 'other', value: 'x' }]),
    ])
      expect(() => binary.emitPlainFile([branch], 'f.bin')).toThrow(
        'f.bin has no top-level string "data" to print as binary',
      );
  });
});
