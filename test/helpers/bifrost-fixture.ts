/**
 * A Bifrost bundle in a temporary directory (a copy of cloud/bifrost), with .secrets.env and .env holding
 * canary values, and an Output that captures every line, for engine tests against the simulator.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { createOutput, type Output } from '../../scripts/lib/core/output.ts';
import { BCRYPT } from '../../scripts/lib/secrets/password-hash.ts';
import { PROJECT_ROOT } from './run-cli.ts';
import { tempDir } from './temp.ts';

export const BUNDLE_SOURCE = resolve(PROJECT_ROOT, 'cloud/bifrost');

const rand = (n = 12) => randomBytes(n).toString('hex');

/** The owner's password hash as provisioning renders it; one per test file (bcrypt is slow on purpose). */
const OWNER_HASH = BCRYPT.hash(`CANARY-owner-${rand()}`);

/** Values as provisioning renders them; each holds a random part so a leak anywhere is detectable. */
export function bifrostSecrets(overrides: Record<string, string | undefined> = {}) {
  const secretsEnv: Record<string, string | undefined> = {
    CF_DNS_API_TOKEN: `CANARYcf${rand()}`,
    NB_DATA_STORE_KEY: randomBytes(32).toString('base64'),
    NB_RELAY_SECRET: `CANARY-relay-${rand()}`,
    NB_OWNER_PASSWORD_HASH: OWNER_HASH,
    AUTHENTIK_BOOTSTRAP_TOKEN: `CANARYak${rand(24)}`,
    NB_PROXY_TOKEN: `nbx_CANARY${rand(16)}`,
    NB_BIFROST_SETUP_KEY: `CANARY-${rand(8)}`,
    ...overrides,
  };
  const dotEnv = {
    AUTHENTIK_SECRET_KEY: `CANARY-aksk-${rand(30)}`,
    AUTHENTIK_POSTGRESQL_PASSWORD: `CANARY-pg-${rand()}`,
  };
  return { secretsEnv, dotEnv };
}

/** Double-quoted env lines (escapes for \, ", newline) carry any value, as the engine reads them. */
export function envText(values: Record<string, string | undefined>): string {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) => `${k}="${(v as string).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
    )
    .join('\n')
    .concat('\n');
}

export function makeBundle(values = bifrostSecrets()) {
  const dir = join(tempDir('sf-bifrost-'), 'bifrost');
  cpSync(BUNDLE_SOURCE, dir, { recursive: true });
  writeFileSync(join(dir, '.secrets.env'), envText(values.secretsEnv), { mode: 0o600 });
  writeFileSync(join(dir, '.env'), envText(values.dotEnv), { mode: 0o600 });
  return { dir, ...values, cleanup: () => rmSync(dirname(dir), { recursive: true, force: true }) };
}

export function capturedOutput(): { out: Output; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    out: createOutput({ stdout: sink, stderr: sink, env: { NO_COLOR: '1' } }),
    text: () => chunks.join(''),
  };
}

/** The reference health timeline the bench measures against (bench/bifrost.ts), in seconds, scaled. */
export function referenceTimeline(scaleMs: number) {
  const s = (sec: number) => ({ healthyAfterMs: sec * scaleMs });
  return {
    timeline: {
      traefik: s(3),
      'authentik-postgres': s(8),
      'authentik-server': s(45),
      'authentik-worker': s(40),
      'netbird-server': s(4),
      'netbird-dashboard': s(3),
      'netbird-proxy': s(3),
      'netbird-agent': s(4),
    },
    migrateMs: 6 * scaleMs,
  };
}
