/**
 * Imports under scripts/ run one way: entry scripts -> views (lib/report) -> tiers (bifrost, runtime, kube)
 * -> secrets -> exec -> core, each a folder of lib/ named after its layer. Among the tiers only runtime may use kube.
 * Nothing in product code imports lib/sandbox but the scripts that drive the sandbox on purpose.
 * The native SOPS code has one front door: outside lib/secrets/sops/, only its index.ts is imported.
 * The edges that still break a rule are listed below with the reason they remain; the list must match
 * the tree exactly, so fixing an edge means deleting its line here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const SCRIPTS = join(ROOT, 'scripts');

/** Scripts that run the sandbox on purpose: the demo, and the rehearsal that drives the simulator. */
const SANDBOX_USERS = new Set(['scripts/demo.ts', 'scripts/rehearse.ts']);

/**
 * Edges that break a rule today, each with why it is not fixed yet (`from -> to`, paths from the repo root,
 * reason as the value). Empty: every import runs downward. Add a line only for debt that cannot be paid now.
 */
const ALLOWED: Record<string, string> = {};

const TIERS = new Set(['bifrost', 'runtime', 'kube']);
const RANK = { core: 0, exec: 1, secrets: 2, tier: 3, report: 4, entry: 5 } as const;

type Layer = { name: string; rank: number; folder?: string };

/** The layer of a file under scripts/ (path relative to the repo root), or undefined for the sandbox. */
function layerOf(file: string): Layer | undefined {
  const parts = file.split('/');
  if (parts[0] !== 'scripts') throw new Error(`not under scripts/: ${file}`);
  if (parts.length === 2) return { name: 'entry', rank: RANK.entry };
  if (parts[1] !== 'lib') throw new Error(`unexpected path: ${file}`);
  if (parts.length === 3) throw new Error(`${file}: every module of lib/ lives in its layer's folder`);
  const folder = parts[2] as string;
  if (folder === 'core') return { name: 'core', rank: RANK.core };
  if (folder === 'sandbox') return undefined;
  if (folder === 'report') return { name: 'report', rank: RANK.report };
  if (TIERS.has(folder)) return { name: folder, rank: RANK.tier, folder };
  if (folder === 'secrets') return { name: 'secrets', rank: RANK.secrets };
  if (folder === 'exec') return { name: 'exec', rank: RANK.exec };
  throw new Error(`no layer for scripts/lib/${folder}/: add it to test/layering.test.ts`);
}

const SOPS_DIR = 'scripts/lib/secrets/sops/';
const SOPS_FRONT_DOOR = `${SOPS_DIR}index.ts`;

/** Why an import from `from` to `to` breaks the rules, or undefined when it may be made. */
function violation(from: string, to: string): string | undefined {
  const layering = layerViolation(from, to);
  if (layering !== undefined) return layering;
  if (to.startsWith(SOPS_DIR) && to !== SOPS_FRONT_DOOR && !from.startsWith(SOPS_DIR)) {
    return `bypasses ${SOPS_FRONT_DOOR}`;
  }
  return undefined;
}

