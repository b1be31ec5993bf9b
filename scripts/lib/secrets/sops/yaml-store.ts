import {
  Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  Scalar,
  type YAMLError,
  YAMLMap,
  YAMLSeq,
  type Node as YamlNode,
  Pair as YamlPair,
} from 'yaml';
import { InputError } from '../../core/errors.ts';
import { GoTime } from './go-values.ts';
import { resolvePlain } from './go-yaml-resolve.ts';
import { Budget, tooDeep } from './limits.ts';
import type { ParsedStore, Store } from './store.ts';
import { Branch, Comment, fromPlain, type ListValue, type Pair, type Value } from './tree.ts';

/**
 * sops's YAML store (getsops/sops@v3.9.2:stores/yaml/store.go): reads a file into one branch per
 * document and writes branches back in go-yaml's layout. Comments are read (the rules may look at
 * them) but not written.
 */
export interface YamlStore extends Store {
  /** sops's `LoadPlainFile`: a plaintext YAML file (`secrets edit`'s edited copy), always fully parsed. */
  loadPlainFile(text: string, file: string): ParsedStore;
}

export const yamlStore: YamlStore = {
  format: 'yaml',
  multiDocument: true,
  emptyKeyList: [],
  loadEncryptedFile: (text, file) => parseYaml(text, file),
  loadPlainFile: (text, file) => parseYamlFully(text, file),
  // The metadata goes into every document, as sops writes it.
  emitEncryptedFile: (branches, metadata) =>
    emitYaml(
      branches.map((b) => new Branch([...b.items, { key: 'sops', value: fromPlain(metadata, 'sops') }])),
    ),
  emitPlainFile: (branches) => emitYaml(branches),
  checkPlainDocument: () => undefined,
};

const STR_TAGS = new Set(['tag:yaml.org,2002:str', '!']);
// Aliases are expanded as sops does; the cap stops a "billion laughs" file from eating memory.
const MAX_EXPANDED_NODES = 1_000_000;

/** Where a parse error is, by line and column only: the text there may be a secret. */
function locate(text: string, code: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `${code} at line ${line}, column ${column}`;
}

function invalid(text: string, file: string, err: YAMLError): InputError {
  const where = locate(text, err.code, err.pos[0]);
  if (err.code === 'RESOURCE_EXHAUSTION') return tooDeep(`${file} (${where})`);
  return new InputError(`${file} is not valid YAML: ${where}`);
}

/**
 * go-yaml refuses a map that repeats a key. The `yaml` package's own check (`uniqueKeys`) compares
 * each key with every earlier one, which takes minutes on a file of 40,000 keys; this is one pass.
 */
function checkUniqueKeys(map: YAMLMap, text: string, file: string): void {
  const seen = new Set<string>();
  for (const { key } of map.items) {
    if (!isScalar(key)) continue;
    const name = String(key.value);
    if (seen.has(name)) {
      throw new InputError(
        `${file} is not valid YAML: ${locate(text, 'DUPLICATE_KEY', key.range?.[0] ?? 0)}`,
      );
    }
    seen.add(name);
  }
}

/** Every map in a node (the sops metadata, which the converter does not walk), depth-limited. */
function checkUniqueKeysBelow(
  node: unknown,
  text: string,
  file: string,
  budget: Budget,
  depth: number,
): void {
  if (isMap(node)) {
    budget.nest(depth, 'sops');
    checkUniqueKeys(node, text, file);
    for (const pair of node.items) checkUniqueKeysBelow(pair.value, text, file, budget, depth + 1);
  } else if (isSeq(node)) {
    budget.nest(depth, 'sops');
    for (const item of node.items) checkUniqueKeysBelow(item, text, file, budget, depth + 1);
  }
}

class Converter {
  private expanded = 0;
  private depth = 0;

  constructor(
    private readonly doc: Document,
    private readonly file: string,
    private readonly text: string,
    private readonly budget: Budget,
  ) {}

  private fail(message: string, where: string): never {
    throw new InputError(
      `${this.file}: ${message} at ${where || 'the top level'}`,
      'install the sops binary for this file',
    );
  }

  private comments(out: { push(...c: Comment[]): unknown }, text: string | null | undefined): void {
    out.push(...commentLines(text));
  }

  private deref(node: unknown, where: string): unknown {
    if (++this.expanded > MAX_EXPANDED_NODES) this.fail('too many nodes after expanding aliases', where);
    if (!isAlias(node)) return node;
    const target = node.resolve(this.doc);
    if (!target) this.fail(`alias *${node.source} has no anchor`, where);
    return target;
  }

