/**
 * bifrost-bootstrap against a REAL Docker engine (Debian's dockerd in a network namespace of its own,
 * docker-compose v1, offline stand-in images with real HEALTHCHECKs and an `ak` that reads the Python on
 * stdin), first over the local executor, then over SSH to a loopback sshd.
 *
 * The engine waits by listening to ONE `docker events` stream per run: every docker / docker-compose
 * process goes through logging wrappers, so each run proves that the real CLI accepted our exact events
 * argv (the stream never fell back to polling), that health came from the stream (a handful of
 * `docker inspect`s, not a poll), that a re-run makes ≤ 5 docker processes, and that no `docker events`
 * process outlives the run, on success and on failure. A container killed while awaited is reported at once.
 *
 * Skips with a reason without root or the packages; fails instead under CI (.ci/run installs them).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsArgv } from '../scripts/lib/bifrost/docker.ts';
import { parseEnvFile } from '../scripts/lib/bifrost/env-file.ts';
import { planServices } from '../scripts/lib/bifrost/plan.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { prepareBundleCopy } from './harness/bifrost-bundle.ts';
import {
  buildBifrostStandInImages,
  type DockerCliWrappers,
  type DockerEngine,
  dockerEngineAvailable,
  startDockerEngine,
  writeDockerCliWrappers,
} from './harness/docker-engine.ts';
import { findSshd, type SshdServer, sshCliArgs, startSshd } from './harness/sshd.ts';
import { findLeaks } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTier } from './helpers/tiers.ts';

const enabled = requireTier(
  'docker-engine',
  dockerEngineAvailable(),
  'bifrost-bootstrap on a real Docker engine',
);

const SECRETS = {
  CF_DNS_API_TOKEN: 'canary-cf-token-8c8c-real',
  NB_DATA_STORE_KEY: 'canary-store-key-2e2e-real',
  NB_RELAY_SECRET: 'canary-relay-secret-55aa-real',
  NB_OWNER_PASSWORD_HASH: '$2b$10$abcdefghijklmnopqrstuuj7m4XYqbm74SxoBcXyw8to0CQ061DVG',
  AUTHENTIK_BOOTSTRAP_TOKEN: 'canaryBootstrapTokenC0ffeeReal',
  NB_PROXY_TOKEN: 'canary-proxy-token-4d4d-real',
  NB_BIFROST_SETUP_KEY: 'canary-setup-key-6b6b-real',
};
const DOT_ENV = {
  AUTHENTIK_SECRET_KEY: 'canary-ak-secret-key-7f3a-real',
  AUTHENTIK_POSTGRESQL_PASSWORD: 'canary-pg-password-91bc-real',
};

const FALLBACK = /docker events is not available/;

/** The events argv the engine builds, its --until bound (a sum of the plan's deadlines) left out. */
const EVENTS_ARGS = eventsArgv(
  { docker: 'docker', compose: [], dir: '' },
  [...new Set(planServices().map((s) => s.service))],
  { untilSeconds: 1 },
)
  .slice(1, -1)
  .join(' ');

