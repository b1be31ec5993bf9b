import { Document, YAMLMap, YAMLSeq, Pair as YamlPair, Scalar as YamlScalar } from 'yaml';
import { InputError } from '../../errors.ts';
import { formatFloatG, GoTime } from './go-values.ts';
import { resolvePlain } from './go-yaml-resolve.ts';
import { Branch, Comment, type Scalar, type Value } from './tree.ts';

/**
 * Writes trees back out in sops's formats. Comments are not written (values only). Strings that
 * go-yaml would read as something else (`0755`, `1_000`, `2024-01-01`, `True`) are quoted, so
 * that sops reads back exactly what was written.
 */

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

function yamlString(s: string): YamlScalar {
  const node = new YamlScalar(s);
  if (s === '<<' || resolvePlain(s).kind !== 'str') node.type = YamlScalar.QUOTE_DOUBLE;
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
  if (value instanceof GoTime) return new YamlScalar(value.nano);
  return new YamlScalar(value);
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
export function emitJson(branch: Branch, indent = '    '): string {
  return `${jsonValue(branch, indent, 0)}\n`;
}

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
