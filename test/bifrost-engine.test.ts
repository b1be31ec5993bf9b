/**
 * The Bifrost engine against the docker simulator: order and parallelism, deadlines with logs, token
 * retries, gating, convergent re-runs, a changed secret recreating only its service, awkward values,
 * and no secret in any argv, stdin or output.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import type { DockerCli } from '../scripts/lib/bifrost/docker.ts';
import { type EngineOptions, type EngineResult, runBifrostBootstrap } from '../scripts/lib/bifrost/engine.ts';
import { parseEnvFile } from '../scripts/lib/bifrost/env-file.ts';
import { carryToken } from '../scripts/lib/bifrost/host-state.ts';
import { BIFROST_PLAN } from '../scripts/lib/bifrost/plan.ts';
import type { Executor, FileOps } from '../scripts/lib/exec/executor.ts';
import {
  DockerSimulator,
  type ServiceTimeline,
  type SimulatorOptions,
} from '../scripts/lib/sandbox/docker-simulator.ts';
import {
  bifrostSecrets,
  capturedOutput,
  envText,
  makeBundle,
  referenceTimeline,
} from './helpers/bifrost-fixture.ts';

const MS = 10; // one "second" of the reference timeline

const made: { bundle: ReturnType<typeof makeBundle>; sim: DockerSimulator }[] = [];
afterEach(async () => {
  for (const { bundle, sim } of made.splice(0)) {
    await sim.close();
    bundle.cleanup();
  }
});

function setup(opts: { values?: ReturnType<typeof bifrostSecrets>; sim?: Partial<SimulatorOptions> } = {}) {
  const bundle = makeBundle(opts.values);
  const sim = new DockerSimulator({ dir: bundle.dir, ...referenceTimeline(MS), ...opts.sim });
  made.push({ bundle, sim });
  const cli: DockerCli = { docker: 'docker', compose: ['docker', 'compose'], dir: bundle.dir };
  return { bundle, sim, cli };
}

async function run(
  s: ReturnType<typeof setup>,
  timeScale = 0.05,
  extra: Pick<EngineOptions, 'remintToken' | 'remintProxyToken'> = {},
): Promise<EngineResult & { log: string }> {
  const { out, text } = capturedOutput();
  const result = await runBifrostBootstrap({
    executor: s.sim,
    cli: s.cli,
    out,
    timeScale,
    ...extra,
  });
  // Every run, whatever its end, leaves no docker events call running.
  expect(s.sim.listening).toBe(0);
  return { ...result, log: text() };
}

const upCalls = (sim: DockerSimulator) =>
  sim.calls
    .filter((c) => c.argv.includes('up'))
    .map((c) => ({
      ...c,
      services: c.argv.slice(c.argv.indexOf('up') + 1).filter((a) => !a.startsWith('-')),
    }));
const firstCall = (sim: DockerSimulator, pred: (argv: string[]) => boolean) =>
  sim.calls.find((c) => pred(c.argv));
/** The value, or a test failure naming what was missing. */
function must<T>(v: T | undefined, what = 'value'): T {
  if (v === undefined) throw new Error(`missing ${what}`);
  return v;
}
/** A bundle deployed once, then its .secrets.env edited on the host: `line` replaces its key's line. */
async function deployedThenEdited(line: string) {
  const s = setup();
  expect((await run(s)).ok).toBe(true);
  const path = join(s.bundle.dir, '.secrets.env');
  const key = line.slice(0, line.indexOf('='));
  writeFileSync(path, readFileSync(path, 'utf8').replace(new RegExp(`^${key}=.*$`, 'm'), line));
  return { s, path, edited: readFileSync(path, 'utf8') };
}
const status = (r: EngineResult, id: string) => r.steps.find((s) => s.id === id)?.status;

function allSecretValues(values: ReturnType<typeof bifrostSecrets>): string[] {
  return [...Object.values(values.secretsEnv), ...Object.values(values.dotEnv)].filter((v): v is string =>
    Boolean(v),
  );
}

