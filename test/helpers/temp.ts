/**
 * Temporary directories that a test file (or a helper it uses) makes and that are removed when the file
 * ends (a run leaves nothing behind; test/global-setup.ts fails it otherwise). The removal is an
 * afterAll that test/each-file.ts registers in every test file: a worker runs many files in one module
 * instance (vitest.config.ts, isolate: false), so a hook registered here would belong to the first file only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs = new Set<string>();

/** Removes every directory made by tempDir() or passed to trackTemp() so far. */
export function removeTempDirs(): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  dirs.clear();
}

/** mkdtemp under os.tmpdir(), removed when the test file ends. */
export function tempDir(prefix: string): string {
  return trackTemp(mkdtempSync(join(tmpdir(), prefix)));
}

/** Removes `dir` (made some other way) when the test file ends; returns it. */
export function trackTemp(dir: string): string {
  dirs.add(dir);
  return dir;
}
