/** The one tier policy: skip with a reason, fail where required, unless the CI declared the skip. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { requireTier, requireTool, tierMissing } from '../helpers/tiers.ts';

const saved = { require: process.env.SECRETS_FLOW_REQUIRE_TIERS, skip: process.env.SECRETS_FLOW_SKIP_TIERS };
const setEnv = (name: string, value: string | undefined) => {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
};
afterEach(() => {
  setEnv('SECRETS_FLOW_REQUIRE_TIERS', saved.require);
  setEnv('SECRETS_FLOW_SKIP_TIERS', saved.skip);
  vi.restoreAllMocks();
});

describe('tier policy', () => {
  it('skips with the reason printed on a developer machine', () => {
    setEnv('SECRETS_FLOW_REQUIRE_TIERS', undefined);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(tierMissing('frobnicator', 'frobnicator (not on PATH)', 'the frob tests')).toBeUndefined();
    expect(warn).toHaveBeenCalledWith(
      'SKIP [frobnicator]: frobnicator (not on PATH) is missing: skipping the frob tests',
    );
    expect(requireTool('no-such-tool-secrets-flow', 'x')).toBeUndefined();
    expect(requireTier('t', { ok: true }, 'x')).toBe(true);
  });

  it('fails where required, naming how a CI declares the skip', () => {
    setEnv('SECRETS_FLOW_REQUIRE_TIERS', '1');
    setEnv('SECRETS_FLOW_SKIP_TIERS', 'shared');
    expect(() => requireTier('docker-engine', { ok: false, reason: 'root' }, 'the real engine')).toThrow(
      /tier docker-engine: root is missing.*SECRETS_FLOW_SKIP_TIERS="docker-engine"/,
    );
  });

  it('skips a declared tier where required, and says it was declared', () => {
    setEnv('SECRETS_FLOW_REQUIRE_TIERS', '1');
    setEnv('SECRETS_FLOW_SKIP_TIERS', 'shared, docker-engine');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(requireTier('docker-engine', { ok: false, reason: 'root' }, 'the real engine')).toBe(false);
    expect(warn.mock.calls[0]?.[0]).toMatch(
      /^SKIP \[docker-engine\]: .*\(declared in SECRETS_FLOW_SKIP_TIERS\)$/,
    );
  });
});
