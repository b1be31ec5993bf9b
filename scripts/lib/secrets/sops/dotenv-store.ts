import { InputError } from '../../errors.ts';
import { Branch, Comment, type Pair } from './tree.ts';

/**
 * sops's dotenv grammar (`stores/dotenv/store.go`), which is not the `dotenv` package's: split on
 * `\n`, skip empty lines, `#…` is a comment, the key is everything before the first `=` (spaces,
 * quotes and `export` kept), and the two characters `\n` in a value become a newline.
 */
export function parseDotenvLines(text: string, file: string): Branch {
  const items: (Pair | Comment)[] = [];
  text.split('\n').forEach((line, index) => {
    if (line === '') return;
    if (line.startsWith('#')) {
      items.push(new Comment(line.slice(1)));
      return;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new InputError(`${file}: line ${index + 1} is not KEY=VALUE (no '=')`);
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

/**
 * `stores/flatten.go` in reverse: `sops_age__list_0__map_enc=…` is `sops.age[0].enc`. Returns
 * undefined when the file has no `sops_` line at all.
 */
export function unflattenMetadata(branch: Branch): Record<string, unknown> | undefined {
  const pairs = branch.pairs().filter((p) => isMetadataKey(p.key));
  if (pairs.length === 0) return undefined;
  // Prototype-less containers, so that no metadata line can reach Object.prototype.
  const root: Record<string, unknown> = Object.create(null);
  for (const { key, value } of pairs) {
    const steps = key.slice(METADATA_PREFIX.length).split(/(?=__map_|__list_)/);
    let container: Record<string, unknown> | unknown[] = root;
    steps.forEach((step, i) => {
      const name = step.startsWith(MAP_SEPARATOR)
        ? step.slice(MAP_SEPARATOR.length)
        : step.startsWith(LIST_SEPARATOR)
          ? Number(step.slice(LIST_SEPARATOR.length))
          : step;
      if (name === '__proto__') throw new InputError(`the metadata line ${key} has a forbidden name`);
      const next = steps[i + 1];
      const slot = container as Record<string | number, unknown>;
      if (next === undefined) slot[name] = value;
      else slot[name] ??= next.startsWith(LIST_SEPARATOR) ? [] : Object.create(null);
      container = slot[name] as Record<string, unknown> | unknown[];
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
