/**
 * The project's scripts, each bundled once per test run into one ES module, by the build operators get
 * at install (bin/build-bundles.mjs: what a bundle keeps from the sources is listed there), into the run's
 * own directory. The tests still start a real process per CLI run, with its own argv, environment, stdio,
 * signals and exit code; only module loading differs from a start under tsx (~0.8 s of CPU warm, ~1.3 s
 * with the cold cache each fixture's own TMPDIR gives tsx), and `cli-shape.test.ts` runs every script both
 * ways and requires the same output.
 */
import { join } from 'node:path';
import { bundlesCurrent, SCRIPTS_DIR } from '../../bin/bundle-stamp.mjs';

/** Where the run's bundles are, set by test/global-setup.ts for the workers. */
export const BUNDLES_ENV = 'SECRETS_FLOW_TEST_BUNDLES';

/**
 * How to start `scripts/<script>`: its bundle when the run built them and no source changed since (a
 * watch-mode run after an edit), else as operators do (the argv after `node`). `tsx` is the `--import`
 * specifier (a file URL when the working directory is not the project). Looked up on every spawn: a worker
 * runs many test files in one module instance (vitest.config.ts, isolate: false), so an answer kept in the
 * module would outlive an edit in watch mode.
 */
export function scriptArgv(script: string, tsx: string): string[] {
  const bundles = process.env[BUNDLES_ENV];
  if (bundles && bundlesCurrent(bundles)) {
    return [join(bundles, script.replace(/\.ts$/, '.mjs'))];
  }
  return ['--import', tsx, join(SCRIPTS_DIR, script)];
}
