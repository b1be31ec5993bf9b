/**
 * The project's scripts, each bundled once per test run into one ES module.
 *
 * Operators run `node --import tsx scripts/X.ts`: tsx resolves and transforms ~100 TypeScript modules on every
 * start through loader hooks on another thread, ~0.8 s of CPU warm and ~1.3 s with a cold cache (every test
 * fixture has its own TMPDIR, hence its own tsx cache). A bundle is the same sources through the same
 * transformer (esbuild, which tsx uses) loaded as one file: ~0.25 s. The tests still start a real process
 * per CLI run, with its own argv, environment, stdio, signals and exit code; only module loading differs,
 * and `cli-shape.test.ts` runs every script both ways and requires the same output.
 *
 * What the bundle keeps from the sources:
 * - `import.meta.url` / `import.meta.dirname` are each module's own source location, so paths the product
 *   resolves next to its sources (the bundle dir, stand-in scripts, `createRequire`) are the real ones;
 * - the entry's "am I the main module" guard is true, as it is under tsx;
 * - ssh2 stays an external package (its native crypto binding is loaded as under tsx), as does zx, which
 *   the product loads lazily through `require`.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..');
const SCRIPTS_DIR = join(PROJECT_ROOT, 'scripts');

/** Where the run's bundles are, set by test/global-setup.ts for the workers. */
export const BUNDLES_ENV = 'SECRETS_FLOW_TEST_BUNDLES';

/** The guard every entry point ends with (scripts/*.ts); under a bundle argv[1] is the bundle. */
const MAIN_GUARD = 'import.meta.url === `file://${process.argv[1]}`';

/** Packages loaded from node_modules at run time, as under tsx. */
const EXTERNAL = ['ssh2', 'zx'];

const requireFromProject = createRequire(join(PROJECT_ROOT, 'package.json'));

function sourceLocations(entries: ReadonlySet<string>): Plugin {
  return {
    name: 'source-locations',
    setup(b) {
      b.onResolve({ filter: new RegExp(`^(${EXTERNAL.join('|')})(/|$)`) }, (args) => ({
        path: requireFromProject.resolve(args.path),
        external: true,
      }));
      b.onLoad({ filter: /\.[cm]?ts$/ }, async (args) => {
        let text = await readFile(args.path, 'utf8');
        if (!args.path.startsWith(`${PROJECT_ROOT}/`)) return { contents: text, loader: 'ts' };
        if (entries.has(args.path) && text.includes('process.argv[1]')) {
          if (!text.includes(MAIN_GUARD)) {
            throw new Error(`${args.path}: its main-module guard is not \`if (${MAIN_GUARD})\``);
          }
          text = text.replace(MAIN_GUARD, 'true');
        }
        text = text
          .replaceAll('import.meta.dirname', JSON.stringify(dirname(args.path)))
          .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
        return { contents: text, loader: 'ts' };
      });
    },
  };
}

/** Where a bundle dir records how new its sources were (ms since the epoch). */
const STAMP = '.sources-mtime';

/** The newest modification time of anything under scripts/ (ms since the epoch). */
function newestSource(): number {
  let newest = 0;
  for (const name of readdirSync(SCRIPTS_DIR, { recursive: true, encoding: 'utf8' })) {
    newest = Math.max(newest, statSync(join(SCRIPTS_DIR, name)).mtimeMs);
  }
  return newest;
}

/** Bundles every `scripts/*.ts` into `outDir/<name>.mjs`. */
export async function buildScriptBundles(outDir: string): Promise<void> {
  const sources = newestSource();
  const entries = (await readdir(SCRIPTS_DIR))
    .filter((n) => n.endsWith('.ts'))
    .map((n) => join(SCRIPTS_DIR, n));
  await build({
    entryPoints: entries,
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${process.versions.node}`,
    logLevel: 'warning',
    // Bundled CommonJS packages call require() for Node's own modules.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    plugins: [sourceLocations(new Set(entries))],
  });
  writeFileSync(join(outDir, STAMP), String(sources));
}

/**
 * Whether the bundles in `dir` are as new as the sources. Looked up on every spawn (a walk of ~130 entries,
 * ~3 ms): a worker runs many test files in one module instance (vitest.config.ts, isolate: false), so an
 * answer kept in the module would outlive an edit in watch mode.
 */
function bundlesCurrent(dir: string): boolean {
  return newestSource() <= Number(readFileSync(join(dir, STAMP), 'utf8'));
}

/**
 * How to start `scripts/<script>`: its bundle when the run built them and no source changed since (a
 * watch-mode run after an edit), else as operators do (the argv after `node`). `tsx` is the `--import`
 * specifier (a file URL when the working directory is not the project).
 */
export function scriptArgv(script: string, tsx: string): string[] {
  const bundles = process.env[BUNDLES_ENV];
  if (bundles && bundlesCurrent(bundles)) {
    return [join(bundles, script.replace(/\.ts$/, '.mjs'))];
  }
  return ['--import', tsx, join(SCRIPTS_DIR, script)];
}
