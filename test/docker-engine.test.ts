/**
 * The Bifrost bundle (cloud/bifrost/docker-compose.yml) under a real Docker engine and Debian's
 * docker-compose 1.29, with offline stand-in images: proves the compose file works with compose v1 and
 * that the harness the engine tests build on behaves like the services do. dockerd runs in a network
 * namespace of its own (test/harness/docker-engine.ts).
 *
 * The copy's healthchecks run every 1 s instead of every 10 s to 30 s (Docker 20.10 runs the first check
 * only after one full interval): the one difference from the shipped file, checked below, together with
 * dockerd holding each shipped healthcheck command, timeout, retries and start period as written, each
 * shipped command passing once run in its container, and every service step's deadline leaving room for
 * the shipped interval.
 *
 * Skips with a reason without root or the packages; fails instead under CI (.ci/run installs them).
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { NETBIRD_CLIENT_STATUS } from '../scripts/lib/bifrost/pinned-images.ts';
import { BIFROST_PLAN, CONFIG_PLACEHOLDERS } from '../scripts/lib/bifrost/plan.ts';
import { renderYamlTemplate } from '../scripts/lib/bifrost/template.ts';
import { AK_SHELL_SCRIPT, findTokenLine } from '../scripts/lib/bifrost/token.ts';
import { BUNDLE_SOURCE, prepareBundleCopy } from './harness/bifrost-bundle.ts';
import {
  BIFROST_SERVICES,
  buildBifrostStandInImages,
  type DockerEngine,
  dockerEngineAvailable,
  startDockerEngine,
} from './harness/docker-engine.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTier } from './helpers/tiers.ts';

const enabled = requireTier(
  'docker-engine',
  dockerEngineAvailable(),
  'the real Docker engine with the Bifrost stand-in images',
);

// Recognisable values: a leak would show up verbatim in any output.
const SECRETS = {
  AUTHENTIK_SECRET_KEY: 'canary-ak-secret-key-7f3a',
  AUTHENTIK_POSTGRESQL_PASSWORD: 'canary-pg-password-91bc',
  AUTHENTIK_BOOTSTRAP_TOKEN: 'canary-bootstrap-token-c0ffee',
  NB_RELAY_SECRET: 'canary-relay-secret-55aa',
  NB_DATA_STORE_KEY: 'canary-store-key-2e2e',
  // A bcrypt hash as provisioning renders it ("$" and all: the env file and the template must carry it).
  NB_OWNER_PASSWORD_HASH: '$2b$10$abcdefghijklmnopqrstuuj7m4XYqbm74SxoBcXyw8to0CQ061DVG',
  NB_PROXY_TOKEN: 'canary-proxy-token-4d4d',
  NB_BIFROST_SETUP_KEY: 'canary-setup-key-6b6b',
  CF_DNS_API_TOKEN: 'canary-cf-token-8c8c',
};

/** The copy's healthcheck interval, in seconds (the shipped file has 10 s to 30 s). */
const COPY_INTERVAL_SECONDS = 1;

interface Healthcheck {
  test: string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}
type Services = Record<string, { healthcheck?: Healthcheck } & Record<string, unknown>>;

/** The services of a compose file, with the `<<:` anchors merged in. */
async function composeServices(file: string): Promise<Services> {
  return (parseYaml(await readFile(file, 'utf8'), { merge: true }) as { services: Services }).services;
}