function layerViolation(from: string, to: string): string | undefined {
  const target = layerOf(to);
  if (target === undefined) {
    return SANDBOX_USERS.has(from) || layerOf(from) === undefined ? undefined : 'imports the sandbox';
  }
  const source = layerOf(from);
  if (source === undefined) return undefined; // the sandbox may use the product it simulates
  if (source.rank > target.rank) return undefined;
  if (source.rank < target.rank) return `${source.name} imports the higher layer ${target.name}`;
  if (source.name === 'entry') return 'an entry script imports another entry script';
  if (source.folder === target.folder) return undefined;
  if (source.folder === 'runtime' && target.folder === 'kube') return undefined;
  return `tier ${source.name} imports tier ${target.name}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|mjs)$/.test(entry.name) ? [path] : [];
  });
}

/**
 * Every relative module a file names: static `import … from`, `import type`, `export … from`, bare
 * `import '…'`, dynamic `import('…')` (template strings included) and `require('…')`, read by TypeScript's
 * own pre-processor, so a comment or a string that merely looks like an import is not one.
 */
function importEdges(): Array<{ from: string; to: string }> {
  const edges: Array<{ from: string; to: string }> = [];
  for (const path of sourceFiles(SCRIPTS)) {
    const from = relative(ROOT, path);
    const { importedFiles } = ts.preProcessFile(readFileSync(path, 'utf8'), true, true);
    for (const { fileName } of importedFiles) {
      if (fileName.startsWith('./') || fileName.startsWith('../')) {
        edges.push({ from, to: relative(ROOT, resolve(dirname(path), fileName)) });
      }
    }
  }
  return edges;
}

describe('import layering', () => {
  const files = sourceFiles(SCRIPTS);
  const edges = importEdges();

  it('reads the tree (no vacuous pass)', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(edges.length).toBeGreaterThan(100);
    // Each kind of import the pattern claims to read is found somewhere.
    expect(edges).toContainEqual({
      from: 'scripts/lib/secrets/commands.ts',
      to: 'scripts/lib/secrets/init.ts',
    }); // import('…')
    expect(edges).toContainEqual({ from: 'scripts/demo.ts', to: 'scripts/lib/sandbox/demo.ts' });
    // The SOPS front door's edges: from outside (a dynamic import), and `export … from` inside the folder.
    expect(edges).toContainEqual({ from: 'scripts/lib/secrets/source.ts', to: SOPS_FRONT_DOOR });
    expect(edges).toContainEqual({ from: SOPS_FRONT_DOOR, to: `${SOPS_DIR}rewrite.ts` });
  });

  it('knows the rules', () => {
    expect(violation('scripts/lib/kube/a.ts', 'scripts/lib/runtime/b.ts')).toMatch(
      /tier kube imports tier runtime/,
    );
    expect(violation('scripts/lib/runtime/a.ts', 'scripts/lib/kube/b.ts')).toBeUndefined();
    expect(violation('scripts/lib/bifrost/a.ts', 'scripts/lib/kube/b.ts')).toMatch(/tier bifrost/);
    expect(violation('scripts/lib/secrets/a.ts', 'scripts/lib/bifrost/b.ts')).toMatch(/higher layer/);
    expect(violation('scripts/lib/core/errors.ts', 'scripts/lib/exec/b.ts')).toMatch(/higher layer/);
    expect(violation('scripts/lib/report/a.ts', 'scripts/lib/kube/b.ts')).toBeUndefined();
    expect(violation('scripts/secrets.ts', 'scripts/lib/sandbox/b.ts')).toBe('imports the sandbox');
    expect(violation('scripts/demo.ts', 'scripts/lib/sandbox/b.ts')).toBeUndefined();
    expect(violation('scripts/lib/secrets/edit.ts', 'scripts/lib/secrets/sops/tree.ts')).toBe(
      'bypasses scripts/lib/secrets/sops/index.ts',
    );
    expect(violation('scripts/sops.ts', 'scripts/lib/secrets/sops/decrypt.ts')).toMatch(/bypasses/);
    expect(violation('scripts/sops.ts', 'scripts/lib/secrets/sops/index.ts')).toBeUndefined();
    expect(
      violation('scripts/lib/secrets/sops/decrypt.ts', 'scripts/lib/secrets/sops/tree.ts'),
    ).toBeUndefined();
  });

  it('every import runs downward, except the listed debt', () => {
    const found = new Map<string, string>();
    for (const { from, to } of edges) {
      const why = violation(from, to);
      if (why !== undefined) found.set(`${from} -> ${to}`, why);
    }
    const unlisted = [...found]
      .filter(([edge]) => !(edge in ALLOWED))
      .map(([edge, why]) => `${edge}: ${why}`);
    const stale = Object.keys(ALLOWED).filter((edge) => !found.has(edge));
    expect(unlisted, 'imports against the layering (fix them; list only what cannot be fixed yet)').toEqual(
      [],
    );
    expect(stale, 'allow-listed edges that no longer exist or no longer break a rule: delete them').toEqual(
      [],
    );
  });
});

describe('the CLI core knows no domain', () => {
  /** Words of the product's domain: a hint or message using them belongs to the module that knows it. */
  const DOMAIN =
    /\b(lock|unlock|ssh|bifrost|kubectl|kube|kubernetes|sops|age|docker|compose|host|infisical|openbao)\b/gi;

  it('scripts/lib/core/cli.ts names none of it, in code or comments: errors and clean-up steps carry their own words', () => {
    const text = readFileSync(join(SCRIPTS, 'lib', 'core', 'cli.ts'), 'utf8');
    expect(text).toContain('export async function runMain'); // the file read is the CLI core
    const found = text
      .split('\n')
      .flatMap((line, i) => (line.match(DOMAIN) ? [`${i + 1}: ${line.trim()}`] : []));
    expect(found).toEqual([]);
  });
});
