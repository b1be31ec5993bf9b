import { InputError } from '../../core/errors.ts';
import { binaryStore } from './binary-store.ts';
import { dotenvStore } from './dotenv-store.ts';
import { jsonStore } from './json-store.ts';
import type { SopsFormat, Store } from './store.ts';
import { yamlStore } from './yaml-store.ts';

/**
 * The one place that maps a format name (`--input-type`, `--output-type`, encryptSops's `format`) or a
 * file's extension to the store that reads and writes it, as getsops/sops@v3.9.2:cmd/sops/common/common.go
 * (`storeConstructors`) and cmd/sops/formats/formats.go do.
 */
const STORES: Readonly<Record<SopsFormat, Store>> = {
  yaml: yamlStore,
  json: jsonStore,
  dotenv: dotenvStore,
  binary: binaryStore,
};

/** The format names, in the order help and errors list them. */
export const SOPS_FORMATS = Object.keys(STORES) as readonly SopsFormat[];

/** Extensions with their own store; any other file is binary. */
const EXTENSIONS: readonly (readonly [string, SopsFormat])[] = [
  ['.yaml', 'yaml'],
  ['.yml', 'yaml'],
  ['.json', 'json'],
  ['.env', 'dotenv'],
];

export function storeFor(format: SopsFormat): Store {
  return STORES[format];
}

/** sops's `FormatForPath`: by extension, anything unknown is binary. */
function formatForPath(path: string): SopsFormat {
  return EXTENSIONS.find(([ext]) => path.endsWith(ext))?.[1] ?? 'binary';
}

/** The format a name given on the command line stands for, or undefined if it names none. */
export function formatNamed(name: string): SopsFormat | undefined {
  return Object.hasOwn(STORES, name) ? (name as SopsFormat) : undefined;
}

/**
 * sops's `DefaultStoreForPathOrFormat`: the given format's store, else the one the extension says. sops
 * has an INI store, this reader has none: an `.ini` file is refused rather than read as binary.
 */
export function storeForPath(path: string, format?: SopsFormat): Store {
  if (format) return STORES[format];
  if (path.endsWith('.ini')) {
    throw new InputError(
      `${path}: INI files are not supported natively`,
      'install the sops binary for this file',
    );
  }
  return STORES[formatForPath(path)];
}

/**
 * The suite's writer and its recipients list keep to YAML SOPS files (the bootstrap file's format); any
 * other format is refused before it is read, and the operator is sent to the sops binary command that does
 * the same job (`sopsCommand`, e.g. \`sops updatekeys FILE\`; by default sops's editor on the file).
 */
export function requireYaml(file: string, what: string, sopsCommand = `sops ${file}`): void {
  if (formatForPath(file) === 'yaml') return;
  throw new InputError(
    `${file}: ${what} YAML SOPS files only`,
    `the sops binary does it for other formats (${sopsCommand})`,
  );
}
