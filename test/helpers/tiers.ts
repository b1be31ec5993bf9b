/**
 * One tier policy for every CI. A test tier needs something from outside the project (a Debian
 * package, root for the real Docker engine, ../shared). When it is missing:
 *   - on a developer's machine the tier is skipped, with the reason printed (never silently);
 *   - where SECRETS_FLOW_REQUIRE_TIERS is set (.ci/run sets it and installs everything), the run fails,
 *     unless the tier is named in SECRETS_FLOW_SKIP_TIERS: a CI that cannot meet a tier declares it
 *     there (.github/workflows/ci.yml: `shared`, which only this project's checkout has beside it, and
 *     `docker-engine`, which needs root), and the skip is printed as declared.
 * The key is not CI, which every CI service sets, including ones that never installed a tier.
 * Each tier guards only its own describe blocks, so a file's other tests run without it.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findOnPath } from '../../scripts/lib/exec/which.ts';
import { PROJECT_ROOT } from './run-cli.ts';

/** A tier's name: a tool's name, or `shared`, `docker-engine`, `procfs`. */
export type Tier = string;

const declaredSkips = (): Set<string> =>
  new Set((process.env.SECRETS_FLOW_SKIP_TIERS ?? '').split(/[\s,]+/).filter(Boolean));

/**
 * What a missing tier does: a printed skip, or (required, not declared) an error. The error is thrown
 * where the tier is asked for: at a file's top level it fails the file, inside a test that test.
 */
export function tierMissing(tier: Tier, what: string, purpose: string): undefined {
  const reason = `${what} is missing: skipping ${purpose}`;
  const declared = declaredSkips().has(tier);
  if (process.env.SECRETS_FLOW_REQUIRE_TIERS && !declared)
    throw new Error(
      `tier ${tier}: ${reason} (required where SECRETS_FLOW_REQUIRE_TIERS is set, as .ci/run does; it installs it. A CI that cannot meet it declares it: SECRETS_FLOW_SKIP_TIERS="${tier}")`,
    );
  console.warn(`SKIP [${tier}]: ${reason}${declared ? ' (declared in SECRETS_FLOW_SKIP_TIERS)' : ''}`);
  return undefined;
}

/** Whether a tier is there: `available` true, or a skip (or, required, a failure) with `reason`. */
export function requireTier(
  tier: Tier,
  available: { ok: true } | { ok: false; reason: string },
  purpose: string,
): boolean {
  if (available.ok) return true;
  tierMissing(tier, available.reason, purpose);
  return false;
}

/** The absolute path of a tool on PATH; a skip (or, required, a failure) when absent. */
export function requireTool(name: string, purpose: string): string | undefined {
  return findOnPath(name) ?? tierMissing(name, `${name} (not on PATH)`, purpose);
}

/**
 * `../shared` beside the checkout: the vectors and references that come from other repositories.
 * SECRETS_FLOW_SHARED_DIR names it elsewhere (.ci/run sets it for a clone of a checkout that has one).
 */
export const SHARED_DIR = process.env.SECRETS_FLOW_SHARED_DIR || resolve(PROJECT_ROOT, '..', 'shared');

export function requireShared(sub: string, purpose: string): string | undefined {
  const dir = join(SHARED_DIR, sub);
  return existsSync(dir) ? dir : tierMissing('shared', `${dir} (a user's clone has no ../shared)`, purpose);
}
