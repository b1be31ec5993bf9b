/**
 * `just` with no arguments lists the recipes even when `just` itself is not on PATH (it comes from
 * the rust-just npm package, so a newcomer runs ./node_modules/.bin/just): the default recipe calls
 * just by the path it was started from, not by name.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/run-cli.ts';
import { requireTier } from '../helpers/tiers.ts';

const JUST = join(PROJECT_ROOT, 'node_modules/.bin/just');
// rust-just ships a binary per platform; on one it has none for, the npm package has no `just`.
const hasJust = requireTier(
  'just',
  existsSync(JUST) ? { ok: true } : { ok: false, reason: `${JUST} (npm ci installs it from rust-just)` },
  'the justfile listing',
);

describe('the justfile', () => {
  it.skipIf(!hasJust)('lists the recipes with no arguments, just not on PATH', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = execFile(
        JUST,
        [],
        { cwd: PROJECT_ROOT, env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } },
        (_e, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }),
      );
    });
    expect(r.stderr).not.toMatch(/not found/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Available recipes:\n[\s\S]*create-secrets/);
  });
});