  value(raw: unknown, where: string): Value {
    const node = this.deref(raw, where);
    if (node === null || node === undefined) return null;
    if (isMap(node)) return this.map(node as YamlNode, where);
    if (isSeq(node)) {
      this.budget.nest(++this.depth, where);
      const out: ListValue = [];
      this.comments(out, node.commentBefore);
      node.items.forEach((item, i) => {
        this.budget.item(`${where}[${i}]`);
        const itemNode = this.deref(item, where);
        if (isScalar(itemNode)) {
          this.comments(out, itemNode.commentBefore);
          this.comments(out, itemNode.comment);
        }
        out.push(this.value(item, `${where}[${i}]`));
      });
      this.comments(out, node.comment);
      this.depth--;
      return out;
    }
    if (isScalar(node)) return this.scalar(node, where);
    return this.fail('an unsupported YAML node', where);
  }

  private scalar(node: Scalar, where: string): Value {
    const text = String(node.value);
    this.budget.text(text.length, where);
    if (node.tag && !STR_TAGS.has(node.tag))
      this.fail(`the YAML tag ${node.tag} is not supported natively`, where);
    if (node.tag || node.type !== Scalar.PLAIN) return text;
    const resolved = resolvePlain(text);
    if (resolved.kind === 'uint64')
      this.fail('an integer above int64, which sops cannot process either,', where);
    return resolved.value;
  }

  map(node: YamlNode, where: string): Branch {
    if (!isMap(node)) return this.fail('a document that is not a mapping', where);
    this.budget.nest(++this.depth, where);
    checkUniqueKeys(node, this.text, this.file);
    const items: (Pair | Comment)[] = [];
    this.comments(items, node.commentBefore);
    for (const pair of node.items) {
      const keyNode = pair.key;
      if (!isScalar(keyNode)) this.fail('a key that is not a string', where);
      const key = String(keyNode.value);
      this.budget.text(key.length, where, 'key');
      this.budget.item(where ? `${where}:${key}` : key);
      // The metadata is read separately; sops drops it from every document.
      if (where === '' && key === 'sops') continue;
      const keyWhere = where ? `${where}:${key}` : key;
      if (!keyNode.tag && keyNode.type === Scalar.PLAIN) {
        if (key === '<<') this.fail('a YAML merge key (<<), which sops does not merge,', where);
        const { kind } = resolvePlain(key);
        if (kind !== 'str')
          this.fail(`the key ${key}, which YAML reads as ${kind}, not a string (quote it),`, where);
      }
      this.comments(items, keyNode.commentBefore);
      const valueNode = this.deref(pair.value, keyWhere);
      if (isScalar(valueNode)) {
        this.comments(items, valueNode.commentBefore);
        this.comments(items, valueNode.comment);
      }
      items.push({ key, value: this.value(pair.value, keyWhere) });
    }
    this.comments(items, node.comment);
    this.depth--;
    return new Branch(items);
  }
}

/**
 * sops's YAML store: one branch per document, the `sops` key removed from each, metadata from
 * the first document. Metadata comes back with every scalar as its text (failsafe schema), the
 * way sops's struct decoding reads it (`lastmodified` may even be unquoted).
 */
export function parseYaml(text: string, file: string): ParsedStore {
  try {
    return parseFlatSopsYaml(text, file) ?? parseYamlFully(text, file);
  } catch (err) {
    // The depth limit stops the converter; this is for a parser that recursed out of stack first.
    if (err instanceof RangeError) throw tooDeep(file);
    throw err;
  }
}

/** The full YAML parse, whatever the file's shape (the fast path's reference in the tests). */
export function parseYamlFully(text: string, file: string): ParsedStore {
  return parseYamlDocuments(text, file, new Budget(file));
}

/** `KEY: ENC[...]` as sops writes a top-level value: a plain key, a one-line plain ENC scalar. */
const FLAT_LINE =
  /^([A-Za-z_][A-Za-z0-9_]*): (ENC\[[A-Za-z0-9_]+,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]*,tag:[A-Za-z0-9+/=]*,type:[a-z]+\])$/;

/**
 * The shape sops writes for a flat file (every bootstrap file): one `KEY: ENC[...]` line per key, then the
 * indented `sops:` block and nothing after it. For that shape a line is a pair, so one linear pass reads
 * the values, and only the small metadata block goes through the YAML parser; the `yaml` package's own
 * composition takes about a second on a 40,000-key file. Anything else (comments, nesting, lists, quoting,
 * several documents, CRLF) returns undefined and takes the full parser. The tests compare both paths.
 */
