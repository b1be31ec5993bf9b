#!/usr/bin/env node
// @ts-check
/**
 * Bundles every `scripts/*.ts` into one ES module each: `node bin/build-bundles.mjs` (package.json
 * "prepare", so `npm ci` runs it) writes them to dist/, which bin/run.mjs starts while no input is newer
 * (bin/bundle-stamp.mjs). The tests build the same bundles, by this module, into their own directory.
 *
 * Under tsx a command resolves and transforms ~100 TypeScript modules on every start through loader hooks on
 * another thread (~0.8 s of CPU). A bundle is the same sources through the same transformer (esbuild, which
 * tsx uses) loaded as one file. What the bundle keeps from the sources:
 * - `import.meta.url` / `import.meta.dirname` are each module's own source location, so paths the product
 *   resolves next to its sources (the Bifrost bundle dir, stand-in scripts, `createRequire`) are the real ones;
 * - the entry's "am I the main module" guard is true, as it is when the source is the main module;
 * - ssh2 stays an external package (its native crypto binding is loaded as under tsx), as does zx, which
 *   the product loads lazily through `require`;
 * - names: whitespace and syntax are minified (less to parse at each start), identifiers are not, so a
 *   stack trace still names the functions.
 * Each file is written beside its final name and renamed over it, and the stamp is removed first and
 * written last: a command starting during a build runs a whole old bundle, a whole new one, or tsx.
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { DIST_DIR, newestInput, ROOT, SCRIPTS_DIR, STAMP } from './bundle-stamp.mjs';

/** The guard every entry point ends with (scripts/*.ts); under a bundle argv[1] is not the source. */
const MAIN_GUARD = 'isMainModule(import.meta.url)';

/** Packages loaded from node_modules at run time, as under tsx. */
const EXTERNAL = ['ssh2', 'zx'];

const requireFromProject = createRequire(join(ROOT, 'package.json'));

/**
 * @param {ReadonlySet<string>} entries
 * @returns {import('esbuild').Plugin}
 */
function sourceLocations(entries) {
  return {
    name: 'source-locations',
    setup(b) {
      b.onResolve({ filter: new RegExp(`^(${EXTERNAL.join('|')})(/|$)`) }, (args) => ({
        path: requireFromProject.resolve(args.path),
        external: true,
      }));
      b.onLoad({ filter: /\.[cm]?ts$/ }, (args) => {
        let text = readFileSync(args.path, 'utf8');
        if (!args.path.startsWith(`${ROOT}/`)) return { contents: text, loader: 'ts' };
        if (entries.has(args.path) && text.includes('isMainModule(')) {
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

/**
 * Bundles every `scripts/*.ts` into `outDir/<name>.mjs` and stamps the dir with how new its inputs were.
 * @param {string} [outDir]
 */
export async function buildBundles(outDir = DIST_DIR) {
  // Read before the sources are: a source saved during the build is newer than the stamp.
  const inputs = newestInput();
  const entries = readdirSync(SCRIPTS_DIR)
    .filter((n) => n.endsWith('.ts'))
    .map((n) => join(SCRIPTS_DIR, n));
  const result = await build({
    entryPoints: entries,
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    // package.json "engines"
    target: 'node20.19',
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
    // Bundled CommonJS packages call require() for Node's own modules.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    plugins: [sourceLocations(new Set(entries))],
  });
  mkdirSync(outDir, { recursive: true });
  const stamp = join(outDir, STAMP);
  rmSync(stamp, { force: true });
  const written = new Set([STAMP]);
  for (const file of result.outputFiles) {
    const partial = `${file.path}.${process.pid}.partial`;
    writeFileSync(partial, file.contents);
    renameSync(partial, file.path);
    written.add(basename(file.path));
  }
  // A script that was removed or renamed leaves no bundle behind.
  for (const name of readdirSync(outDir)) {
    if (!written.has(name) && name.endsWith('.mjs')) rmSync(join(outDir, name), { force: true });
  }
  writeFileSync(`${stamp}.${process.pid}.partial`, String(inputs));
  renameSync(`${stamp}.${process.pid}.partial`, stamp);
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await buildBundles();
  console.log(`bin/build-bundles.mjs: the commands are bundled into ${DIST_DIR}`);
}