describe('bifrost engine on the simulator', () => {
  it('starts every step once its prerequisites are done, independent ones in parallel', async () => {
    const s = setup();
    const r = await run(s);
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.steps.every((x) => x.status === 'done')).toBe(true);
    const ups = upCalls(s.sim);
    const upAt = (svc: string) => ups.find((u) => u.services.includes(svc))?.startedAt ?? Number.NaN;
    // A container starts no earlier than its up call: a lower bound on when it turned healthy.
    const healthyAt = (svc: string) =>
      (ups.find((u) => u.services.includes(svc))?.startedAt ?? 0) +
      must((referenceTimeline(MS).timeline as Record<string, { healthyAfterMs: number }>)[svc], svc)
        .healthyAfterMs;
    // traefik, postgres and netbird-server start together (one compose call), before anything is
    // healthy: netbird/config.yaml is rendered first, since NetBird waits for no Authentik token.
    expect(ups[0]?.services.sort()).toEqual(['authentik-postgres', 'netbird-server', 'traefik']);
    expect(ups.find((u) => u.services.includes('authentik-server'))?.services.sort()).toEqual([
      'authentik-server',
      'authentik-worker',
    ]);
    const migrate = firstCall(s.sim, (a) => a.includes('run') && a.includes('migrate'));
    expect(migrate?.argv.slice(-5)).toEqual(['run', '--rm', '--no-deps', 'authentik-server', 'migrate']);
    expect(must(migrate, 'migrate').startedAt).toBeGreaterThanOrEqual(healthyAt('authentik-postgres'));
    expect(upAt('authentik-server')).toBeGreaterThanOrEqual(must(migrate, 'migrate').endedAt);
    expect(upAt('authentik-worker')).toBeGreaterThanOrEqual(must(migrate, 'migrate').endedAt);
    // The token waits for the worker too (it creates akadmin): the original raced it.
    const token = firstCall(s.sim, (a) => a.includes('exec'));
    expect(token?.argv).toEqual(['docker', 'exec', '-i', 'authentik-server', 'ak', 'shell']);
    expect(must(token, 'token').startedAt).toBeGreaterThanOrEqual(healthyAt('authentik-server'));
    expect(must(token, 'token').startedAt).toBeGreaterThanOrEqual(healthyAt('authentik-worker'));
    // NetBird reads no file naming the token: it starts beside Authentik, not after the token.
    expect(upAt('netbird-server')).toBeLessThan(must(token, 'token').startedAt);
    for (const svc of ['netbird-dashboard', 'netbird-proxy', 'netbird-agent']) {
      expect(upAt(svc)).toBeGreaterThanOrEqual(healthyAt('netbird-server'));
    }
    // The three NetBird followers start together: the proxy's token step (kept here, the SOPS file has
    // it) ends before the batch goes, so they share one up call (the order of the calls, not a clock,
    // proves it; nothing else is started in between).
    const followerUp = must(
      ups.find((u) => u.services.includes('netbird-dashboard')),
      'netbird-dashboard up',
    );
    expect(followerUp.services.sort()).toEqual(['netbird-agent', 'netbird-dashboard', 'netbird-proxy']);
    expect(ups.filter((u) => u.services.some((svc) => svc.startsWith('netbird-')))).toHaveLength(2);
    // Every up is `up -d --no-deps`: the plan, not compose's depends_on, decides the order.
    for (const u of ups) expect(u.argv).toEqual(expect.arrayContaining(['up', '-d', '--no-deps']));
    expect(r.log).toContain('netbird-mgmt-token minted on attempt 1');
  });

  it('writes NB_IDP_MGMT_TOKEN as exactly one 0600 line and renders config.yaml with the values', async () => {
    const s = setup();
    await run(s);
    const secretsEnv = readFileSync(join(s.bundle.dir, '.secrets.env'), 'utf8');
    expect(secretsEnv.match(/^NB_IDP_MGMT_TOKEN=/gm)).toHaveLength(1);
    expect(parseEnvFile(secretsEnv).get('NB_IDP_MGMT_TOKEN')).toBe(
      s.bundle.secretsEnv.AUTHENTIK_BOOTSTRAP_TOKEN,
    );
    expect(statSync(join(s.bundle.dir, '.secrets.env')).mode & 0o777).toBe(0o600);
    const configPath = join(s.bundle.dir, 'netbird/config.yaml');
    expect(statSync(configPath).mode & 0o777).toBe(0o600);
    const config = parse(readFileSync(configPath, 'utf8'));
    expect(config.server.authSecret).toBe(s.bundle.secretsEnv.NB_RELAY_SECRET);
    expect(config.server.store.encryptionKey).toBe(s.bundle.secretsEnv.NB_DATA_STORE_KEY);
    // The pinned server reads no IdP token (README "Design page vs pinned versions"): its embedded IdP
    // is configured instead, and nothing of the token reaches the rendered config.
    expect(config.server.auth.issuer).toBe('https://netbird.madhan.app/oauth2');
    expect(config.server.idp).toBeUndefined();
    // The template stays, so the next run renders again.
    expect(readFileSync(join(s.bundle.dir, 'netbird/config.yaml.tmpl'), 'utf8')).toContain(
      '${NB_RELAY_SECRET}',
    );
    // Each service got only its own secrets.
    const envOf = (f: string) =>
      Object.fromEntries(parseEnvFile(readFileSync(join(s.bundle.dir, 'env', f), 'utf8')));
    expect(envOf('traefik.env')).toEqual({ CF_DNS_API_TOKEN: s.bundle.secretsEnv.CF_DNS_API_TOKEN });
    expect(envOf('authentik.env')).toEqual({
      AUTHENTIK_BOOTSTRAP_TOKEN: s.bundle.secretsEnv.AUTHENTIK_BOOTSTRAP_TOKEN,
    });
    expect(envOf('netbird-agent.env')).toEqual({ NB_SETUP_KEY: s.bundle.secretsEnv.NB_BIFROST_SETUP_KEY });
    expect(s.sim.containers.get('netbird-agent')?.env.NB_SETUP_KEY).toBe(
      s.bundle.secretsEnv.NB_BIFROST_SETUP_KEY,
    );
  });

  it('upserts NB_IDP_MGMT_TOKEN over an empty line already in .secrets.env, keeping every other line', async () => {
    // A failed `bifrost token` or a hand edit leaves `NB_IDP_MGMT_TOKEN=`: the engine mints (the value is
    // empty) and must replace that line, not add a second one.
    const s = setup();
    const path = join(s.bundle.dir, '.secrets.env');
    const original = readFileSync(path, 'utf8');
    const [first, ...rest] = original.trimEnd().split('\n');
    writeFileSync(path, `# hand edit\n${first}\nNB_IDP_MGMT_TOKEN=\n${rest.join('\n')}\n`);
    const r = await run(s);
    expect(r.failure).toBeUndefined();
    expect(r.log).toContain('netbird-mgmt-token minted on attempt 1');
    const after = readFileSync(path, 'utf8');
    expect(after.match(/^\s*(?:export\s+)?NB_IDP_MGMT_TOKEN\s*=/gm)).toHaveLength(1);
    expect(parseEnvFile(after).get('NB_IDP_MGMT_TOKEN')).toBe(s.bundle.secretsEnv.AUTHENTIK_BOOTSTRAP_TOKEN);
    // Every other line is kept as it was, in order.
    expect(after.split('\n').filter((l) => !l.startsWith('NB_IDP_MGMT_TOKEN='))).toEqual(
      `# hand edit\n${original}`.split('\n'),
    );
  });

  it('a re-run changes nothing: no recreate, no token call, no file rewritten', async () => {
    const s = setup();
    await run(s);
    const files = ['.secrets.env', 'netbird/config.yaml', 'env/traefik.env', '.bifrost-state.json'].map((f) =>
      join(s.bundle.dir, f),
    );
    const before = files.map((f) => [readFileSync(f, 'utf8'), statSync(f).mtimeMs]);
    const creations = new Map(s.sim.creations);
    const callsBefore = s.sim.calls.length;
    const r = await run(s);
    expect(r.ok).toBe(true);
    expect(s.sim.creations).toEqual(creations);
    const rerunCalls = s.sim.calls.slice(callsBefore);
    expect(rerunCalls.some((c) => c.argv.includes('exec'))).toBe(false);
    expect(rerunCalls.some((c) => c.argv.includes('--force-recreate'))).toBe(false);
    // Healthy containers with the recorded definition and inputs need no up, and no migration runs:
    // compose version, cloud-init, the events stream and one inspect.
    expect(rerunCalls.filter((c) => c.argv.includes('up') || c.argv.includes('run'))).toEqual([]);
    expect(rerunCalls.map((c) => c.argv.slice(0, 2).join(' ')).sort()).toEqual([
      'cloud-init status',
      'docker compose',
      'docker events',
      'docker inspect',
    ]);
    expect(r.steps.find((x) => x.id === 'authentik-migrate')?.detail).toMatch(/not needed/);
    expect(r.steps.find((x) => x.id === 'traefik')?.detail).toMatch(/up to date and healthy/);
    expect(files.map((f) => [readFileSync(f, 'utf8'), statSync(f).mtimeMs])).toEqual(before);
    expect(r.steps.find((x) => x.id === 'netbird-mgmt-token')?.detail).toMatch(/already set/);
    expect(r.steps.find((x) => x.id === 'netbird-config')?.detail).toMatch(/unchanged/);
  });

  /** A change to traefik's compose definition that compose sees (a label), nothing else changed. */
  function changeTraefikDefinition(s: ReturnType<typeof setup>): void {
    const compose = join(s.bundle.dir, 'docker-compose.yml');
    writeFileSync(
      compose,
      readFileSync(compose, 'utf8').replace(
        /^ {4}container_name: traefik$/m,
        '    container_name: traefik\n    labels: [bench=1]',
      ),
    );
  }

  it('a changed compose definition: compose recreates that service; its new container is what is awaited', async () => {
    const s = setup();
    await run(s);
    const creations = new Map(s.sim.creations);
    changeTraefikDefinition(s);
    const callsBefore = s.sim.calls.length;
    const r = await run(s);
    expect(r.failure).toBeUndefined();
    const expected = new Map(creations);
    expected.set('traefik', (creations.get('traefik') ?? 0) + 1);
    expect(s.sim.creations).toEqual(expected);
    // Not forced: compose saw the change itself.
    const ups = s.sim.calls.slice(callsBefore).filter((c) => c.argv.includes('up'));
    expect(ups.map((c) => c.argv.filter((a) => a === 'traefik' || a === '--force-recreate'))).toEqual([
      ['traefik'],
    ]);
  });

  it("a recreated container is awaited, not its predecessor: the old one's health does not count", async () => {
    // The events lag the up's own answer, as a stream over SSH does: when the wait begins, the watcher
    // still holds the old container, healthy.
    const timeline = { ...referenceTimeline(MS).timeline };
    const s = setup({ sim: { timeline, eventLatencyMs: 30 } });
    expect((await run(s)).ok).toBe(true);
    // Its next instance never passes its healthcheck.
    (timeline as Record<string, ServiceTimeline>).traefik = { logs: ['traefik: bad config'] };
    changeTraefikDefinition(s);
    const r = await run(s, 1);
    expect(r.failure?.step, r.log).toBe('traefik');
    expect(r.failure?.message).toMatch(/traefik turned unhealthy, before it was healthy/);
  }, 30_000);

  it('a state recorded before definitions were: one up each, one inspect says nothing was recreated', async () => {
    const s = setup();
    await run(s);
    forgetDefinitions(s);
    const creations = new Map(s.sim.creations);
    const r = await run(s);
    expect(r.failure).toBeUndefined();
    expect(s.sim.creations).toEqual(creations);
    // The definitions are recorded now: the next run needs no up.
    const callsBefore = s.sim.calls.length;
    await run(s);
    expect(s.sim.calls.slice(callsBefore).filter((c) => c.argv.includes('up'))).toEqual([]);
  });

  it('the dry run takes the path a real run takes: its recorded events stream, no fallback, no polling', async () => {
    const { dryRunBootstrap } = await import('../scripts/lib/bifrost/dry-run.ts');
    const s = setup();
    const { out, text } = capturedOutput();
    const verbose = { ...out, detail: out.info };
    const dry = await dryRunBootstrap({ executor: s.sim, cli: s.cli, out: verbose });
    expect(dry.result.ok).toBe(true);
    expect(text()).not.toMatch(/docker events is not available/);
    expect(dry.commands.filter((c) => c.startsWith('docker events '))).toHaveLength(1);
    // Nothing ran on the host behind it.
    expect(s.sim.calls).toEqual([]);
  });

  it('a changed NB_RELAY_SECRET recreates netbird-server only', async () => {
    const s = setup();
    await run(s);
    const creations = new Map(s.sim.creations);
    const text = readFileSync(join(s.bundle.dir, '.secrets.env'), 'utf8');
    writeFileSync(
      join(s.bundle.dir, '.secrets.env'),
      text.replace(/^NB_RELAY_SECRET=.*$/m, 'NB_RELAY_SECRET="CANARY-relay-rotated"'),
    );
    const callsBefore = s.sim.calls.length;
    const r = await run(s);
    expect(r.ok).toBe(true);
    const expected = new Map(creations);
    expected.set('netbird-server', (creations.get('netbird-server') ?? 0) + 1);
    expect(s.sim.creations).toEqual(expected);
    const forced = upCalls(s.sim).filter(
      (c) =>
        c.startedAt >= must(s.sim.calls[callsBefore], 'call').startedAt &&
        c.argv.includes('--force-recreate'),
    );
    expect(forced.map((c) => c.services)).toEqual([['netbird-server']]);
    expect(parse(readFileSync(join(s.bundle.dir, 'netbird/config.yaml'), 'utf8')).server.authSecret).toBe(
      'CANARY-relay-rotated',
    );
    expect(r.log).toContain('netbird-server (recreate');
  });

  // Docker sends an event only on a change: a container that is already healthy, and that an up leaves
  // alone, sends nothing more. Each wait reads the present state before it listens.
  /** Forgets the definitions the last run recorded (a state from before they were): each gets an up. */
  function forgetDefinitions(s: ReturnType<typeof setup>): void {
    const stateFile = join(s.bundle.dir, '.bifrost-state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    for (const svc of Object.values(state.services) as { definition?: string }[]) delete svc.definition;
    writeFileSync(stateFile, JSON.stringify(state));
  }

  /** Services the last run sent an up that compose did not act on: the same containers as before. */
  const upButLeftAlone = (s: ReturnType<typeof setup>, creations: Map<string, number>, since: number) => {
    const upped = new Set(
      upCalls(s.sim)
        .filter((c) => c.startedAt >= since)
        .flatMap((c) => c.services),
    );
    return [...upped].filter((svc) => s.sim.creations.get(svc) === creations.get(svc));
  };

  it('day 2: the setup key starts the agent; nothing else gets an up, the minted proxy token is kept', async () => {
    const values = bifrostSecrets({ NB_PROXY_TOKEN: undefined, NB_BIFROST_SETUP_KEY: undefined });
    const s = setup({ values });
    const first = await run(s);
    expect(first.ok, first.log).toBe(true);
    // Day 1 already runs the proxy, on the token the engine minted.
    expect(status(first, 'netbird-proxy')).toBe('done');
    expect(status(first, 'netbird-agent')).toBe('skipped');
    expect(s.sim.proxyTokens).toHaveLength(1);
    const secretsEnv = join(s.bundle.dir, '.secrets.env');
    const day2 = { ...values.secretsEnv, NB_BIFROST_SETUP_KEY: 'SETUP-KEY' };
    const minted = parseEnvFile(readFileSync(secretsEnv, 'utf8')).get('NB_IDP_MGMT_TOKEN');
    // What provision uploads on day 2: the rendered file with the host's minted lines carried.
    writeFileSync(secretsEnv, carryToken(envText(day2), readFileSync(secretsEnv, 'utf8')));
    expect(parseEnvFile(readFileSync(secretsEnv, 'utf8')).get('NB_IDP_MGMT_TOKEN')).toBe(minted);
    // .env gains the agent's setup key: only the agent's definition interpolates it.
    writeFileSync(
      join(s.bundle.dir, '.env'),
      envText({ ...values.dotEnv, NB_BIFROST_SETUP_KEY: day2.NB_BIFROST_SETUP_KEY }),
    );
    const since = s.sim.now();
    const second = await run(s);
    expect(second.failure, second.log).toBeUndefined();
    expect(status(second, 'netbird-agent')).toBe('done');
    const upped = upCalls(s.sim).filter((c) => c.startedAt >= since);
    expect(upped.flatMap((c) => c.services).sort()).toEqual(['netbird-agent']);
    // No second proxy token, and no migration: Authentik's definitions and inputs are as recorded.
    expect(s.sim.proxyTokens).toHaveLength(1);
    expect(parseEnvFile(readFileSync(secretsEnv, 'utf8')).get('NB_PROXY_TOKEN')).toBe(s.sim.proxyTokens[0]);
    expect(s.sim.calls.filter((c) => c.startedAt >= since && c.argv.includes('run'))).toEqual([]);
  }, 30_000);

  const PROXY_EXEC = [
    'docker',
    'exec',
    'netbird-server',
    '/go/bin/netbird-server',
    'token',
    'create',
    '--name',
    'bifrost-proxy',
    '--config',
    '/etc/netbird/config.yaml',
  ];
  const proxyExecs = (sim: DockerSimulator) =>
    sim.calls.filter((c) => c.argv.includes('exec') && c.argv.includes('netbird-server'));

  it('day 1 without NB_PROXY_TOKEN: mints it once netbird-server is healthy, one 0600 line, then starts the proxy', async () => {
    const s = setup({ values: bifrostSecrets({ NB_PROXY_TOKEN: undefined }) });
    const r = await run(s);
    expect(r.failure, r.log).toBeUndefined();
    const [mint, ...more] = proxyExecs(s.sim);
    expect(more).toEqual([]);
    expect(must(mint, 'token create').argv).toEqual(PROXY_EXEC);
    // As NetBird's setup does: after the server is up, and the proxy only once the token is there.
    const ups = upCalls(s.sim);
    const upOf = (svc: string) =>
      must(
        ups.find((u) => u.services.includes(svc)),
        `${svc} up`,
      );
    const serverHealthy = must(referenceTimeline(MS).timeline['netbird-server'], 'timeline').healthyAfterMs;
    expect(must(mint).startedAt).toBeGreaterThanOrEqual(upOf('netbird-server').startedAt + serverHealthy);
    expect(upOf('netbird-proxy').startedAt).toBeGreaterThanOrEqual(must(mint).endedAt);
    const token = must(s.sim.proxyTokens[0], 'minted token');
    const secretsPath = join(s.bundle.dir, '.secrets.env');
    const text = readFileSync(secretsPath, 'utf8');
    expect(text.match(/^NB_PROXY_TOKEN=.*$/gm)).toEqual([`NB_PROXY_TOKEN=${token}`]);
    expect(text.match(/NB_PROXY_TOKEN/g)).toHaveLength(1);
    expect(statSync(secretsPath).mode & 0o777).toBe(0o600);
    // The proxy's env file, and so the proxy's container, has it.
    const proxyEnv = readFileSync(join(s.bundle.dir, 'env/netbird-proxy.env'), 'utf8');
    expect(parseEnvFile(proxyEnv).get('NB_PROXY_TOKEN')).toBe(token);
    expect(s.sim.containers.get('netbird-proxy')?.env.NB_PROXY_TOKEN).toBe(token);
    // Never printed: it comes on stdout only, and every output after is redacted.
    expect(r.log).not.toContain(token);
    expect(r.log).toMatch(/NB_PROXY_TOKEN \(\d+ chars[^)]*\) minted in netbird-server/);
    // A later run keeps it: no second token create.
    const again = await run(s);
    expect(again.failure, again.log).toBeUndefined();
    expect(proxyExecs(s.sim)).toHaveLength(1);
    expect(readFileSync(secretsPath, 'utf8')).toBe(text);
  });

  it('a NB_PROXY_TOKEN from the SOPS file wins: nothing is minted, the proxy gets that value', async () => {
    const s = setup();
    const r = await run(s, 0.05, { remintProxyToken: true });
    expect(r.failure, r.log).toBeUndefined();
    expect(proxyExecs(s.sim)).toEqual([]);
    expect(s.sim.containers.get('netbird-proxy')?.env.NB_PROXY_TOKEN).toBe(
      s.bundle.secretsEnv.NB_PROXY_TOKEN,
    );
    expect(r.log).toContain('NB_PROXY_TOKEN already set in .secrets.env (from the SOPS file); kept');
  });

  it('remintProxyToken replaces a minted token with a new one, and the proxy is recreated with it', async () => {
    const s = setup({ values: bifrostSecrets({ NB_PROXY_TOKEN: undefined }) });
    expect((await run(s)).ok).toBe(true);
    const r = await run(s, 0.05, { remintProxyToken: true });
    expect(r.failure, r.log).toBeUndefined();
    expect(s.sim.proxyTokens).toHaveLength(2);
    const text = readFileSync(join(s.bundle.dir, '.secrets.env'), 'utf8');
    expect(text.match(/^NB_PROXY_TOKEN=.*$/gm)).toEqual([`NB_PROXY_TOKEN=${s.sim.proxyTokens[1]}`]);
    expect(s.sim.containers.get('netbird-proxy')?.env.NB_PROXY_TOKEN).toBe(s.sim.proxyTokens[1]);
    expect(s.sim.creations.get('netbird-proxy')).toBe(2);
  });

  it('a bare `netbird-server` (not on PATH in the image) fails the token step; the proxy is not started', async () => {
    const s = setup({ values: bifrostSecrets({ NB_PROXY_TOKEN: undefined }) });
    const plan = BIFROST_PLAN.map((step) =>
      step.kind === 'proxy-token' ? { ...step, command: ['netbird-server', ...step.command.slice(1)] } : step,
    );
    const { out, text } = capturedOutput();
    const r = await runBifrostBootstrap({ executor: s.sim, cli: s.cli, out, timeScale: 0.05, plan });
    expect(r.failure?.step, text()).toBe('netbird-proxy-token');
    expect(r.failure?.message).toMatch(/exit 126: .*"netbird-server": executable file not found in \$PATH/);
    expect(r.failure?.hint).toContain('/go/bin/netbird-server token create');
    expect(status(r, 'netbird-proxy')).toBe('not run');
    expect(readFileSync(join(s.bundle.dir, '.secrets.env'), 'utf8')).not.toContain('NB_PROXY_TOKEN');
  });

  // Docker sends an event only on a change: a container that is already healthy, and that an up leaves
  // alone, sends nothing more. Each wait reads the present state before it listens.
  it('an up that compose does not act on, of a container already healthy, counts at once', async () => {
    const s = setup();
    expect((await run(s)).ok).toBe(true);
    forgetDefinitions(s);
    const creations = new Map(s.sim.creations);
    const since = s.sim.now();
    // A deadline of a minute: the test would time out if a wait sat on a container that sends nothing.
    const r = await run(s, 1);
    expect(r.failure, r.log).toBeUndefined();
    expect(upButLeftAlone(s, creations, since)).toContain('traefik');
  }, 30_000);

  it('a container already unhealthy when its wait begins fails at once, not at its deadline', async () => {
    const s = setup();
    expect((await run(s)).ok).toBe(true);
    forgetDefinitions(s);
    // It turned unhealthy between the runs: its event went by before the next run listened.
    s.sim.turnUnhealthy('traefik');
    const creations = new Map(s.sim.creations);
    const since = s.sim.now();
    const r = await run(s, 1);
    expect(r.failure?.step, r.log).toBe('traefik');
    expect(r.failure?.message).toMatch(/traefik turned unhealthy, before it was healthy \(reported at once/);
    // compose left it alone (nothing it compares changed), so no new event could have come.
    expect(upButLeftAlone(s, creations, since)).toContain('traefik');
  }, 30_000);

  it('a service that turns unhealthy fails at once, not at its deadline, with its logs and health-check output', async () => {
    const timeline = {
      ...referenceTimeline(MS).timeline,
      'netbird-dashboard': { logs: ['nginx: [emerg] bind() failed'] },
    };
    const s = setup({ sim: { timeline } });
    // A deadline of a minute: the test would time out if the failure waited for it.
    const r = await run(s, 1);
    expect(r.ok).toBe(false);
    expect(r.failure?.step).toBe('netbird-dashboard');
    expect(r.failure?.message).toMatch(
      /netbird-dashboard turned unhealthy, before it was healthy \(reported at once, not at its 60 s deadline\)/,
    );
    expect(r.failure?.message).toContain('nginx: [emerg] bind() failed');
    expect(r.failure?.message).toContain('health-check log:');
    expect(r.failure?.hint).toMatch(/docker logs netbird-dashboard/);
    expect(status(r, 'netbird-dashboard')).toBe('failed');
    expect(firstCall(s.sim, (a) => a.includes('logs'))?.argv).toEqual([
      'docker',
      'logs',
      '--tail',
      '30',
      'netbird-dashboard',
    ]);
    // Heard, not polled: after the dashboard's up, one read of its present state where the wait begins
    // and the failure report's own, nothing every poll interval.
    const up = must(
      firstCall(s.sim, (a) => a.includes('up') && a.includes('netbird-dashboard')),
      'up',
    );
    const inspects = s.sim.calls.filter((c) => c.argv[1] === 'inspect' && c.startedAt >= up.startedAt);
    expect(inspects.length).toBeLessThanOrEqual(2);
  }, 30_000);

  it('a service whose health never comes fails at its deadline, naming it', async () => {
    const timeline = {
      ...referenceTimeline(MS).timeline,
      'netbird-dashboard': { healthyAfterMs: 10 ** 9, logs: ['still starting'] },
    };
    const s = setup({ sim: { timeline } });
    const r = await run(s, 0.01);
    expect(r.ok).toBe(false);
    expect(r.failure?.step).toBe('netbird-dashboard');
    expect(r.failure?.message).toMatch(
      /netbird-dashboard did not become healthy within 0\.6 s \(state: running, health starting\)/,
    );
    expect(r.failure?.message).toContain('still starting');
  });

  it('a container that exits while awaited fails at once with its exit code', async () => {
    // netbird-server never turns healthy by itself, so the kill below lands while the engine awaits
    // it however late the poll runs on a busy machine (with its 40 ms health it could come too late).
    const timeline = { ...referenceTimeline(MS).timeline, 'netbird-server': { healthyAfterMs: 10 ** 9 } };
    const s = setup({ sim: { timeline } });
    const r = runBifrostBootstrap({
      executor: s.sim,
      cli: s.cli,
      out: capturedOutput().out,
      timeScale: 1,
    });
    // netbird-server dies once it has started (an entrypoint that exits 1).
    const kill = setInterval(() => {
      if (s.sim.containers.has('netbird-server')) {
        clearInterval(kill);
        s.sim.kill('netbird-server', 1);
      }
    }, 5);
    const result = await r;
    clearInterval(kill);
    expect(s.sim.listening).toBe(0);
    expect(result.ok).toBe(false);
    expect(result.failure?.step).toBe('netbird-server');
    expect(result.failure?.message).toMatch(/netbird-server exited with code 1 while it was awaited/);
  }, 30_000);

  /** Waits (bounded) until `pred` holds of the simulator's host: a point in a run the test acts at. */
  const until = (pred: () => boolean, what: string) =>
    vi.waitFor(
      () => {
        if (!pred()) throw new Error(`never reached: ${what}`);
      },
      { timeout: 10_000, interval: 2 },
    );
  /** A run under way, its output read as it comes: the test acts on the host meanwhile. */
  function started(s: ReturnType<typeof setup>, timeScale: number) {
    const { out, text } = capturedOutput();
    const running = runBifrostBootstrap({ executor: s.sim, cli: s.cli, out, timeScale });
    return { running, text };
  }
  const upOf = (sim: DockerSimulator, svc: string) => upCalls(sim).find((u) => u.services.includes(svc));
  const inspectsOf = (sim: DockerSimulator, svc: string, from: number) =>
    sim.calls.filter((c) => c.argv[1] === 'inspect' && c.argv.includes(svc) && c.startedAt >= from);

  it('the events stream lost while a wait is pending: it says so, polls, and the container turning healthy afterwards finishes the wait', async () => {
    // netbird-server turns healthy only when the test says, after the stream is gone: only a read of
    // the present can tell. Its deadline (120 s × 0.05) ends before the 15 s quiet-container check, so a
    // wait left on the dead stream fails at its deadline instead of being rescued by that check.
    const timeline = { ...referenceTimeline(MS).timeline, 'netbird-server': { healthyAfterMs: 10 ** 9 } };
    const s = setup({ sim: { timeline } });
    const { running, text } = started(s, 0.05);
    let settled = false;
    running
      .finally(() => {
        settled = true;
      })
      .catch(() => {});
    // The wait is pending: netbird-server's up returned and the wait read its present state (starting).
    let healthyAt = Number.NaN;
    try {
      await until(() => {
        const up = upOf(s.sim, 'netbird-server');
        return up !== undefined && inspectsOf(s.sim, 'netbird-server', up.endedAt).length > 0;
      }, 'the wait on netbird-server');
      expect(s.sim.listening).toBe(1);
      const lost = s.sim.now();
      s.sim.endEventStreams();
      // The engine has taken the loss in (it said so) and read the container since, still starting; an
      // engine that does neither is left to the assertions below (its wait ends at its deadline).
      await until(
        () =>
          settled ||
          (/docker events is not available/.test(text()) &&
            inspectsOf(s.sim, 'netbird-server', lost).length > 0),
        'a read of netbird-server after the stream ended',
      ).catch(() => {});
      s.sim.turnHealthy('netbird-server');
      healthyAt = s.sim.now();
    } finally {
      // Whatever happened above, the run ends before its bundle is removed.
      await running.catch(() => {});
    }
    const r = await running;
    const log = text();
    expect(s.sim.listening).toBe(0);
    expect(r.failure, log).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(status(r, 'netbird-server')).toBe('done');
    // Said once, naming the stream and why it ended.
    expect(log.match(/docker events is not available/g)).toHaveLength(1);
    expect(log).toContain(
      'docker events is not available on docker simulator (error during connect: unexpected EOF): polling docker inspect instead',
    );
    // Not counted ready before it was: what follows it started only once it had turned healthy.
    for (const svc of ['netbird-dashboard', 'netbird-agent'])
      expect(must(upOf(s.sim, svc), `${svc} up`).startedAt).toBeGreaterThanOrEqual(healthyAt);
  }, 30_000);

  it('after a failing step nothing new is started: a sibling still running finishes, what waits on it does not start', async () => {
    // Two branches: NetBird's server fails (it exits) while Authentik's migration, on the other branch,
    // is still running (held open by the test until the failure is reported).
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let migrating = false;
    const timeline = { ...referenceTimeline(MS).timeline, 'netbird-server': { healthyAfterMs: 10 ** 9 } };
    const s = setup({
      sim: {
        timeline,
        beforeCall: (argv) => {
          if (!argv.includes('migrate')) return undefined;
          migrating = true;
          return held;
        },
      },
    });
    const { running, text } = started(s, 1);
    let failedAt = Number.NaN;
    try {
      await until(() => migrating && s.sim.containers.has('netbird-server'), 'the migration running');
      s.sim.kill('netbird-server', 3);
      await until(() => /FAILED netbird-server/.test(text()), 'the failure reported');
      failedAt = s.sim.now();
    } finally {
      release();
      await running.catch(() => {});
    }
    const r = await running;
    expect(s.sim.listening).toBe(0);
    expect(r.ok).toBe(false);
    expect(r.failure?.step, text()).toBe('netbird-server');
    expect(r.failure?.message).toMatch(/netbird-server exited with code 3 while it was awaited/);
    // The migration was under way and finished; nothing started after the failure: no up, run or exec.
    expect(status(r, 'authentik-migrate')).toBe('done');
    const after = s.sim.calls.filter((c) => c.startedAt >= failedAt);
    expect(after.map((c) => c.argv.join(' '))).toEqual([]);
    for (const id of ['authentik-server', 'authentik-worker', 'netbird-mgmt-token', 'netbird-dashboard'])
      expect(status(r, id)).toBe('not run');
    expect(upOf(s.sim, 'authentik-server')).toBeUndefined();
  }, 30_000);

  it('a container that crashed since the last run, its inputs unchanged, is started again and awaited healthy', async () => {
    // A slow health (200 ms): a run that did not wait for it would end before it came.
    const s = setup({
      sim: { timeline: { ...referenceTimeline(MS).timeline, traefik: { healthyAfterMs: 200 } } },
    });
    expect((await run(s)).ok).toBe(true);
    const before = must(s.sim.containers.get('traefik'), 'traefik').id;
    s.sim.kill('traefik', 137);
    const since = s.sim.now();
    const r = await run(s);
    const endedNs = BigInt(Date.now()) * 1_000_000n;
    expect(r.failure, r.log).toBeUndefined();
    // Started again by an up (compose starts the stopped container), then awaited: the step is done on
    // its health, not left alone as "up to date".
    const up = must(
      upCalls(s.sim).find((u) => u.startedAt >= since && u.services.includes('traefik')),
      'an up of traefik',
    );
    expect(up.argv).toEqual(expect.arrayContaining(['up', '-d', '--no-deps']));
    const traefik = must(s.sim.containers.get('traefik'), 'traefik');
    expect(traefik.exitCode).toBeUndefined();
    expect(traefik.id).toBe(before);
    expect(r.steps.find((x) => x.id === 'traefik')?.detail).toMatch(/^healthy after/);
    // Its healthy event came after that start, and before the run ended.
    const events = s.sim.events.filter((e) => e.Actor.Attributes.name === 'traefik');
    const restart = events.map((e) => e.Action).lastIndexOf('start');
    const healthy = must(
      events.slice(restart + 1).find((e) => e.Action === 'health_status: healthy'),
      'a healthy event after the restart',
    );
    expect(healthy.timeNano <= endedNs).toBe(true);
    // Nothing else needed an up.
    expect(
      upCalls(s.sim)
        .filter((u) => u.startedAt >= since)
        .flatMap((u) => u.services),
    ).toEqual(['traefik']);
  });

  it('retries the token with backoff until akadmin exists', async () => {
    const s = setup({ sim: { tokenFailures: 2 } });
    const r = await run(s, 0.01);
    expect(r.ok).toBe(true);
    expect(s.sim.calls.filter((c) => c.argv.includes('exec'))).toHaveLength(3);
    expect(r.log).toMatch(/attempt 1 failed \(ERROR: user akadmin does not exist yet\); retrying/);
    expect(r.log).toContain('minted on attempt 3');
  });

  it('the token waits for authentik-worker: with a worker slower than the server, minted on the first attempt', async () => {
    // The reference timeline makes the worker healthy first, and retries would hide a token step that
    // waited for the server alone: here the worker (which creates akadmin) is the slow one.
    const ref = referenceTimeline(MS);
    const s = setup({
      sim: { timeline: { ...ref.timeline, 'authentik-worker': { healthyAfterMs: 120 * MS } } },
    });
    const r = await run(s);
    expect(r.failure).toBeUndefined();
    expect(s.sim.calls.filter((c) => c.argv.includes('exec'))).toHaveLength(1);
    expect(r.log).not.toMatch(/netbird-mgmt-token: attempt \d+ failed/);
    expect(r.log).toContain('netbird-mgmt-token minted on attempt 1');
  });

  it('gives up on the token at its deadline with the last error', async () => {
    const s = setup({ sim: { tokenFailures: 10_000 } });
    const r = await run(s, 0.01);
    expect(r.ok).toBe(false);
    expect(r.failure?.step).toBe('netbird-mgmt-token');
    expect(r.failure?.message).toMatch(
      /could not mint netbird-mgmt-token in 1\.8 s \(\d+ attempts\); last error: ERROR: user akadmin/,
    );
    expect(s.sim.calls.filter((c) => c.argv.includes('exec')).length).toBeGreaterThan(2);
    // The VPN does not wait on it: NetBird and its proxy came up while Authentik failed to mint.
    expect(status(r, 'netbird-server')).toBe('done');
    expect(status(r, 'netbird-proxy')).toBe('done');
    expect(readFileSync(join(s.bundle.dir, '.secrets.env'), 'utf8')).not.toContain('NB_IDP_MGMT_TOKEN');
  });

  it('remintToken mints though the token is set; the old line stays until a new token is minted', async () => {
    // An old token, as after Authentik's database was restored.
    const { s, path, edited: old } = await deployedThenEdited('NB_IDP_MGMT_TOKEN=old-token-from-a-lost-db');
    // Authentik refuses every attempt: the step fails at its deadline and the file is as it was.
    s.sim.opts.tokenFailures = 10_000;
    const failed = await run(s, 0.01, { remintToken: true });
    expect(failed.failure?.step).toBe('netbird-mgmt-token');
    expect(readFileSync(path, 'utf8')).toBe(old);
    // Authentik answers: the one line now holds the new token, every other line as it was.
    s.sim.opts.tokenFailures = 0;
    const calls = s.sim.calls.length;
    const minted = await run(s, 0.05, { remintToken: true });
    expect(minted.failure).toBeUndefined();
    expect(s.sim.calls.slice(calls).filter((c) => c.argv.includes('exec'))).toHaveLength(1);
    const after = readFileSync(path, 'utf8');
    expect(after.match(/^NB_IDP_MGMT_TOKEN=.*$/gm)).toEqual([
      `NB_IDP_MGMT_TOKEN=${s.bundle.secretsEnv.AUTHENTIK_BOOTSTRAP_TOKEN}`,
    ]);
    const others = (text: string) => text.split('\n').filter((l) => !l.startsWith('NB_IDP_MGMT_TOKEN='));
    expect(others(after)).toEqual(others(old));
  });

  it('a pre-flight that fails writes nothing: env files are rendered only once it has passed', async () => {
    // A changed value the engine would render into env/traefik.env.
    const { s } = await deployedThenEdited('CF_DNS_API_TOKEN="CANARY-changed-cf"');
    const traefikEnv = readFileSync(join(s.bundle.dir, 'env/traefik.env'), 'utf8');
    const { out } = capturedOutput();
    // A docker without the compose plugin.
    const broken = { ...s.cli, compose: ['docker', 'no-such-plugin'] };
    await expect(runBifrostBootstrap({ executor: s.sim, cli: broken, out, timeScale: 0.05 })).rejects.toThrow(
      /docker compose is not available/,
    );
    expect(readFileSync(join(s.bundle.dir, 'env/traefik.env'), 'utf8')).toBe(traefikEnv);
    expect(s.sim.listening).toBe(0);
  });

  it('skips the gated agent with setup guidance and still succeeds', async () => {
    const s = setup({ values: bifrostSecrets({ NB_BIFROST_SETUP_KEY: undefined }) });
    const r = await run(s);
    expect(r.ok).toBe(true);
    expect(status(r, 'netbird-agent')).toBe('skipped');
    expect(upCalls(s.sim).flatMap((u) => u.services)).not.toContain('netbird-agent');
    expect(r.log).toContain('Setup Keys');
    expect(status(r, 'netbird-dashboard')).toBe('done');
  });

  it('refuses to start when required secrets are missing, listing them all', async () => {
    const s = setup({
      values: bifrostSecrets({ NB_DATA_STORE_KEY: undefined, CF_DNS_API_TOKEN: undefined }),
    });
    await expect(run(s)).rejects.toThrow(/CF_DNS_API_TOKEN is missing[\s\S]*NB_DATA_STORE_KEY is missing/);
    expect(upCalls(s.sim)).toEqual([]);
  });

  it('carries values with every awkward character into config.yaml and the env files intact', async () => {
    const awkward = `a&b|c\\d/e"f$g h#i'j\`k\nl: m`;
    const values = bifrostSecrets({
      NB_RELAY_SECRET: `relay-${awkward}`,
      NB_DATA_STORE_KEY: `store-${awkward}`,
      CF_DNS_API_TOKEN: 'cf-a&b|c\\d/e"f$g h#i',
    });
    const s = setup({ values });
    const r = await run(s);
    expect(r.failure).toBeUndefined();
    const config = parse(readFileSync(join(s.bundle.dir, 'netbird/config.yaml'), 'utf8'));
    expect(config.server.authSecret).toBe(`relay-${awkward}`);
    expect(config.server.store.encryptionKey).toBe(`store-${awkward}`);
    expect(s.sim.containers.get('traefik')?.env.CF_DNS_API_TOKEN).toBe('cf-a&b|c\\d/e"f$g h#i');
  });

  it('puts no secret in any argv or stdin, and none in the output', async () => {
    const values = bifrostSecrets();
    const s = setup({ values });
    const r = await run(s);
    expect(r.ok).toBe(true);
    const secrets = allSecretValues(values);
    for (const call of s.sim.calls) {
      for (const secret of secrets) {
        expect(call.argv.join(' ')).not.toContain(secret);
        expect(call.input).not.toContain(secret);
      }
    }
    for (const secret of secrets) expect(r.log).not.toContain(secret);
    expect(r.log).toMatch(/AUTHENTIK_BOOTSTRAP_TOKEN \(\d+ chars\)/);
  });
});

