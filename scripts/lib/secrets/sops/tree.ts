import { InputError } from '../../core/errors.ts';
import { fitsInt64, formatFloatG, GoTime } from './go-values.ts';

/**
 * sops's in-memory tree (`sops.go`: TreeBranch, TreeItem, Comment), kept apart from plain JS
 * objects because the walk needs what JS objects lose: key order including integer-like keys,
 * duplicate JSON keys, comments, and Go's int/float distinction (int = bigint, float = number).
 */
export class Comment {
  constructor(readonly value: string) {}
}

export type Scalar = string | bigint | number | boolean | null | GoTime;
export type Value = Scalar | Branch | ListValue;
export type ListValue = (Value | Comment)[];
export interface Pair {
  key: string;
  value: Value;
}

export class Branch {
  constructor(readonly items: (Pair | Comment)[] = []) {}

  pairs(): Pair[] {
    return this.items.filter((i): i is Pair => !(i instanceof Comment));
  }
}

/** sops's `ValToString`, used by `exec-env` and the dotenv writer. */
export function scalarText(value: Scalar): string {
  if (value === null) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof GoTime) return value.seconds;
  // A float that would print like an integer gets a `.0`, so it still reads as a float.
  const g = formatFloatG(value);
  return /[.EIN]/.test(g) ? g : `${g}.0`;
}

export function isComplex(value: Value): value is Branch | (Value | Comment)[] {
  return value instanceof Branch || Array.isArray(value);
}

/** Where a leaf sits: `path` gives the AAD (map keys only), `where` names it for people. */
export interface LeafPlace {
  path: readonly string[];
  /** `data:password`, `spec:items[1]:name`: list indices shown, unlike in the AAD. */
  where: string;
  /** The comments before this item at each nesting level (`shouldBeEncrypted`'s commentsStack). */
  comments: readonly (readonly string[])[];
}

export type LeafVisitor = (leaf: Exclude<Scalar, null> | Comment, place: LeafPlace) => Value | Comment;

/** The AES-GCM additional data of a value: its map keys joined with `:`, plus a trailing `:`. */
export function aadOf(path: readonly string[]): string {
  return `${path.join(':')}:`;
}

/**
 * sops's `walkBranch`/`walkSlice`/`walkValue`: depth-first in document order, calling `visit`
 * for every leaf and comment and building a new tree from what it returns. `null` is neither
 * visited nor changed.
 */
export function walkBranch(branch: Branch, visit: LeafVisitor): Branch {
  return walkMap(branch, [], '', [], visit);
}

function walkMap(
  branch: Branch,
  path: readonly string[],
  where: string,
  stack: readonly (readonly string[])[],
  visit: LeafVisitor,
): Branch {
  let level: string[] = [];
  const out: (Pair | Comment)[] = [];
  for (const item of branch.items) {
    if (item instanceof Comment) {
      level = [...level, item.value];
      out.push(visit(item, { path, where, comments: [...stack, level] }) as Comment);
      continue;
    }
    const childWhere = where ? `${where}:${item.key}` : item.key;
    const value = walkValue(item.value, [...path, item.key], childWhere, [...stack, level], visit);
    out.push({ key: item.key, value: value as Value });
    level = [];
  }
  return new Branch(out);
}

function walkList(
  list: ListValue,
  path: readonly string[],
  where: string,
  stack: readonly (readonly string[])[],
  visit: LeafVisitor,
): ListValue {
  let level: string[] = [];
  let index = 0;
  return list.map((item) => {
    if (item instanceof Comment) {
      level = [...level, item.value];
      return visit(item, { path, where, comments: [...stack, level] });
    }
    const value = walkValue(item, path, `${where}[${index++}]`, [...stack, level], visit);
    level = [];
    return value;
  });
}

function walkValue(
  value: Value,
  path: readonly string[],
  where: string,
  stack: readonly (readonly string[])[],
  visit: LeafVisitor,
): Value | Comment {
  if (value === null) return null;
  if (value instanceof Branch) return walkMap(value, path, where, stack, visit);
  if (Array.isArray(value)) return walkList(value, path, where, stack, visit);
  return visit(value, { path, where, comments: stack });
}

/** A map's keys in file order, once each (a JSON file may repeat a key), without comments. */
export function topLevelKeys(branch: Branch): string[] {
  return [...new Set(branch.pairs().map((p) => p.key))];
}

// Assigning `obj['__proto__']` would set the prototype instead of adding a key.
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Documents as plain JS: bigint ints that fit become numbers, times become their Go text. */
export function toPlain(value: Value): unknown {
  if (value instanceof Branch) {
    const obj: Record<string, unknown> = {};
    for (const { key, value: v } of value.pairs()) setOwn(obj, key, toPlain(v));
    return obj;
  }
  if (Array.isArray(value))
    return value.filter((v) => !(v instanceof Comment)).map((v) => toPlain(v as Value));
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (value instanceof GoTime) return value.nano;
  return value;
}

/**
 * Plain JS into the tree, for encryption and for documents that did not come from this
 * decryptor: integral numbers within int64 are ints (as YAML reads `7`), other numbers floats.
 */
export function fromPlain(value: unknown, where: string): Value {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') {
    if (!fitsInt64(value))
      throw new InputError(`the integer at ${where} is outside the int64 range sops can hold`);
    return value;
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) && fitsInt64(BigInt(value)) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map((v, i) => fromPlain(v, `${where}[${i}]`));
  const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto === Object.prototype || proto === null) {
    return new Branch(
      Object.entries(value as object).map(([k, v]) => ({
        key: k,
        value: fromPlain(v, where ? `${where}:${k}` : k),
      })),
    );
  }
  throw new InputError(
    `the value at ${where || 'the top level'} is a ${typeof value === 'object' ? (proto?.constructor?.name ?? 'object') : typeof value}, which a SOPS file cannot hold`,
    'use strings, numbers, booleans, null, arrays and plain objects',
  );
}