/** Compose's duration strings as the bundle writes them (`10s`, `1m30s`), in seconds. */
function seconds(duration: string): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration);
  if (!m || duration === '') throw new Error(`unexpected duration ${JSON.stringify(duration)}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
}

async function writePrivate(path: string, text: string): Promise<void> {
  const fh = await open(path, 'w', 0o600);
  await fh.writeFile(text);
  await fh.close();
}

describe.skipIf(!enabled)('real Docker engine with the Bifrost stand-in images', () => {
  let engine: DockerEngine | undefined;
  let dir: string;
  const timings: [string, number][] = [];
  const t0 = performance.now();
  const time = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      timings.push([label, Math.round(performance.now() - started)]);
    }
  };

  const env = () => ({ ...process.env, ...engine?.env }) as Record<string, string>;
  const docker = (args: string[], input?: string) =>
    execa('docker', args, { env: env(), reject: false, timeout: 60_000, input: input ?? '' });
  // The product's argv forms (scripts/lib/bifrost/docker.ts), with docker-compose v1 as COMPOSE.
  const compose = (...args: string[]) =>
    execa('docker-compose', ['-f', join(dir, 'docker-compose.yml'), '--project-directory', dir, ...args], {
      env: env(),
      reject: false,
      timeout: 120_000,
    });

  /** One `up -d --no-deps` for services the plan starts together (as the engine batches them). */
  async function up(...services: string[]): Promise<void> {
    const what = services.join(' ');
    const r = await time(`up ${what}`, () => compose('up', '-d', '--no-deps', ...services));
    expect(r.exitCode, `up ${what}: ${r.stderr}`).toBe(0);
  }

  interface Inspected {
    Name: string;
    State: { Running: boolean; Health?: { Status: string; Log?: { Output: string }[] } };
  }

  /** Polls `docker inspect` (as the engine does) until every container is healthy; logs on timeout. */
  async function waitHealthy(names: string[], deadlineMs: number): Promise<void> {
    const started = performance.now();
    const pending = new Set(names);
    let last: Inspected[] = [];
    while (pending.size > 0) {
      const r = await docker(['inspect', ...pending]);
      last = JSON.parse(String(r.stdout) || '[]') as Inspected[];
      for (const c of last) {
        if (c.State.Health?.Status === 'healthy') {
          const name = c.Name.replace(/^\//, '');
          pending.delete(name);
          timings.push([`healthy ${name} (after waiting)`, Math.round(performance.now() - started)]);
        }
      }
      if (pending.size === 0) break;
      if (performance.now() - started > deadlineMs) {
        const logs = await Promise.all(
          [...pending].map(async (n) => {
            const r = await docker(['logs', '--tail', '20', n]);
            return `--- ${n}\n${r.stdout}\n${r.stderr}`;
          }),
        );
        const states = last.map((c) => `${c.Name}: ${JSON.stringify(c.State.Health ?? c.State)}`).join('\n');
        throw new Error(
          `not healthy within ${deadlineMs} ms: ${[...pending].join(', ')}\n${states}\n${logs.join('\n')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  beforeAll(async () => {
    engine = await time('engine start', () => startDockerEngine({ name: 'bundle' }));
    await time('stand-in image builds', () => buildBifrostStandInImages(engine as DockerEngine));
    dir = tempDir('sf-bundle-');
    await prepareBundleCopy(
      dir,
      {
        secretsEnv: SECRETS,
        dotEnv: {
          AUTHENTIK_SECRET_KEY: SECRETS.AUTHENTIK_SECRET_KEY,
          AUTHENTIK_POSTGRESQL_PASSWORD: SECRETS.AUTHENTIK_POSTGRESQL_PASSWORD,
          NB_BIFROST_SETUP_KEY: SECRETS.NB_BIFROST_SETUP_KEY,
        },
      },
      { healthcheckIntervalSeconds: COPY_INTERVAL_SECONDS },
    );
    // What the engine renders itself, minimally (scripts/lib/bifrost/plan.ts SERVICE_SECRET_FILES).
    await writePrivate(join(dir, 'env', 'traefik.env'), `CF_DNS_API_TOKEN=${SECRETS.CF_DNS_API_TOKEN}\n`);
    await writePrivate(
      join(dir, 'env', 'authentik.env'),
      `AUTHENTIK_BOOTSTRAP_TOKEN=${SECRETS.AUTHENTIK_BOOTSTRAP_TOKEN}\n`,
    );
    await writePrivate(join(dir, 'env', 'netbird-proxy.env'), `NB_PROXY_TOKEN=${SECRETS.NB_PROXY_TOKEN}\n`);
    await writePrivate(
      join(dir, 'env', 'netbird-agent.env'),
      `NB_SETUP_KEY=${SECRETS.NB_BIFROST_SETUP_KEY}\n`,
    );
  }, 90_000);

  afterAll(async () => {
    try {
      await time('engine stop', async () => engine?.stop());
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
      timings.push(['whole file', Math.round(performance.now() - t0)]);
      console.log(
        `docker-engine timings (ms):\n${timings.map(([label, ms]) => `  ${String(ms).padStart(6)}  ${label}`).join('\n')}`,
      );
    }
  }, 90_000);

  it('starts every service in plan order until healthy, with the token from ak shell on stdin', async () => {
    const startAll = performance.now();
    await up('traefik', 'authentik-postgres');
    await time('wait traefik + authentik-postgres', () =>
      waitHealthy(['traefik', 'authentik-postgres'], 40_000),
    );

    // `run --rm` from a process without a TTY, as the engine runs it.
    const migrate = await time('run --rm authentik-server migrate', () =>
      compose('run', '--rm', '--no-deps', 'authentik-server', 'migrate'),
    );
    expect(migrate.exitCode, `migrate: ${migrate.stderr}`).toBe(0);
    expect(String(migrate.stdout)).toContain('Migrations applied');

    // Before the worker has created akadmin, the token step must fail (and be retried by the engine).
    await up('authentik-server');
    const early = await docker(['exec', '-i', 'authentik-server', 'ak', 'shell'], AK_SHELL_SCRIPT);
    expect(early.exitCode).toBe(1);
    expect(String(early.stderr)).toContain('ERROR: user akadmin does not exist yet');
    expect(findTokenLine(String(early.stdout))).toBeUndefined();

    await up('authentik-worker');
    await time('wait authentik-server + worker', () =>
      waitHealthy(['authentik-server', 'authentik-worker'], 70_000),
    );

    const shell = await time('exec -i ak shell', () =>
      docker(['exec', '-i', 'authentik-server', 'ak', 'shell'], AK_SHELL_SCRIPT),
    );
    expect(shell.exitCode, String(shell.stderr)).toBe(0);
    const token = findTokenLine(String(shell.stdout));
    expect(token).toBe(SECRETS.AUTHENTIK_BOOTSTRAP_TOKEN);
    // Log noise around exactly one TOKEN line, as Authentik prints it.
    expect(
      String(shell.stdout)
        .split('\n')
        .filter((l) => l.startsWith('TOKEN:')),
    ).toHaveLength(1);
    expect(String(shell.stdout)).toContain('"logger"');
    // The Python arrived on stdin, not on argv.
    const calls = String(
      (await docker(['exec', 'authentik-server', 'cat', '/media/ak-shell-calls.log'])).stdout,
    );
    expect(calls).toContain('from authentik.core.models import Token');
    expect(calls).toMatch(/argv: shell\s*\n/);

    // The engine renders netbird/config.yaml once the token exists; netbird-server logs its sha256.
    // The engine's own renderer; the template no longer uses NB_IDP_MGMT_TOKEN, but the engine offers it.
    const template = await readFile(join(dir, 'netbird', 'config.yaml.tmpl'), 'utf8');
    const values: Record<string, string> = { ...SECRETS, NB_IDP_MGMT_TOKEN: token as string };
    const config = renderYamlTemplate(template, values, {
      allowed: CONFIG_PLACEHOLDERS,
      file: 'netbird/config.yaml.tmpl',
    });
    expect(config).toContain(SECRETS.NB_RELAY_SECRET);
    expect(config).toContain(SECRETS.NB_DATA_STORE_KEY);
    await writePrivate(join(dir, 'netbird', 'config.yaml'), config);
    await up('netbird-server');
    await time('wait netbird-server', () => waitHealthy(['netbird-server'], 40_000));
    const sha = createHash('sha256').update(config).digest('hex');
    const serverLogs = await docker(['logs', '--tail', '50', 'netbird-server']);
    expect(String(serverLogs.stdout)).toContain(`config /etc/netbird/config.yaml sha256:${sha}`);
    expect(String(serverLogs.stdout)).not.toContain('unrendered');
    // The healthcheck ran the image's `bash` (the stand-in of ubuntu's), which connects and nothing else.
    const probe = await docker(['exec', 'netbird-server', 'bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/9090']);
    expect(probe.exitCode, String(probe.stderr)).toBe(0);
    const closed = await docker(['exec', 'netbird-server', 'bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/9']);
    expect(closed.exitCode).toBe(1);
    expect(String(closed.stderr)).toContain('Connection refused');
    const other = await docker(['exec', 'netbird-server', 'bash', '-c', 'echo hi']);
    expect(other.exitCode).toBe(2);
    expect(String(other.stderr)).toContain('bash stand-in');

    await up('netbird-dashboard', 'netbird-proxy', 'netbird-agent');
    await time('wait dashboard + proxy + agent', () =>
      waitHealthy(['netbird-dashboard', 'netbird-proxy', 'netbird-agent'], 40_000),
    );
    timings.push(['full ordered up (all 8 healthy)', Math.round(performance.now() - startAll)]);

    // The proxy's healthcheck is CMD /busybox/wget (distroless base:debug), on /healthz/ready.
    const proxyHealth = await docker([
      'inspect',
      '--format',
      '{{json .Config.Healthcheck.Test}}',
      'netbird-proxy',
    ]);
    expect(JSON.parse(String(proxyHealth.stdout))).toEqual([
      'CMD',
      '/busybox/wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:8080/healthz/ready',
    ]);
    const healthz = await docker([
      'exec',
      'netbird-proxy',
      '/busybox/wget',
      '-q',
      '-O',
      '-',
      'http://127.0.0.1:8080/healthz',
    ]);
    expect(healthz.exitCode, String(healthz.stderr)).toBe(0);

    // dockerd's bridge (172.30.0.1) and docker0 live in the engine's netns, not the machine's.
    const hostAddrs = execFileSync('ip', ['-br', 'addr'], { encoding: 'utf8' });
    expect(hostAddrs).not.toContain('172.30.0.1');
    const nsAddrs = execFileSync('ip', ['-n', engine?.netns ?? '', '-br', 'addr'], { encoding: 'utf8' });
    expect(nsAddrs).toContain('172.30.0.1');
  }, 150_000);

  it('the copy differs from the shipped file only in its healthcheck intervals; each deadline leaves room for the shipped one', async () => {
    const shipped = await composeServices(join(BUNDLE_SOURCE, 'docker-compose.yml'));
    const copy = await composeServices(join(dir, 'docker-compose.yml'));
    expect(Object.keys(copy)).toEqual(Object.keys(shipped));
    expect(Object.keys(shipped).sort()).toEqual([...BIFROST_SERVICES].sort());
    const withoutInterval = (services: Services) =>
      Object.fromEntries(
        Object.entries(services).map(([name, svc]) => {
          const { interval: _interval, ...healthcheck } = svc.healthcheck ?? { test: [] };
          return [name, { ...svc, healthcheck }];
        }),
      );
    expect(withoutInterval(copy)).toEqual(withoutInterval(shipped));
    for (const [name, svc] of Object.entries(copy)) {
      expect(svc.healthcheck?.interval, name).toBe(`${COPY_INTERVAL_SECONDS}s`);
      // Docker 20.10 runs the first check one full interval after the start: the engine's deadline for the
      // service's step must outlast the shipped interval (and its start period), or a healthy service times out.
      const hc = shipped[name]?.healthcheck as Healthcheck;
      const first = seconds(hc.interval as string) + seconds(hc.start_period ?? '0s');
      const steps = BIFROST_PLAN.filter((s) => s.kind === 'service' && s.service === name);
      expect(steps.length, name).toBeGreaterThan(0);
      for (const step of steps) expect(step.deadlineSec, `${name}: ${first} s`).toBeGreaterThan(first);
    }
  });

  it('dockerd holds every shipped healthcheck as written, and each shipped command passes once run', async () => {
    const shipped = await composeServices(join(BUNDLE_SOURCE, 'docker-compose.yml'));
    const ns = (d: string) => seconds(d) * 1e9;
    const r = await docker(['inspect', '--format', '{{json .Config.Healthcheck}}', ...BIFROST_SERVICES]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const held = String(r.stdout).trim().split('\n');
    expect(held).toHaveLength(BIFROST_SERVICES.length);
    await Promise.all(
      BIFROST_SERVICES.map(async (name, i) => {
        const hc = shipped[name]?.healthcheck as Healthcheck;
        expect(JSON.parse(held[i] as string), name).toEqual({
          Test: hc.test,
          Interval: COPY_INTERVAL_SECONDS * 1e9,
          Timeout: ns(hc.timeout as string),
          StartPeriod: ns(hc.start_period as string),
          Retries: hc.retries,
        });
        // What dockerd runs for the check: CMD's argv as is, CMD-SHELL's string with the image's /bin/sh -c.
        const [kind, ...rest] = hc.test;
        expect(['CMD', 'CMD-SHELL'], name).toContain(kind);
        const argv = kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : rest;
        const once = await docker(['exec', name, ...argv]);
        expect(once.exitCode, `${name}: ${hc.test.join(' ')}: ${once.stderr}`).toBe(0);
      }),
    );
  });

  it("the agent's shipped healthcheck passes only while connected to management (busybox sh and grep over the pinned client's output)", async () => {
    const shipped = await composeServices(join(BUNDLE_SOURCE, 'docker-compose.yml'));
    const [kind, line] = shipped['netbird-agent']?.healthcheck?.test ?? [];
    expect(kind).toBe('CMD-SHELL');
    const outcome: Record<string, number> = {};
    try {
      for (const state of NETBIRD_CLIENT_STATUS.states) {
        const put = await docker([
          'exec',
          'netbird-agent',
          'sh',
          '-c',
          `echo ${state.id} > /tmp/netbird.state`,
        ]);
        expect(put.exitCode, String(put.stderr)).toBe(0);
        const shown = await docker(['exec', 'netbird-agent', 'netbird', 'status', '--json']);
        // execa drops one final newline.
        expect(String(shown.stdout)).toBe(state.json.replace(/\n$/, ''));
        outcome[state.id] =
          (await docker(['exec', 'netbird-agent', '/bin/sh', '-c', line as string])).exitCode ?? -1;
      }
    } finally {
      await docker(['exec', 'netbird-agent', 'rm', '-f', '/tmp/netbird.state']);
    }
    expect(outcome).toEqual(
      Object.fromEntries(NETBIRD_CLIENT_STATUS.states.map((s) => [s.id, s.healthy ? 0 : 1])),
    );
    expect(Object.keys(outcome)).toEqual(['connected', 'logged-out', 'management-down', 'daemon-down']);
  });

  it('ak shell refuses Python that is not the token request, or that is not on stdin', async () => {
    const other = await docker(['exec', '-i', 'authentik-server', 'ak', 'shell'], 'print("hello")\n');
    expect(other.exitCode).toBe(2);
    // Without -i, docker exec gives the command no stdin, which is what a script-in-argv bug looks like.
    const noStdin = await execa(
      'docker',
      ['exec', 'authentik-server', 'ak', 'shell', '-c', 'netbird-mgmt-token'],
      { env: env(), reject: false, timeout: 30_000 },
    );
    expect(noStdin.exitCode).toBe(2);
    const logs = await docker(['logs', '--tail', '5', 'netbird-agent']);
    expect(`${logs.stdout}${logs.stderr}`).toContain('logging in with a setup key');
    expect(`${logs.stdout}${logs.stderr}`).not.toContain(SECRETS.NB_BIFROST_SETUP_KEY);
  }, 30_000);
});
