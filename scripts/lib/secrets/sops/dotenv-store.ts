import { InputError } from '../../core/errors.ts';
import { restoreHint } from './hints.ts';
import { Budget } from './limits.ts';
import { onlyBranch, type Store } from './store.ts';
import { Branch, Comment, isComplex, type Pair, scalarText } from './tree.ts';

/**
 * sops's dotenv store (getsops/sops@v3.9.2:stores/dotenv/store.go): `KEY=VALUE` lines, the metadata
 * flattened into `sops_…` lines after them.
 */
export const dotenvStore: Store = {
  format: 'dotenv',
  multiDocument: false,
  emptyKeyList: null,
  loadEncryptedFile: (text, file) => {
    const branch = parseDotenvLines(text, file);
    const kept = branch.items.filter((i) => !('key' in i) || !isMetadataKey(i.key));
    return { branches: [new Branch(kept)], metadata: unflattenMetadata(branch, file) };
  },
  emitEncryptedFile: (branches, metadata, file) => {
    const [branch = new Branch()] = branches;
    const lines = flattenMetadata(metadata).map(([k, v]) => `${k}=${v.replaceAll('\n', '\\n')}\n`);
    return emitDotenv(branch, file) + lines.join('');
  },
  emitPlainFile: (branches, file) => emitDotenv(onlyBranch(branches, 'dotenv', file), file),
  checkPlainDocument: (doc) => {
    for (const [key, value] of Object.entries(doc)) {
      if (
        key === '' ||
        key.includes('=') ||
        key.includes('\n') ||
        key.startsWith('#') ||
        key.startsWith(METADATA_PREFIX)
      ) {
        throw new InputError(`the key "${key}" cannot be written to a dotenv file`);
      }
      if (typeof value !== 'string')
        throw new InputError(`dotenv values are strings; the value of ${key} is not`);
    }
  },
};

/** sops's dotenv writer: `KEY=VALUE` lines, a newline in a value written as the two characters `\n`. */
export function emitDotenv(branch: Branch, file: string): string {
  return branch
    .pairs()
    .map(({ key, value }) => {
      if (isComplex(value)) {
        throw new InputError(
          `${file}: cannot use complex value in dotenv file; offending key ${key}`,
          'use --output-type yaml or json',
        );
      }
      return `${key}=${scalarText(value).replaceAll('\n', '\\n')}\n`;
    })
    .join('');
}

/**
 * sops's dotenv grammar (`stores/dotenv/store.go`), which is not the `dotenv` package's: split on
 * `\n`, skip empty lines, `#…` is a comment, the key is everything before the first `=` (spaces,
 * quotes and `export` kept), and the two characters `\n` in a value become a newline.
 */
export function parseDotenvLines(text: string, file: string): Branch {
  const items: (Pair | Comment)[] = [];
  const budget = new Budget(file);
  text.split('\n').forEach((line, index) => {
    if (line === '') return;
    const where = `line ${index + 1}`;
    budget.item(where);
    budget.text(line.length, where);
    if (line.startsWith('#')) {
      items.push(new Comment(line.slice(1)));
      return;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new InputError(`${file}: ${where} is not KEY=VALUE (no '=')`);
    items.push({ key: line.slice(0, eq), value: line.slice(eq + 1).replaceAll('\\n', '\n') });
  });
  return new Branch(items);
}

const METADATA_PREFIX = 'sops_';
const MAP_SEPARATOR = '__map_';
const LIST_SEPARATOR = '__list_';

export function isMetadataKey(key: string): boolean {
  return key.startsWith(METADATA_PREFIX);
}

type Container = Record<string, unknown> | unknown[];

/**
 * `stores/flatten.go` in reverse: `sops_age__list_0__map_enc=…` is `sops.age[0].enc`. Returns
 * undefined when the file has no `sops_` line at all. Lines that do not fit together (a list index
 * that skips ahead or is not a number, a map where another line made a value) are refused by name.
 */
export function unflattenMetadata(branch: Branch, file: string): Record<string, unknown> | undefined {
  const pairs = branch.pairs().filter((p) => isMetadataKey(p.key));
  if (pairs.length === 0) return undefined;
  // Prototype-less containers, so that no metadata line can reach Object.prototype.
  const root: Record<string, unknown> = Object.create(null);
  const budget = new Budget(file);
  for (const { key, value } of pairs) {
    const bad = (why: string): never => {
      throw new InputError(`${file}: the metadata line ${key} ${why}`, restoreHint(file));
    };
    const steps = key.slice(METADATA_PREFIX.length).split(/(?=__map_|__list_)/);
    budget.nest(steps.length, key);
    let container: Container = root;
    steps.forEach((step, i) => {
      const isList = step.startsWith(LIST_SEPARATOR);
      const name = step.startsWith(MAP_SEPARATOR)
        ? step.slice(MAP_SEPARATOR.length)
        : isList
          ? step.slice(LIST_SEPARATOR.length)
          : step;
      if (name === '__proto__') bad('has a forbidden name');
      if (isList !== Array.isArray(container))
        bad('mixes a list and a map at the same place as another line');
      if (isList && !(/^\d{1,6}$/.test(name) && Number(name) <= (container as unknown[]).length)) {
        bad('has a list index that is not the next number in its list');
      }
      const slot = container as Record<string | number, unknown>;
      const slotName = isList ? Number(name) : name;
      const next = steps[i + 1];
      const existing = slot[slotName];
      if (next === undefined) {
        if (existing !== undefined && typeof existing === 'object')
          bad('gives a value where other lines have a map or list');
        slot[slotName] = value;
        return;
      }
      if (existing !== undefined && (existing === null || typeof existing !== 'object')) {
        bad('nests under a value another line sets');
      }
      slot[slotName] ??= next.startsWith(LIST_SEPARATOR) ? [] : Object.create(null);
      container = slot[slotName] as Container;
    });
  }
  return root;
}

/** `stores/flatten.go`: nested metadata as `sops_…` keys, sorted as sops ≥ 3.8 writes them. */
export function flattenMetadata(metadata: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  const visit = (value: unknown, key: string): void => {
    if (Array.isArray(value)) {
      value.forEach((v, i) => {
        visit(v, `${key}${LIST_SEPARATOR}${i}`);
      });
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) visit(v, `${key}${MAP_SEPARATOR}${k}`);
    } else if (value !== undefined && value !== null) out.push([key, String(value)]);
  };
  for (const [k, v] of Object.entries(metadata)) visit(v, `${METADATA_PREFIX}${k}`);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
