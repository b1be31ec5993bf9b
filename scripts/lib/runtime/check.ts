/**
 * `--check DIR`: the design page's two promises for generated manifests, checked on disk.
 *   - "CDK8s generates zero Secret resources": no document may be a Secret. Secret values belong in
 *     SOPS (bootstrap tier) or Infisical (runtime tier), never in rendered output that reaches git.
 *   - Every InfisicalSecret carries `argocd.argoproj.io/sync-options: ServerSideApply=false`.
 * A file that cannot be parsed is an offence too: what cannot be read cannot be shown to be clean.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { InputError } from '../core/errors.ts';
import { readBoundedText } from '../core/read-bounded.ts';
import { KIND, SYNC_OPTIONS_ANNOTATION, SYNC_OPTIONS_VALUE } from './backends/infisical-v1alpha1.ts';
import { isPlainObject, type Plain } from './fields.ts';

export interface Offence {
  file: string;
  /** 1-based position of the document in its file (a JSON file is one document). */
  document?: number;
  /** Path inside the document when the object sits in a List (`items[3]`). */
  item?: string;
  /** `Kind namespace/name` when known. */
  object?: string;
  problem: string;
}

export interface CheckReport {
  dir: string;
  files: number;
  documents: number;
  infisicalSecrets: number;
  offences: Offence[];
}

const MANIFEST = /\.(ya?ml|json)$/i;

/** Scans DIR (or one file) for manifests and reports every offence; throws only when DIR is unusable. */
export async function checkManifests(dir: string): Promise<CheckReport> {
  const files = await manifestFiles(dir);
  const report: CheckReport = { dir, files: files.length, documents: 0, infisicalSecrets: 0, offences: [] };
  for (const file of files) {
    const text = await readBoundedText(file, {
      what: 'the manifest',
      kind: 'manifest',
      hint: 'check only directories of manifest files',
    });
    let documents: unknown[];
    try {
      documents = parseManifests(file, text);
    } catch (err) {
      report.offences.push({ file, problem: `cannot be parsed: ${(err as Error).message.split('\n')[0]}` });
      continue;
    }
    documents.forEach((doc, i) => {
      report.documents++;
      visit(doc, { file, document: i + 1 }, '', report);
    });
  }
  return report;
}

function parseManifests(file: string, text: string): unknown[] {
  // JSON parsed strictly: a .json manifest is applied by tools that read JSON, not YAML.
  if (/\.json$/i.test(file)) return [JSON.parse(text)];
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [];
  const values: unknown[] = [];
  for (const doc of list) {
    const first = doc.errors[0];
    if (first) throw new Error(first.message);
    values.push(doc.toJS({ maxAliasCount: 100 }));
  }
  return values;
}

/** Looks through Lists (`kind: List`, `ConfigMapList`, …) and JSON arrays: they apply as their items. */
function visit(value: unknown, where: { file: string; document: number }, item: string, report: CheckReport) {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) visit(v, where, `${item}[${i}]`, report);
    return;
  }
  if (!isPlainObject(value)) return;
  const kind = typeof value.kind === 'string' ? value.kind : undefined;
  const offend = (problem: string) =>
    report.offences.push({ ...where, ...(item ? { item } : {}), object: describeObject(value), problem });
  if (kind === 'Secret' || kind === 'SecretList') {
    offend(
      `rendered output holds no ${kind} ("CDK8s generates zero Secret resources"): put the value in Infisical, or in SOPS for the bootstrap tier`,
    );
    return;
  }
  if (kind?.endsWith('List') && Array.isArray(value.items)) {
    visit(value.items, where, `${item}items`, report);
    return;
  }
  if (
    kind === KIND &&
    typeof value.apiVersion === 'string' &&
    value.apiVersion.startsWith('secrets.infisical.com/')
  ) {
    report.infisicalSecrets++;
    const problem = syncOptionsProblem(value);
    if (problem) offend(problem);
  }
}

function syncOptionsProblem(doc: Plain): string | undefined {
  const annotations = isPlainObject(doc.metadata) ? doc.metadata.annotations : undefined;
  const value = isPlainObject(annotations) ? annotations[SYNC_OPTIONS_ANNOTATION] : undefined;
  const wanted = `annotation ${SYNC_OPTIONS_ANNOTATION}: ${SYNC_OPTIONS_VALUE}`;
  if (value === undefined) return `lacks the ${wanted}`;
  // Argo CD reads a comma-separated list (e.g. "Prune=false,ServerSideApply=false").
  const options = typeof value === 'string' ? value.split(',').map((o) => o.trim()) : [];
  return options.includes(SYNC_OPTIONS_VALUE)
    ? undefined
    : `has ${JSON.stringify(value)}; wants the ${wanted}`;
}

function describeObject(doc: Plain): string | undefined {
  const meta = isPlainObject(doc.metadata) ? doc.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '(no name)';
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
  return typeof doc.kind === 'string' ? `${doc.kind} ${ns}${name}` : undefined;
}

/** Manifest files under `dir`, sorted; dot-directories and node_modules hold no rendered output. */
async function manifestFiles(dir: string): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch {
    throw new InputError(
      `--check: ${dir} does not exist`,
      'pass the directory the manifests were rendered to',
    );
  }
  if (info.isFile()) return [dir];
  const found: string[] = [];
  const walk = async (current: string) => {
    const entries = await readdir(current, { withFileTypes: true });
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = join(current, entry.name);
      // Directories are entered only when real, so a symlink loop cannot hang the scan.
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && entry.name !== 'node_modules') await walk(path);
      } else if (MANIFEST.test(entry.name) && (entry.isFile() || (await isFile(path)))) found.push(path);
    }
  };
  await walk(dir);
  return found;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false; // a dangling symlink
  }
}

/** One line per offence: `FILE (document N, items[3]): Kind ns/name: problem`. */
export function formatOffence(o: Offence): string {
  const where = [o.document === undefined ? undefined : `document ${o.document}`, o.item]
    .filter(Boolean)
    .join(', ');
  return `${o.file}${where ? ` (${where})` : ''}: ${o.object ? `${o.object}: ` : ''}${o.problem}`;
}
