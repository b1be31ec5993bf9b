/**
 * Line numbers for findings in the bundle's YAML files: a problem that names its line is fixed where it
 * is, not searched for.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';

export type YamlPath = readonly (string | number)[];

/**
 * A function giving the 1-based line of the key at `path` (or of the nearest ancestor it can reach: a
 * key inherited through a `<<:` merge has no line of its own in the service).
 */
export function yamlLineFinder(text: string): (path: YamlPath) => number | undefined {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter });
  const lineOf = (node: unknown): number | undefined => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? counter.linePos(range[0]).line : undefined;
  };
  return (path) => {
    let node: unknown = doc.contents;
    let line: number | undefined;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === segment);
        if (!pair) return line;
        line = lineOf(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
        line = lineOf(node) ?? line;
      } else {
        return line;
      }
    }
    return line;
  };
}

/** The 1-based line of the first non-comment line holding `needle`, if any. */
export function lineOfText(text: string, needle: string): number | undefined {
  const index = text.split('\n').findIndex((l) => !/^\s*#/.test(l) && l.includes(needle));
  return index < 0 ? undefined : index + 1;
}