describe('the env files handed to the engine', () => {
  /** The simulator as the engine's executor, every file read through it recorded by path. */
  function recordingReads(sim: DockerSimulator): { executor: Executor; reads: string[] } {
    const reads: string[] = [];
    const files: FileOps = {
      readFile: (path) => {
        reads.push(path);
        return sim.files.readFile(path);
      },
      writeFileAtomic: (path, content, mode) => sim.files.writeFileAtomic(path, content, mode),
      stat: (path) => sim.files.stat(path),
    };
    return {
      executor: { where: sim.where, files, run: (cmd) => sim.run(cmd), close: () => sim.close() },
      reads,
    };
  }

  it('are its source: the host copies are never read, and the minted token goes into .secrets.env beside their values', async () => {
    const s = setup();
    // What provisioning hands over differs from what the host holds in one value: the engine must use it.
    const handed = {
      ...s.bundle.secretsEnv,
      CF_DNS_API_TOKEN: `${s.bundle.secretsEnv.CF_DNS_API_TOKEN}-handed`,
    };
    const { executor, reads } = recordingReads(s.sim);
    const { out } = capturedOutput();
    const r = await runBifrostBootstrap({
      executor,
      cli: s.cli,
      out,
      timeScale: 0.05,
      envFiles: { '.secrets.env': envText(handed), '.env': envText(s.bundle.dotEnv) },
    });
    expect(r.failure).toBeUndefined();
    expect(reads.length, 'the reads recorded').toBeGreaterThan(0);
    expect(reads).not.toContain(join(s.bundle.dir, '.secrets.env'));
    expect(reads).not.toContain(join(s.bundle.dir, '.env'));
    expect(
      parseEnvFile(readFileSync(join(s.bundle.dir, 'env/traefik.env'), 'utf8')).get('CF_DNS_API_TOKEN'),
    ).toBe(handed.CF_DNS_API_TOKEN);
    expect(s.sim.containers.get('traefik')?.env.CF_DNS_API_TOKEN).toBe(handed.CF_DNS_API_TOKEN);
    // The token is written into the host's .secrets.env: the handed text with the token line added.
    const onHost = readFileSync(join(s.bundle.dir, '.secrets.env'), 'utf8');
    expect(onHost.startsWith(envText(handed))).toBe(true);
    expect(parseEnvFile(onHost).get('NB_IDP_MGMT_TOKEN')).toBe(s.bundle.secretsEnv.AUTHENTIK_BOOTSTRAP_TOKEN);
  });

  it('without them (a recovery command, bifrost-bootstrap on the host) the engine reads the host copies', async () => {
    const s = setup();
    const { executor, reads } = recordingReads(s.sim);
    const { out } = capturedOutput();
    const r = await runBifrostBootstrap({ executor, cli: s.cli, out, timeScale: 0.05 });
    expect(r.failure).toBeUndefined();
    expect(reads).toContain(join(s.bundle.dir, '.secrets.env'));
    expect(reads).toContain(join(s.bundle.dir, '.env'));
    expect(
      parseEnvFile(readFileSync(join(s.bundle.dir, 'env/traefik.env'), 'utf8')).get('CF_DNS_API_TOKEN'),
    ).toBe(s.bundle.secretsEnv.CF_DNS_API_TOKEN);
  });
});

describe('envText helper', () => {
  it('round-trips through the engine parser', () => {
    const v = { A: 'x"y\\z\nw' };
    expect(Object.fromEntries(parseEnvFile(envText(v)))).toEqual(v);
  });
});
