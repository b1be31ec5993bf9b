/**
 * Temporary directories that a test file (or a helper it uses) makes and that are removed when the file
 * ends (issue 14: a run leaves nothing behind; test/global-setup.ts fails it otherwise). Importing this
 * module from a test file, directly or through a helper, registers one afterAll that removes them; outside
 * vitest (bench/) nothing is registered and removeTempDirs() is the caller's to run.
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

if (process.env.VITEST) {
  // vitest refuses to be imported outside its runner; this module is also used by bench/.
  const { afterAll } = await import('vitest');
  afterAll(removeTempDirs);
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
