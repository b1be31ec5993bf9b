/**
 * The tests' script bundles (test/helpers/script-bundles.ts) are used only while they are as new as the
 * sources: after an edit (a watch-mode run), a script starts as operators start it, under tsx.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BUNDLES_ENV, scriptArgv } from '../helpers/script-bundles.ts';
import { tempDir } from '../helpers/temp.ts';

const saved = process.env[BUNDLES_ENV];
afterEach(() => {
  if (saved === undefined) delete process.env[BUNDLES_ENV];
  else process.env[BUNDLES_ENV] = saved;
});

describe('scriptArgv', () => {
  it('names the bundle while no source is newer than it', () => {
    const dir = tempDir('sf-bundles-');
    writeFileSync(join(dir, '.sources-mtime'), String(Date.now() + 60_000));
    process.env[BUNDLES_ENV] = dir;
    expect(scriptArgv('secrets.ts', 'tsx')).toEqual([join(dir, 'secrets.mjs')]);
  });

  it('falls back to tsx once a source is newer than the bundles, and without bundles', () => {
    const dir = tempDir('sf-bundles-');
    writeFileSync(join(dir, '.sources-mtime'), '0');
    process.env[BUNDLES_ENV] = dir;
    const [flag, tsx, script] = scriptArgv('secrets.ts', 'tsx');
    expect([flag, tsx]).toEqual(['--import', 'tsx']);
    expect(script).toMatch(/\/scripts\/secrets\.ts$/);
    delete process.env[BUNDLES_ENV];
    expect(scriptArgv('secrets.ts', 'tsx')[0]).toBe('--import');
  });

  it('looks again on every start: a worker keeps this module across test files (isolate: false)', () => {
    const dir = tempDir('sf-bundles-');
    process.env[BUNDLES_ENV] = dir;
    writeFileSync(join(dir, '.sources-mtime'), String(Date.now() + 60_000));
    expect(scriptArgv('secrets.ts', 'tsx')).toEqual([join(dir, 'secrets.mjs')]);
    // A source edited since the bundles were built (as the stamp now says) sends the next start to tsx.
    writeFileSync(join(dir, '.sources-mtime'), '0');
    expect(scriptArgv('secrets.ts', 'tsx')[0]).toBe('--import');
  });
});