export function parseFlatSopsYaml(text: string, file: string): ParsedStore | undefined {
  const lines = text.split('\n');
  const sopsAt = lines.indexOf('sops:');
  if (sopsAt < 1) return undefined;
  const tail = lines.slice(sopsAt + 1);
  if (!tail.every((l) => l === '' || l.startsWith(' '))) return undefined;
  const budget = new Budget(file);
  budget.nest(1, '');
  const items: Pair[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < sopsAt; i++) {
    const m = FLAT_LINE.exec(lines[i] as string);
    if (!m) return undefined;
    const [, key = '', value = ''] = m;
    // A key YAML would read as something else (true, null, 1e3) or twice: the full parser says why.
    if (seen.has(key) || key === 'sops' || resolvePlain(key).kind !== 'str') return undefined;
    seen.add(key);
    budget.text(key.length, '', 'key');
    budget.item(key);
    budget.text(value.length, key);
    items.push({ key, value });
  }
  let metadata: ParsedStore['metadata'];
  try {
    metadata = parseYamlDocuments(['sops:', ...tail].join('\n'), file, budget).metadata;
  } catch {
    // The full parser reports the problem with its place in the whole file.
    return undefined;
  }
  return { branches: [new Branch(items)], metadata };
}

function parseYamlDocuments(text: string, file: string, budget: Budget): ParsedStore {
  const docs = parseAllDocuments(text, { schema: 'failsafe', uniqueKeys: false, prettyErrors: false });
  const branches: Branch[] = [];
  let metadata: unknown;
  docs.forEach((doc, index) => {
    const [error] = doc.errors;
    if (error) throw invalid(text, file, error);
    const contents = doc.contents;
    const isEmpty =
      contents === null || (isScalar(contents) && contents.type === Scalar.PLAIN && contents.value === '');
    const branch = isEmpty
      ? new Branch()
      : new Converter(doc, file, text, budget).map(contents as YamlNode, '');
    if (index === 0 && isMap(contents)) {
      const sops = contents.items.find((p) => isScalar(p.key) && p.key.value === 'sops');
      checkUniqueKeysBelow(sops?.value, text, file, budget, 1);
      if (sops) metadata = (sops.value as YamlNode | null)?.toJSON() ?? null;
    }
    branches.push(
      new Branch([...commentLines(doc.commentBefore), ...branch.items, ...commentLines(doc.comment)]),
    );
  });
  return { branches, metadata };
}

/** A comment block as sops items: one per line, the text after `#`, empty lines dropped. */
function commentLines(text: string | null | undefined): Comment[] {
  return (text ?? '')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => new Comment(l));
}

// The writer. Strings that go-yaml would read as something else (`0755`, `1_000`, `2024-01-01`, `True`)
// are quoted, so that sops reads back exactly what was written.

function yamlString(s: string): Scalar {
  const node = new Scalar(s);
  if (s === '<<' || resolvePlain(s).kind !== 'str') node.type = Scalar.QUOTE_DOUBLE;
  return node;
}

function yamlNode(value: Value): unknown {
  if (value instanceof Branch) {
    const map = new YAMLMap();
    for (const { key, value: v } of value.pairs()) map.items.push(new YamlPair(yamlString(key), yamlNode(v)));
    return map;
  }
  if (Array.isArray(value)) {
    const seq = new YAMLSeq();
    seq.items = value.filter((v) => !(v instanceof Comment)).map((v) => yamlNode(v as Value));
    return seq;
  }
  if (typeof value === 'string') return yamlString(value);
  // An unquoted timestamp, so that go-yaml reads a time again.
  if (value instanceof GoTime) return new Scalar(value.nano);
  return new Scalar(value);
}

/** One YAML document per branch, 4-space indent as sops writes, long lines never folded. */
export function emitYaml(branches: Branch[]): string {
  return branches
    .map((branch) => {
      const doc = new Document();
      doc.contents = yamlNode(branch) as YAMLMap;
      return goYamlBlockIndent(doc.toString({ indent: 4, lineWidth: 0 }));
    })
    .join('---\n');
}

const BLOCK_SCALAR_KEY = /^( *)(- )?[^\s#].*: [|>][-+]?$/;
const leading = (line: string) => line.length - line.trimStart().length;

/**
 * go-yaml (sops) indents a block scalar that is a value in a list item's map by two columns from its key;
 * the yaml package by four. Same text either way; re-indented so that what is written is what sops writes:
 *         - recipient: age1…
 *           enc: |
 *             -----BEGIN AGE ENCRYPTED FILE-----
 */
function goYamlBlockIndent(text: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = BLOCK_SCALAR_KEY.exec(lines[i] as string);
    if (!m) continue;
    const key = (m[1] ?? '').length + (m[2] ?? '').length;
    let inListItem = Boolean(m[2]);
    for (let j = i - 1; !inListItem && j >= 0; j--) {
      const above = lines[j] as string;
      if (above.trim() === '' || leading(above) >= key) continue;
      inListItem = above.startsWith(`${' '.repeat(key - 2)}- `);
      break;
    }
    if (!inListItem) continue;
    for (let j = i + 1; j < lines.length; j++) {
      const line = lines[j] as string;
      if (line.trim() !== '' && leading(line) < key + 4) break;
      if (line.trim() !== '') lines[j] = line.slice(2);
    }
  }
  return lines.join('\n');
}
