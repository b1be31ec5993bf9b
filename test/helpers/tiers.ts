/**
 * Test tiers that need something from outside the project (a Debian package, ../shared) skip with a
 * printed reason on a developer's machine and fail where SECRETS_FLOW_REQUIRE_TIERS is set (.ci/run sets it and
 * installs everything).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findOnPath } from '../../scripts/lib/exec/which.ts';
import { PROJECT_ROOT } from './run-cli.ts';

function missing(what: string, purpose: string): undefined {
  const reason = `${what} is missing: skipping ${purpose}`;
  if (process.env.SECRETS_FLOW_REQUIRE_TIERS)
    throw new Error(
      `${reason} (required where SECRETS_FLOW_REQUIRE_TIERS is set, as .ci/run does; it installs it)`,
    );
  console.warn(`SKIP: ${reason}`);
  return undefined;
}

/** The absolute path of a tool on PATH; a skip (or, under CI, a failure) when absent. */
export function requireTool(name: string, purpose: string): string | undefined {
  return findOnPath(name) ?? missing(`${name} (not on PATH)`, purpose);
}

/**
 * `../shared` beside the checkout: the vectors and references that come from other repositories.
 * SECRETS_FLOW_SHARED_DIR names it elsewhere (.ci/run sets it for a clone of a checkout that has one).
 */
export const SHARED_DIR = process.env.SECRETS_FLOW_SHARED_DIR || resolve(PROJECT_ROOT, '..', 'shared');

export function requireShared(sub: string, purpose: string): string | undefined {
  const dir = join(SHARED_DIR, sub);
  return existsSync(dir) ? dir : missing(`${dir} (a user's clone has no ../shared)`, purpose);
}
