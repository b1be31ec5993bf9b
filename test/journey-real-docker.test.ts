/**
 * The guide's days on a REAL Docker engine (dockerd in a network namespace of its own, docker-compose v1,
 * offline busybox stand-in images with real HEALTHCHECKs; test/harness/docker-engine.ts), provisioned over
 * a loopback sshd with the real CLIs from a SOPS file the operator made (harness/journey.ts), on a quarter
 * of the operator's deadlines (the stand-ins turn healthy within a few seconds):
 *
 * - day 1: the proxy starts on the token the bootstrap mints in the netbird-server stand-in (at
 *   /go/bin/netbird-server, off PATH, as in the real image); day 2 with the setup key: the agent starts,
 *   no other container is recreated;
 * - one service's env file changed in the bundle (netbird/dashboard.env): only that service is recreated,
 *   and no wait outlasts its healthcheck: every service step reports ready (healthy, or left alone as
 *   healthy), none reaches its deadline or the quiet-stream inspect, and the one inspect per recreated
 *   container is all the health polling there is.
 *
 * After every command: nothing left running on the host as the SSH user, no `docker events` process, no
 * secret in the output or on a docker argv.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareBundleCopy } from './harness/bifrost-bundle.ts';
import {
  BIFROST_SERVICES,
  buildBifrostStandInImages,
  type DockerCliWrappers,
  type DockerEngine,
  dockerEngineAvailable,
  startDockerEngine,
  writeDockerCliWrappers,
} from './harness/docker-engine.ts';
import { ageKeygen, DAY_1_KEYS, DAY_2_KEYS, Operator, type Step } from './harness/journey.ts';
import { findSshd, type SshdServer, startSshd } from './harness/sshd.ts';
import { canaryValues } from './helpers/bootstrap-fixture.ts';
import type { CliRun } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTier, requireTool } from './helpers/tiers.ts';

const engineTier = requireTier(
  'docker-engine',
  dockerEngineAvailable(),
  "the guide's journey on a real Docker engine",
);
const sshd = engineTier
  ? findSshd("the guide's journey on a real Docker engine over a loopback sshd")
  : undefined;
const ageKeygenBin = engineTier && requireTool('age-keygen', "the guide's journey on a real Docker engine");

describe.skipIf(!engineTier || !sshd || !ageKeygenBin)("the guide's days on a real Docker engine", () => {
  let engine: DockerEngine;
  let server: SshdServer;
  let cli: DockerCliWrappers;
  let op: Operator;
  let bundle: string;
  const typed = canaryValues();

  /** Each Bifrost container's id, by name (a recreated container has a new one). */
  async function containerIds(): Promise<Record<string, string>> {
    const r = await execa('docker', ['ps', '-a', '--format', '{{.Names}} {{.ID}}'], {
      env: { ...process.env, ...engine.env },
    });
    return Object.fromEntries(
      String(r.stdout)
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ') as [string, string]),
    );
  }

  const ok = (r: CliRun, what: string) => {
    expect(r.stderr, `${what}:\n${r.stderr}`).not.toMatch(/^error:/m);
    expect(r.exitCode, `${what}:\n${r.stderr}`).toBe(0);
  };
  const stepsOf = (r: CliRun): Step[] => JSON.parse(r.stdout).bootstrap?.steps ?? [];
  const calls = (what: RegExp) => cli.calls().filter((c) => what.test(c.args));

  /**
   * A run whose waits ended on their containers' own health, never on a clock: each service step done
   * says its container was healthy (or left alone, healthy); no wait reached a deadline, a 15 s progress
   * line or the quiet-stream inspect; and `docker inspect` ran only for the stream's first look and one
   * read of the present per `up` (waits that begin together share it): no polling.
   */
  function expectWaitsEndedOnHealth(r: CliRun): void {
    const services = stepsOf(r).filter((s) => (BIFROST_SERVICES as readonly string[]).includes(s.id));
    for (const s of services.filter((x) => x.status === 'done'))
      expect(s.detail, s.id).toMatch(
        /^(recreated, )?healthy after \d+(\.\d+)? s$|^up to date and healthy; left alone$/,
      );
    expect(r.stderr).not.toMatch(/did not become healthy within/);
    // The progress line of a wait that lasted 15 s: `wait   traefik: running, health starting (15 s)`.
    expect(r.stderr).not.toMatch(/^wait\s+\S+: .*\(\d+ s\)$/m);
    const log = cli
      .calls()
      .map((c) => c.args)
      .join('\n');
    expect(calls(/^inspect /).length, log).toBeLessThanOrEqual(1 + calls(/ up /).length);
  }

  beforeAll(async () => {
    engine = await startDockerEngine({ name: 'journey' });
    await buildBifrostStandInImages(engine);
    server = await startSshd(sshd as string);
    const root = tempDir('sf-journey-real-');
    bundle = join(root, 'bundle');
    // Healthchecks every second: docker 20.10 runs the first one only after a whole interval.
    await prepareBundleCopy(bundle, { secretsEnv: {}, dotEnv: {} }, { healthcheckIntervalSeconds: 1 });
    // The SSH user reaches its remote dir through root (traversal only); the operator's dirs stay 0700.
    execFileSync('chmod', ['711', root]);
    const remoteParent = join(root, 'remote');
    execFileSync('mkdir', ['-m', '700', remoteParent]);
    cli = await writeDockerCliWrappers(engine, join(root, 'bin'));
    cli.shareWith(server.user, [remoteParent]);
    op = new Operator(
      join(root, 'operator'),
      {
        ssh: {
          host: server.host,
          port: server.port,
          user: server.user,
          identity: server.identity,
          knownHosts: server.knownHosts,
        },
        remoteDir: join(remoteParent, 'bifrost'),
        bundle,
        docker: cli.docker,
        compose: cli.compose,
        openEventStreams: () => cli.liveEventStreams().length,
        dockerCommands: () => cli.calls().map((c) => `${c.program} ${c.args}`),
      },
      // A quarter of the operator's deadlines (15 s the shortest): the stand-ins turn healthy in a second
      // or two, and a wait that misses its container's health still ends within a command's time limit.
      { SECRETS_FLOW_TIME_SCALE: '0.25' },
    );
    const key = ageKeygen(join(op.home, 'age-key.txt'));
    op.keyFile = key.file;
    ok(await op.secrets(['init', '--recipient', key.recipient]), 'secrets init');
    for (const k of DAY_1_KEYS) ok(await op.secrets(['set', k], `${typed[k]}\n`), `secrets set ${k}`);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    await engine?.stop();
  }, 60_000);

  it('day 1: the proxy starts on a token minted in netbird-server; day 2 with the setup key: the agent starts, nothing else is recreated', async () => {
    const first = await op.provision();
    ok(first, 'day 1: the first provision');
    const day1 = Object.fromEntries(stepsOf(first).map((s) => [s.id, s.status]));
    expect(day1['netbird-proxy-token']).toBe('done');
    expect(day1['netbird-proxy']).toBe('done');
    expect(day1['netbird-agent']).toBe('skipped');
    const before = await containerIds();
    expect(Object.keys(before).sort()).toEqual(BIFROST_SERVICES.filter((s) => s !== 'netbird-agent').sort());

    for (const k of DAY_2_KEYS) ok(await op.secrets(['set', k], `${typed[k]}\n`), `secrets set ${k}`);
    cli.reset();
    const second = await op.provision();
    ok(second, 'day 2: provision with the setup key');
    const day2 = Object.fromEntries(stepsOf(second).map((s) => [s.id, s.status]));
    expect(day2['netbird-agent']).toBe('done');
    const after = await containerIds();
    expect(after).toEqual({ ...before, 'netbird-agent': after['netbird-agent'] });
    expect(after['netbird-agent']).toBeDefined();
    expectWaitsEndedOnHealth(second);
  }, 300_000);

  it('one env file changed in the bundle: only its service is recreated, and no wait outlasts its healthcheck', async () => {
    const file = join(bundle, 'netbird/dashboard.env');
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(
        /^AUTH_SUPPORTED_SCOPES=.*$/m,
        'AUTH_SUPPORTED_SCOPES=openid profile email groups offline_access',
      ),
    );
    const before = await containerIds();
    cli.reset();
    const r = await op.provision();
    ok(r, 'provision with a changed dashboard.env');
    expect(JSON.parse(r.stdout).upload.changed).toEqual(['netbird/dashboard.env']);
    const after = await containerIds();
    expect(after['netbird-dashboard']).not.toBe(before['netbird-dashboard']);
    expect(after).toEqual({ ...before, 'netbird-dashboard': after['netbird-dashboard'] });
    const dashboard = stepsOf(r).find((s) => s.id === 'netbird-dashboard');
    expect(dashboard?.detail).toMatch(/^recreated, healthy after/);
    expect(calls(/ up /)).toHaveLength(1);
    expectWaitsEndedOnHealth(r);
  }, 300_000);
});