describe.skipIf(!enabled)('bifrost-bootstrap on a real Docker engine', () => {
  let engine: DockerEngine;
  let dir: string;
  let cli: DockerCliWrappers;
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
    engine = await startDockerEngine({ name: 'bifrost-engine' });
    await buildBifrostStandInImages(engine);
    dir = join(tempDir('sf-real-'), 'bifrost');
    await prepareBundleCopy(dir, { secretsEnv: SECRETS, dotEnv: DOT_ENV }, { healthcheckIntervalSeconds: 1 });
    // The docker CLIs the engine is told to use: the real ones, pointed at this engine, logging each process.
    cli = await writeDockerCliWrappers(engine, tempDir('sf-real-bin-'));
  }, 120_000);

  afterAll(async () => {
    await engine?.stop();
  }, 60_000);

  /** The SSH test user needs the bundle, the CLI wrappers and the engine's socket. */
  function shareWithSshUser(user: string): void {
    if (process.getuid?.() === 0) cli.shareWith(user, [dirname(dir)]);
  }

  /**
   * What every run must show: the one stream ran with our exact argv and the real CLI kept it open to the
   * end (no fallback to polling), and no `docker events` process is left once the command has exited.
   */
  function expectOneStream(run: { stdout: string; stderr: string }): void {
    expect(run.stdout + run.stderr).not.toMatch(FALLBACK);
    const streams = cli.calls().filter((c) => c.args.startsWith('events '));
    expect(streams.map((c) => c.args.replace(/ --until=-\d+s$/, ''))).toEqual([EVENTS_ARGS]);
    expect(streams[0]?.args).toMatch(/ --until=-\d+s$/);
    expect(cli.liveEventStreams()).toEqual([]);
  }
  const count = (what: RegExp) => cli.calls().filter((c) => what.test(c.args)).length;

  const args = () => ['--dir', dir, '--docker', cli.docker, '--compose', cli.compose, '--json'];

  it('brings every service up in order over the local executor, then a re-run changes nothing', async () => {
    cli.reset();
    const first = await runScript('bifrost-bootstrap.ts', ['--local', ...args()], {
      PATH: process.env.PATH ?? '',
      HOME: dir,
    });
    expect(first.stderr, first.stderr).not.toMatch(/^error:/m);
    expect(first.exitCode).toBe(0);
    const result = JSON.parse(first.stdout);
    // Every step of the plan, the proxy's token step among them (kept: the SOPS file's value wins).
    expect(result.steps.map((s: { status: string }) => s.status)).toEqual(Array(12).fill('done'));
    // Health came from the stream: the first look, and one inspect for each container compose had to
    // recreate (its die), instead of one every poll interval for each waited-on container.
    expectOneStream(first);
    const ups = count(/ up -d /);
    expect(ups).toBeGreaterThan(0);
    expect(count(/^inspect /)).toBeLessThanOrEqual(ups + 3);
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
    cli.reset();
    const second = await runScript('bifrost-bootstrap.ts', ['--local', ...args()], {
      PATH: process.env.PATH ?? '',
      HOME: dir,
    });
    expect(second.exitCode).toBe(0);
    // Compose version, the stream, its one inspect (and cloud-init, not docker): ≤ 5 processes, no up.
    expectOneStream(second);
    expect(
      cli.calls().length + 1,
      cli
        .calls()
        .map((c) => c.args)
        .join('\n'),
    ).toBeLessThanOrEqual(5);
    expect(count(/ up /)).toBe(0);
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
        cli.reset();
        const r = await runScript('bifrost-bootstrap.ts', [...sshCliArgs(server), ...args()], {
          PATH: process.env.PATH ?? '',
          HOME: tempDir('sf-home-'),
        });
        expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
        expect(r.exitCode).toBe(0);
        // The stream ran on the host through the SSH channel, and was stopped there too.
        expectOneStream(r);
        expect(count(/ up -d /)).toBe(1);
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
        const local = join(tempDir('sf-real-local-'), 'bifrost');
        await prepareBundleCopy(local, { secretsEnv: {}, dotEnv: {} }, { healthcheckIntervalSeconds: 1 });
        const remoteParent = tempDir('sf-real-remote-');
        if (process.getuid?.() === 0) execFileSync('chown', [server.user, remoteParent]);
        cli.reset();
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
            cli.docker,
            '--compose',
            cli.compose,
            '--from-env',
            '--json',
          ],
          { PATH: process.env.PATH ?? '', HOME: tempDir('sf-home-'), ...values },
        );
        expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(r.stdout).bootstrap.ok).toBe(true);
        const env = await docker(['exec', 'traefik', 'env']);
        expect(String(env.stdout)).toContain(`CF_DNS_API_TOKEN=${values.CLOUDFLARE_API_TOKEN}`);
        expect(findLeaks(r.stdout + r.stderr, values)).toEqual([]);
        expectOneStream(r);
      } finally {
        await server.stop();
      }
    },
    240_000,
  );

  it('a container killed while it is awaited is reported at once, and the stream still ends', async () => {
    // traefik is gone, so the run creates it; the test's own stream sees its start and kills it before its
    // first healthcheck can pass (ready after 1 s, checked every 1 s).
    await docker(['rm', '-f', 'traefik']);
    const watch = execa(
      'docker',
      ['events', '--format', '{{.Action}}', '--filter', 'container=traefik', '--filter', 'event=start'],
      { env: { ...process.env, ...engine.env }, reject: false },
    );
    const killed = new Promise<void>((resolve) => {
      watch.stdout?.on('data', () => {
        void docker(['kill', 'traefik']).then(() => resolve());
      });
    });
    try {
      cli.reset();
      const r = await runScript('bifrost-bootstrap.ts', ['--local', ...args()], {
        PATH: process.env.PATH ?? '',
        HOME: dir,
      });
      await killed;
      expect(r.exitCode, r.stderr).toBe(1);
      const result = JSON.parse(r.stdout);
      expect(result.failure.step).toBe('traefik');
      // The die event, not the 60 s deadline: the message says which, and the exit code docker gave.
      expect(result.failure.message).toMatch(/^traefik exited with code 137 while it was awaited/);
      expect(result.failure.message).toContain('reported at once');
      expectOneStream(r);
    } finally {
      watch.kill();
      await watch;
    }
  }, 120_000);
});
