import { InputError } from '../../core/errors.ts';
import { fitsInt64, GoTime } from './go-values.ts';
import { Budget } from './limits.ts';
import { onlyBranch, type ParsedStore, type Store } from './store.ts';
import { Branch, Comment, fromPlain, type ListValue, type Pair, toPlain, type Value } from './tree.ts';

/** sops's JSON store (getsops/sops@v3.9.2:stores/json/store.go): one object, the metadata under `sops`. */
export const jsonStore: Store = {
  format: 'json',
  multiDocument: false,
  emptyKeyList: null,
  loadEncryptedFile: (text, file) => loadJsonLayout(text, file),
  emitEncryptedFile: (branches, metadata) => emitJsonLayout(branches, metadata, '    '),
  emitPlainFile: (branches, file) => emitJson(onlyBranch(branches, 'json', file)),
  checkPlainDocument: () => undefined,
};

/** The JSON layout, shared with the binary store: the document's keys and `sops` beside them. */
export function loadJsonLayout(text: string, file: string): ParsedStore {
  const branch = parseJsonBranch(text, file);
  const sops = branch.pairs().find((p) => p.key === 'sops');
  const kept = new Branch(branch.items.filter((i) => !('key' in i) || i.key !== 'sops'));
  return { branches: [kept], metadata: sops ? toPlain(sops.value) : undefined };
}

export function emitJsonLayout(
  branches: Branch[],
  metadata: Record<string, unknown>,
  indent: string,
): string {
  const [branch = new Branch()] = branches;
  return emitJson(new Branch([...branch.items, { key: 'sops', value: fromPlain(metadata, 'sops') }]), indent);
}

/**
 * An order-preserving JSON reader, like sops's streaming JSON store: `JSON.parse` would move
 * integer-like keys (`"1"`) to the front and merge duplicate keys, and both change the MAC walk.
 * Numbers follow sops ≥ 3.13.2: an integer literal that fits int64 is an int, anything else a
 * float (earlier versions read every number as a float; both hash integral values the same).
 */
class JsonReader {
  private pos = 0;
  private readonly budget: Budget;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    this.budget = new Budget(file);
  }

  private fail(what: string): never {
    const before = this.text.slice(0, this.pos);
    const line = before.split('\n').length;
    const column = this.pos - before.lastIndexOf('\n');
    throw new InputError(`${this.file} is not valid JSON: ${what} at line ${line}, column ${column}`);
  }

  private skipSpace(): void {
    while (/[ \t\r\n]/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  private expect(ch: string): void {
    this.skipSpace();
    if (this.text[this.pos] !== ch) this.fail(`expected '${ch}'`);
    this.pos++;
  }

  document(): Branch {
    this.skipSpace();
    if (this.text[this.pos] !== '{') this.fail('the top level must be an object');
    const branch = this.value(1, '') as Branch;
    this.skipSpace();
    if (this.pos < this.text.length) this.fail('unexpected text after the object');
    return branch;
  }

  /** A value at nesting `depth` (the top-level object is 1), `where` naming it for the limits. */
  private value(depth: number, where: string): Value {
    this.skipSpace();
    const ch = this.text[this.pos];
    if (ch === '{') return this.object(depth, where);
    if (ch === '[') return this.array(depth, where);
    if (ch === '"') return this.string(where);
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.number();
  }

  private object(depth: number, where: string): Branch {
    this.budget.nest(depth, where);
    this.pos++;
    const items: Pair[] = [];
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return new Branch(items);
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail('expected a string key');
      const key = this.string(where, 'key');
      const keyWhere = where ? `${where}:${key}` : key;
      this.budget.item(keyWhere);
      this.expect(':');
      items.push({ key, value: this.value(depth + 1, keyWhere) });
      this.skipSpace();
      const next = this.text[this.pos++];
      if (next === '}') return new Branch(items);
      if (next !== ',') this.fail("expected ',' or '}'");
    }
  }

  private array(depth: number, where: string): ListValue {
    this.budget.nest(depth, where);
    this.pos++;
    const items: ListValue = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return items;
    }
    for (;;) {
      const itemWhere = `${where}[${items.length}]`;
      this.budget.item(itemWhere);
      items.push(this.value(depth + 1, itemWhere));
      this.skipSpace();
      const next = this.text[this.pos++];
      if (next === ']') return items;
      if (next !== ',') this.fail("expected ',' or ']'");
    }
  }

  private string(where: string, what: 'key' | 'value' = 'value'): string {
    const start = this.pos;
    // Linear (no alternation for the backtracker to stack up): runs of plain characters, escapes.
    const end = /"[^"\\]*(?:\\.[^"\\]*)*"/y;
    end.lastIndex = start;
    if (!end.test(this.text)) this.fail('an unterminated string');
    this.budget.text(end.lastIndex - start - 2, where, what);
    this.pos = end.lastIndex;
    try {
      // JSON.parse checks the escapes and control characters of this one string.
      return JSON.parse(this.text.slice(start, this.pos)) as string;
    } catch {
      this.pos = start;
      return this.fail('a malformed string');
    }
  }

  private number(): Value {
    const re = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (!m) this.fail('an unexpected character');
    this.pos = re.lastIndex;
    const literal = m[0];
    if (m[1] === undefined && m[2] === undefined && fitsInt64(BigInt(literal))) return BigInt(literal);
    const value = Number(literal);
    if (!Number.isFinite(value)) this.fail('a number outside the float64 range');
    return value;
  }
}

export function parseJsonBranch(text: string, file: string): Branch {
  return new JsonReader(text, file).document();
}

function jsonValue(value: Value, indent: string, depth: number): string {
  const pad = indent.repeat(depth + 1);
  const end = indent.repeat(depth);
  if (value instanceof Branch) {
    const pairs = value.pairs();
    if (pairs.length === 0) return '{}';
    const body = pairs.map((p) => `${pad}${JSON.stringify(p.key)}: ${jsonValue(p.value, indent, depth + 1)}`);
    return `{\n${body.join(',\n')}\n${end}}`;
  }
  if (Array.isArray(value)) {
    const items = value.filter((v) => !(v instanceof Comment)) as Value[];
    if (items.length === 0) return '[]';
    return `[\n${items.map((v) => `${pad}${jsonValue(v, indent, depth + 1)}`).join(',\n')}\n${end}]`;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw new InputError(`JSON cannot hold the float ${value}`, 'use --output-type yaml');
    return String(value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof GoTime) return JSON.stringify(value.nano);
  return JSON.stringify(value);
}

/** JSON with the file's key order (a JS object would move integer-like keys to the front). */
function emitJson(branch: Branch, indent = '    '): string {
  return `${jsonValue(branch, indent, 0)}\n`;
}
