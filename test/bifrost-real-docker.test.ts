/**
 * bifrost-bootstrap against a REAL Docker engine (Debian's dockerd in a network namespace of its own,
 * docker-compose v1, offline stand-in images with real HEALTHCHECKs and an `ak` that reads the Python on
 * stdin), first over the local executor, then over SSH to a loopback sshd.
 *
 * Skips with a reason without root or the packages; fails instead under CI (.ci/run installs them).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvFile } from '../scripts/lib/bifrost/env-file.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { prepareBundleCopy } from './harness/bifrost-bundle.ts';
import {
  buildBifrostStandInImages,
  type DockerEngine,
  dockerEngineAvailable,
  startDockerEngine,
} from './harness/docker-engine.ts';
import { findSshd, type SshdServer, sshCliArgs, startSshd } from './harness/sshd.ts';
import { findLeaks } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';

const availability = dockerEngineAvailable();
const enabled = availability.ok || Boolean(process.env.SECRETS_FLOW_REQUIRE_TIERS);
if (!availability.ok && !process.env.SECRETS_FLOW_REQUIRE_TIERS) {
  console.warn(`SKIP bifrost-bootstrap on a real Docker engine: ${availability.reason} (required under CI)`);
}

const SECRETS = {
  CF_DNS_API_TOKEN: 'canary-cf-token-8c8c-real',
  NB_DATA_STORE_KEY: 'canary-store-key-2e2e-real',
  NB_RELAY_SECRET: 'canary-relay-secret-55aa-real',
  AUTHENTIK_BOOTSTRAP_TOKEN: 'canaryBootstrapTokenC0ffeeReal',
  NB_PROXY_TOKEN: 'canary-proxy-token-4d4d-real',
  NB_BIFROST_SETUP_KEY: 'canary-setup-key-6b6b-real',
};
const DOT_ENV = {
  AUTHENTIK_SECRET_KEY: 'canary-ak-secret-key-7f3a-real',
  AUTHENTIK_POSTGRESQL_PASSWORD: 'canary-pg-password-91bc-real',
};

describe.skipIf(!enabled)('bifrost-bootstrap on a real Docker engine', () => {
  let engine: DockerEngine;
  let dir: string;
  let bin: string;
  const docker = (args: string[]) =>
    execa('docker', args, { env: { ...process.env, ...engine.env }, reject: false });
  const ids = async () => {
    const r = await docker([
      'inspect',
      'traefik',
      'authentik-server',
      'authentik-worker',
      'netbird-server',
      'netbird-dashboard',
    ]);
    return Object.fromEntries(
      (JSON.parse(String(r.stdout)) as { Name: string; Id: string }[]).map((c) => [c.Name.slice(1), c.Id]),
    );
  };

  beforeAll(async () => {
    if (!availability.ok) throw new Error(`${availability.reason} (required under CI; .ci/run installs it)`);
    engine = await startDockerEngine({ name: 'bifrost-engine' });
    await buildBifrostStandInImages(engine);
    dir = join(mkdtempSync(join(tmpdir(), 'sf-real-')), 'bifrost');
    await prepareBundleCopy(dir, { secretsEnv: SECRETS, dotEnv: DOT_ENV }, { healthcheckIntervalSeconds: 1 });
    // The docker CLIs the engine is told to use: the real ones, pointed at this engine.
    bin = mkdtempSync(join(tmpdir(), 'sf-real-bin-'));
    const exports = Object.entries(engine.env)
      .map(([k, v]) => `export ${k}='${v}'`)
      .join('\n');
    writeFileSync(join(bin, 'docker'), `#!/bin/sh\n${exports}\nexec docker "$@"\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'docker-compose'), `#!/bin/sh\n${exports}\nexec docker-compose "$@"\n`, {
      mode: 0o755,
    });
  }, 120_000);

  afterAll(async () => {
    await engine?.stop();
  }, 60_000);

  /** The SSH test user needs the bundle, the CLI wrappers and the engine's socket. */
  function shareWithSshUser(user: string): void {
    if (process.getuid?.() === 0) {
      execFileSync('chown', ['-R', user, dirname(dir)]);
      for (
        let d = dirname(engine.dockerHost.replace('unix://', ''));
        d.startsWith(engine.root);
        d = dirname(d)
      )
        chmodSync(d, 0o711);
      chmodSync(engine.root, 0o711);
      chmodSync(engine.dockerHost.replace('unix://', ''), 0o666);
      chmodSync(bin, 0o755);
      // The docker CLI's config directory (kept out of ~/.docker) must be readable by that user too.
      const config = engine.env.DOCKER_CONFIG;
      if (config) {
        mkdirSync(config, { recursive: true });
        execFileSync('chmod', ['-R', 'a+rX', config]);
      }
    }
  }

  const args = () => [
    '--dir',
    dir,
    '--docker',
    join(bin, 'docker'),
    '--compose',
    join(bin, 'docker-compose'),
    '--json',
  ];

  it('brings every service up in order over the local executor, then a re-run changes nothing', async () => {
    const first = await runScript('bifrost-bootstrap.ts', ['--local', ...args()], {
      PATH: process.env.PATH ?? '',
      HOME: dir,
    });
    expect(first.stderr, first.stderr).not.toMatch(/^error:/m);
    expect(first.exitCode).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(result.steps.map((s: { status: string }) => s.status)).toEqual(Array(11).fill('done'));
    const secretsEnv = readFileSync(join(dir, '.secrets.env'), 'utf8');
    expect(parseEnvFile(secretsEnv).get('NB_IDP_MGMT_TOKEN')).toBe(SECRETS.AUTHENTIK_BOOTSTRAP_TOKEN);
    // The Python reached `ak shell` on stdin; no secret was on any argv.
    const calls = await docker(['exec', 'authentik-server', 'cat', '/media/ak-shell-calls.log']);
    expect(String(calls.stdout)).toContain('netbird-mgmt-token');
    for (const v of [...Object.values(SECRETS), ...Object.values(DOT_ENV)]) {
      expect(first.stdout + first.stderr).not.toContain(v);
      expect(String(calls.stdout)).not.toContain(`argv: ${v}`);
    }
    // traefik sees its own secret and no other.
    const env = await docker(['exec', 'traefik', 'env']);
    expect(String(env.stdout)).toContain(`CF_DNS_API_TOKEN=${SECRETS.CF_DNS_API_TOKEN}`);
    expect(String(env.stdout)).not.toContain(SECRETS.NB_RELAY_SECRET);

    const before = await ids();
    const second = await runScript('bifrost-bootstrap.ts', ['--local', ...args()], {
      PATH: process.env.PATH ?? '',
      HOME: dir,
    });
    expect(second.exitCode).toBe(0);
    expect(await ids()).toEqual(before);
    expect(readFileSync(join(dir, '.secrets.env'), 'utf8')).toBe(secretsEnv);
  }, 240_000);

  const sshd = findSshd('bifrost-bootstrap over SSH on a real Docker engine');

  it.skipIf(!sshd)(
    'over SSH: a changed NB_RELAY_SECRET recreates netbird-server only',
    async () => {
      const server: SshdServer = await startSshd(sshd as string);
      try {
        shareWithSshUser(server.user);
        const text = readFileSync(join(dir, '.secrets.env'), 'utf8');
        writeFileSync(
          join(dir, '.secrets.env'),
          text.replace(SECRETS.NB_RELAY_SECRET, 'canary-relay-rotated-0000'),
        );
        const before = await ids();
        const r = await runScript('bifrost-bootstrap.ts', [...sshCliArgs(server), ...args()], {
          PATH: process.env.PATH ?? '',
          HOME: mkdtempSync(join(tmpdir(), 'sf-home-')),
        });
        expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
        expect(r.exitCode).toBe(0);
        const after = await ids();
        expect(after['netbird-server']).not.toBe(before['netbird-server']);
        for (const name of ['traefik', 'authentik-server', 'authentik-worker', 'netbird-dashboard']) {
          expect(after[name], name).toBe(before[name]);
        }
        const config = await docker(['exec', 'netbird-server', 'cat', '/etc/netbird/config.yaml']);
        expect(String(config.stdout)).toContain('canary-relay-rotated-0000');
        expect(r.stdout).not.toContain('canary-relay-rotated-0000');
      } finally {
        await server.stop();
      }
    },
    240_000,
  );
  it.skipIf(!sshd)(
    'provision-bifrost over SSH: renders, uploads and bootstraps on the real engine',
    async () => {
      const server: SshdServer = await startSshd(sshd as string);
      try {
        const local = join(mkdtempSync(join(tmpdir(), 'sf-real-local-')), 'bifrost');
        await prepareBundleCopy(local, { secretsEnv: {}, dotEnv: {} }, { healthcheckIntervalSeconds: 1 });
        const remoteParent = mkdtempSync(join(tmpdir(), 'sf-real-remote-'));
        if (process.getuid?.() === 0) execFileSync('chown', [server.user, remoteParent]);
        // Same database password as the stack already running: postgres keeps the one it started with.
        const values: Record<string, string> = {
          ...sampleSecrets(),
          AUTHENTIK_POSTGRESQL_PASSWORD: DOT_ENV.AUTHENTIK_POSTGRESQL_PASSWORD,
        };
        const r = await runScript(
          'provision-bifrost.ts',
          [
            ...sshCliArgs(server),
            '--remote-dir',
            join(remoteParent, 'bifrost'),
            '--bundle',
            local,
            '--docker',
            join(bin, 'docker'),
            '--compose',
            join(bin, 'docker-compose'),
            '--from-env',
            '--json',
          ],
          { PATH: process.env.PATH ?? '', HOME: mkdtempSync(join(tmpdir(), 'sf-home-')), ...values },
        );
        expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(r.stdout).bootstrap.ok).toBe(true);
        const env = await docker(['exec', 'traefik', 'env']);
        expect(String(env.stdout)).toContain(`CF_DNS_API_TOKEN=${values.CLOUDFLARE_API_TOKEN}`);
        expect(findLeaks(r.stdout + r.stderr, values)).toEqual([]);
      } finally {
        await server.stop();
      }
    },
    240_000,
  );
});
