import { InputError } from '../../errors.ts';
import { isMetadataKey, parseDotenvLines, unflattenMetadata } from './dotenv-store.ts';
import { parseJsonBranch } from './json-store.ts';
import { Branch, toPlain } from './tree.ts';
import { parseYaml } from './yaml-store.ts';

export type SopsFormat = 'yaml' | 'json' | 'dotenv' | 'binary';

export interface ParsedStore {
  /** One per YAML document; exactly one for the other formats. Metadata removed. */
  branches: Branch[];
  /** The raw `sops` block (dotenv: unflattened `sops_*` lines); undefined if there is none. */
  metadata: unknown;
}

/** sops's `FormatForPath`: by extension, anything unknown is binary. */
export function formatForPath(path: string): SopsFormat {
  if (path.endsWith('.yaml') || path.endsWith('.yml')) return 'yaml';
  if (path.endsWith('.json')) return 'json';
  if (path.endsWith('.env')) return 'dotenv';
  return 'binary';
}

function withoutKey(branch: Branch, key: string): Branch {
  return new Branch(branch.items.filter((i) => !('key' in i) || i.key !== key));
}

/** Reads a file the way sops's store for `format` does, without decrypting anything. */
export function parseStore(text: string, format: SopsFormat, file: string): ParsedStore {
  switch (format) {
    case 'yaml':
      return parseYaml(text, file);
    case 'json':
    case 'binary': {
      // The binary store is the JSON layout with a single `data` key holding the whole file.
      const branch = parseJsonBranch(text, file);
      const sops = branch.pairs().find((p) => p.key === 'sops');
      return { branches: [withoutKey(branch, 'sops')], metadata: sops ? toPlain(sops.value) : undefined };
    }
    case 'dotenv': {
      const branch = parseDotenvLines(text, file);
      const kept = branch.items.filter((i) => !('key' in i) || !isMetadataKey(i.key));
      return { branches: [new Branch(kept)], metadata: unflattenMetadata(branch, file) };
    }
  }
}

/** True when `text` parses in `format` and carries sops metadata. */
export function isSopsFile(text: string, format: SopsFormat): boolean {
  try {
    const { metadata } = parseStore(text, format, 'input');
    return metadata !== null && typeof metadata === 'object' && !Array.isArray(metadata);
  } catch (err) {
    if (err instanceof InputError) return false;
    throw err;
  }
}
