#!/usr/bin/env node
// @ts-check
/**
 * Starts a command: `node bin/run.mjs scripts/NAME.ts ARGS...`, as every justfile recipe and npm script
 * does. It runs the command's bundle from dist/ (bin/build-bundles.mjs, built by `npm ci`) while no source
 * is newer than that build, else the TypeScript source through tsx, as `node --import tsx FILE` would
 * (after an edit, or without a build: `npm ci --ignore-scripts`). A bundle starts in ~2x `node -e 0`, tsx
 * in ~1 s. Either way the command sees the argv it would see as the main module, its source's path and
 * then ARGS exactly as given (nothing is parsed or rewritten here).
 *
 * The start-up signal handlers load first (a static import with no imports of its own is evaluated before
 * this module's body): a Ctrl-C while the command's modules load is reported, not a silent exit.
 */
import '../scripts/lib/core/startup-signals.mjs';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundlesCurrent, DIST_DIR, SCRIPTS_DIR } from './bundle-stamp.mjs';

const file = process.argv[2];
let source;
try {
  source = file === undefined ? undefined : realpathSync(resolve(file));
} catch {
  // reported below
}
if (source === undefined || !statSync(source).isFile()) {
  process.stderr.write(
    `error: ${file === undefined ? 'no command given' : `${file} is not a file`}\nhint: node bin/run.mjs scripts/NAME.ts [ARGS...], e.g. node bin/run.mjs scripts/secrets.ts --help (just --list shows the recipes)\n`,
  );
  process.exit(2);
}
process.argv.splice(1, 2, source);

const bundle =
  dirname(source) === SCRIPTS_DIR && source.endsWith('.ts')
    ? join(DIST_DIR, `${basename(source, '.ts')}.mjs`)
    : undefined;
if (bundle !== undefined && existsSync(bundle) && bundlesCurrent(DIST_DIR)) {
  await import(pathToFileURL(bundle).href);
} else {
  // `--import tsx`, here: the loader's hooks apply to every module imported after it.
  /** @type {string} */
  const tsx = 'tsx';
  await import(tsx);
  await import(pathToFileURL(source).href);
}
