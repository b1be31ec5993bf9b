/**
 * `docker events` on the simulator: Docker's JSON lines for a boot (create, start, then the health
 * events from each container's timeline), the daemon's filter rules, `--since` replay from the event
 * log, a recreate's kill/die/stop/destroy for the old id, abort and `--until` ending the call, and
 * `inspect`'s Config.Healthcheck and State fields.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { connectSsh } from '../scripts/lib/exec/ssh.ts';
import { serveDockerSimulator, writeDockerSimWrapper } from '../scripts/lib/sandbox/docker-sim-server.ts';
import { DockerSimulator, type SimulatorOptions } from '../scripts/lib/sandbox/docker-simulator.ts';
import { findSshd, startSshd } from './harness/sshd.ts';
import { makeBundle } from './helpers/bifrost-fixture.ts';
import { eventually } from './helpers/process.ts';
import { tempDir } from './helpers/temp.ts';

const COMPOSE = ['docker', 'compose', '-f', 'docker-compose.yml'];
const FILTERS = [
  '--filter',
  'type=container',
  '--filter',
  'event=create',
  '--filter',
  'event=start',
  '--filter',
  'event=die',
  '--filter',
  'event=health_status',
];

const sims: DockerSimulator[] = [];
const dirs: string[] = [];
const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const s of sims.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function simulator(opts: Partial<SimulatorOptions> = {}): DockerSimulator {
  const bundle = makeBundle();
  dirs.push(dirname(bundle.dir));
  // The env files the engine would render; empty is enough here.
  mkdirSync(join(bundle.dir, 'env'), { recursive: true });
  for (const name of ['traefik', 'authentik-postgres'])
    writeFileSync(join(bundle.dir, 'env', `${name}.env`), '', { flag: 'a' });
  const sim = new DockerSimulator({
    dir: bundle.dir,
    timeline: { traefik: { healthyAfterMs: 30 }, 'authentik-postgres': { healthyAfterMs: 5 } },
    ...opts,
  });
  sims.push(sim);
  return sim;
}

interface Line {
  status: string;
  id: string;
  from: string;
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: string;
  time: number;
  timeNano: number;
}

/** Starts a `docker events` call; its lines as they arrive, and a wait for the nth one. */
function listen(sim: DockerSimulator, args: string[]) {
  const controller = new AbortController();
  const lines: string[] = [];
  let partial = '';
  const waiters: { n: number; resolve: () => void }[] = [];
  const result = sim.run({
    argv: ['docker', 'events', '--format', '{{json .}}', ...args],
    signal: controller.signal,
    onOutput: (chunk, stream) => {
      if (stream !== 'stdout') return;
      const text = partial + chunk;
      const cut = text.lastIndexOf('\n') + 1;
      lines.push(...text.slice(0, cut).split('\n').filter(Boolean));
      partial = text.slice(cut);
      for (const w of waiters.filter((w) => lines.length >= w.n)) w.resolve();
    },
  });
  return {
    lines,
    parsed: () => lines.map((l) => JSON.parse(l) as Line),
    abort: () => controller.abort(),
    result,
    count: (n: number) =>
      lines.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
}

const summary = (lines: Line[]) => lines.map((l) => `${l.Actor.Attributes.name} ${l.Action}`);

describe('docker events on the simulator', () => {
  it('streams create, start and then health_status lines of a boot, in order, in Docker format', async () => {
    const sim = simulator();
    const events = listen(sim, FILTERS);
    const up = await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik', 'authentik-postgres'] });
    expect(up.exitCode).toBe(0);
    await events.count(6);
    events.abort();
    const r = await events.result;
    expect(r.exitCode).toBe(143);
    const lines = events.parsed();
    expect(summary(lines).slice(0, 4)).toEqual([
      'traefik create',
      'traefik start',
      'authentik-postgres create',
      'authentik-postgres start',
    ]);
    // Then each one's healthcheck passes (timers of 5 and 30 ms: which fires first is the machine's load's
    // to decide, so the order of these two is not asserted).
    expect(summary(lines).slice(4).sort()).toEqual([
      'authentik-postgres health_status: healthy',
      'traefik health_status: healthy',
    ]);
    const traefik = sim.containers.get('traefik');
    const start = lines[1] as Line;
    expect(start).toMatchObject({
      status: 'start',
      id: traefik?.id,
      from: 'traefik:v3.3',
      Type: 'container',
      Action: 'start',
      Actor: {
        ID: traefik?.id,
        Attributes: { name: 'traefik', image: 'traefik:v3.3', 'com.docker.compose.service': 'traefik' },
      },
      scope: 'local',
    });
    expect(start.id).toMatch(/^[0-9a-f]{64}$/);
    // Docker's field order, and timeNano printed as an exact integer.
    expect(Object.keys(start)).toEqual([
      'status',
      'id',
      'from',
      'Type',
      'Action',
      'Actor',
      'scope',
      'time',
      'timeNano',
    ]);
    const rawNano = /"timeNano":(\d+)\}$/.exec(events.lines[1] as string)?.[1] ?? '';
    expect(rawNano).toMatch(/^\d{19}$/);
    expect(BigInt(rawNano) / 1_000_000_000n).toBe(BigInt(start.time));
    // traefik's own health line (of the two, whichever came first).
    expect(lines.slice(4).find((l) => l.Actor.Attributes.name === 'traefik')).toMatchObject({
      status: 'health_status: healthy',
      id: traefik?.id,
    });
    expect(r.stdout).toBe(`${events.lines.join('\n')}\n`);
    // The call is recorded, with its start and end.
    const call = sim.calls.find((c) => c.argv[1] === 'events');
    expect(call?.endedAt).toBeGreaterThanOrEqual(call?.startedAt ?? Number.POSITIVE_INFINITY);
  });

  it('applies filters like the daemon: container= by name or id prefix, event= prefix for health_status', async () => {
    const sim = simulator();
    const byName = listen(sim, [...FILTERS, '--filter', 'container=traefik']);
    const exactEvents = listen(sim, ['--filter', 'event=start', '--filter', 'event=health_status: healthy']);
    const noHealth = listen(sim, ['--filter', 'event=create', '--filter', 'container=authentik-postgres']);
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik', 'authentik-postgres'] });
    const pgId = sim.containers.get('authentik-postgres')?.id ?? '';
    const byId = listen(sim, ['--since', '0', '--filter', `container=${pgId.slice(0, 12)}`]);
    await byName.count(3);
    await exactEvents.count(4);
    await byId.count(3);
    for (const l of [byName, exactEvents, noHealth, byId]) l.abort();
    await Promise.all([byName.result, exactEvents.result, noHealth.result, byId.result]);
    expect(summary(byName.parsed())).toEqual([
      'traefik create',
      'traefik start',
      'traefik health_status: healthy',
    ]);
    // Without health_status among them, event values match exactly ("health_status: healthy" does).
    expect(summary(exactEvents.parsed())).toEqual([
      'traefik start',
      'authentik-postgres start',
      'authentik-postgres health_status: healthy',
      'traefik health_status: healthy',
    ]);
    expect(summary(noHealth.parsed())).toEqual(['authentik-postgres create']);
    expect(summary(byId.parsed())).toEqual([
      'authentik-postgres create',
      'authentik-postgres start',
      'authentik-postgres health_status: healthy',
    ]);
    // Docker refuses an unknown filter.
    const bad = await sim.run({ argv: ['docker', 'events', '--filter', 'colour=red', '--until', '0'] });
    expect(bad).toMatchObject({ exitCode: 1, stderr: expect.stringContaining("invalid filter 'colour'") });
  });

  it('a container prefix matches every name it starts, as in Docker', async () => {
    const sim = simulator();
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik', 'authentik-postgres'] });
    const healthy = listen(sim, ['--since', '0', '--filter', 'event=health_status']);
    await healthy.count(2);
    healthy.abort();
    await healthy.result;
    const now = (Date.now() / 1000).toFixed(3);
    const r = await sim.run({
      argv: ['docker', 'events', '--since', '0', '--until', now, '--filter', 'container=authentik'],
    });
    // until is now: the replay only, then the call ends; default (text) format.
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^\S+Z container create [0-9a-f]{64} \(.*name=authentik-postgres\)$/),
      expect.stringMatching(/ container start .*name=authentik-postgres\)$/),
      expect.stringMatching(/ container health_status: healthy .*name=authentik-postgres\)$/),
    ]);
  });

  it('replays the event log with --since, then goes on live', async () => {
    const sim = simulator({ timeline: { traefik: { healthyAfterMs: 0 }, 'authentik-postgres': {} } });
    const t0 = Date.now();
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik'] });
    // Wait for traefik's health event to be logged, through a live listener.
    const first = listen(sim, ['--filter', 'event=health_status']);
    await first.count(1);
    first.abort();
    await first.result;
    const late = listen(sim, [...FILTERS, '--since', `${Math.floor(t0 / 1000)}`]);
    await late.count(3);
    expect(summary(late.parsed())).toEqual([
      'traefik create',
      'traefik start',
      'traefik health_status: healthy',
    ]);
    // A container that never gets healthy reports unhealthy, live.
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'authentik-postgres'] });
    await late.count(6);
    late.abort();
    await late.result;
    expect(summary(late.parsed()).slice(3)).toEqual([
      'authentik-postgres create',
      'authentik-postgres start',
      'authentik-postgres health_status: unhealthy',
    ]);
    // A --since after everything replays nothing.
    const none = await sim.run({
      argv: ['docker', 'events', '--since', (Date.now() / 1000 + 60).toFixed(3), '--until', '1'],
    });
    expect(none).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('a recreate stops and removes the old container, then creates and starts the new one', async () => {
    // The old container's health event is pending (300 ms) when it is recreated.
    const sim = simulator({ timeline: { traefik: { healthyAfterMs: 300 } } });
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik'] });
    const oldId = sim.containers.get('traefik')?.id;
    const all = listen(sim, ['--filter', 'container=traefik']);
    await sim.run({ argv: [...COMPOSE, 'up', '-d', '--force-recreate', 'traefik'] });
    const newId = sim.containers.get('traefik')?.id;
    expect(newId).not.toBe(oldId);
    await all.count(7);
    all.abort();
    await all.result;
    const lines = all.parsed();
    expect(lines.map((l) => [l.Action, l.id === oldId ? 'old' : l.id === newId ? 'new' : l.id])).toEqual([
      ['kill', 'old'],
      ['die', 'old'],
      ['stop', 'old'],
      ['destroy', 'old'],
      ['create', 'new'],
      ['start', 'new'],
      // The old container's pending health event was cancelled: only the new one reports.
      ['health_status: healthy', 'new'],
    ]);
    expect(lines[1]?.Actor.Attributes).toMatchObject({ exitCode: '0', name: 'traefik' });
    // An up that changes nothing emits nothing.
    const quiet = listen(sim, []);
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik'] });
    quiet.abort();
    expect((await quiet.result).stdout).toBe('');
  });

  it('abort ends the call; an aborted signal starts nothing; --until ends it; close() ends the rest', async () => {
    const sim = simulator();
    const controller = new AbortController();
    controller.abort();
    const never = await sim.run({ argv: ['docker', 'events'], signal: controller.signal });
    expect(never.spawnError).toBe('aborted before it started');
    expect(sim.calls).toEqual([]);
    const until = await sim.run({
      argv: ['docker', 'events', '--until', ((Date.now() + 30) / 1000).toFixed(3)],
    });
    expect(until).toMatchObject({ exitCode: 0, stdout: '' });
    const open = sim.run({ argv: ['docker', 'events'] });
    await sim.close();
    expect(await open).toMatchObject({ exitCode: 1 });
    expect(sim.calls.map((c) => c.argv[1])).toEqual(['events', 'events']);
  });

  it('inspect shows Config.Healthcheck and the State fields a watcher reads', async () => {
    const sim = simulator({
      timeline: { traefik: { healthyAfterMs: 0 }, 'authentik-postgres': { healthcheck: false } },
    });
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik', 'authentik-postgres'] });
    const r = await sim.run({ argv: ['docker', 'inspect', 'traefik', 'authentik-postgres'] });
    const [traefik, postgres] = JSON.parse(r.stdout) as {
      Config: { Healthcheck?: { Test: string[]; Interval: number } };
      State: { Status: string; Running: boolean; StartedAt: string; Health?: { Status: string } };
    }[];
    expect(traefik?.Config.Healthcheck?.Test).toEqual(['CMD', 'traefik', 'healthcheck', '--ping']);
    expect(traefik?.Config.Healthcheck?.Interval).toBeGreaterThan(0);
    expect(traefik?.State).toMatchObject({ Status: 'running', Running: true, Health: { Status: 'healthy' } });
    expect(Number.isNaN(Date.parse(traefik?.State.StartedAt ?? ''))).toBe(false);
    expect(postgres?.Config.Healthcheck).toBeUndefined();
    expect(postgres?.State.Health).toBeUndefined();
  });
});

describe('docker events through the simulator socket (docker-sim-server and its bash wrapper)', () => {
  async function served() {
    const sim = simulator();
    const dir = tempDir('sf-sim-sock-');
    dirs.push(dir);
    const server = await serveDockerSimulator(sim);
    servers.push(server);
    const docker = await writeDockerSimWrapper(join(dir, 'docker'), server);
    const eventsEnded = () => sim.calls.some((c) => c.argv[1] === 'events');
    return { sim, docker, eventsEnded };
  }

  it('the bash wrapper passes argv, stdin and output through byte for byte, with the exit code', async () => {
    // Every control character, backslash sequences printf would interpret, % directives, non-ASCII
    // text, NUL, and no final newline.
    const tricky = `${Array.from({ length: 127 }, (_, i) => String.fromCharCode(i + 1)).join('')}\\c \\n \\0101 %s %b é🔑\0end`;
    const seen: { argv: string[]; input: string }[] = [];
    const fake = {
      run: async (call: {
        argv: string[];
        input: string;
        onOutput(data: string, stream: 'stdout' | 'stderr'): void;
      }) => {
        seen.push({ argv: call.argv, input: call.input });
        call.onOutput(tricky, 'stdout');
        call.onOutput(`err ${tricky}`, 'stderr');
        return { exitCode: 7 };
      },
    } as unknown as DockerSimulator;
    const dir = tempDir('sf-sim-bytes-');
    dirs.push(dir);
    const server = await serveDockerSimulator(fake);
    servers.push(server);
    const docker = await writeDockerSimWrapper(join(dir, 'docker'), server);
    const argv = ['a b', '', "it's", '$HOME', '--format', '{{json .}}', 'multi\nline', '\\n'];
    const input = `print("x")\n${tricky.replace('\0', '')}\n`;
    const child = spawn(docker, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end(input);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(seen).toEqual([{ argv: ['docker', ...argv], input }]);
    expect(Buffer.concat(out).toString('utf8')).toBe(tricky);
    expect(Buffer.concat(err).toString('utf8')).toBe(`err ${tricky}`);
    expect(code).toBe(7);
  });

  it('a simulator that is gone: exit 125 naming it', async () => {
    const dir = tempDir('sf-sim-gone-');
    dirs.push(dir);
    const server = await serveDockerSimulator(simulator());
    const docker = await writeDockerSimWrapper(join(dir, 'docker'), server);
    await server.close();
    const r = spawnSync(docker, ['ps'], { encoding: 'utf8', input: '' });
    expect(r.status).toBe(125);
    expect(r.stderr).toBe(`docker (sandbox): cannot reach the simulator at 127.0.0.1:${server.port}\n`);
  });

  it('a real child process prints each line as it happens; killing it ends the call', async () => {
    const { sim, docker, eventsEnded } = await served();
    const child = spawn(docker, ['events', '--format', '{{json .}}', '--filter', 'event=start'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, sig) => r(sig)));
    let out = '';
    const firstLine = new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        if (out.includes('\n')) resolve();
      }),
    );
    // Once the client's call listens on the simulator, a container starts.
    expect(await eventually(() => sim.listening === 1)).toBe(true);
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik'] });
    // The line arrives while the child still runs: it only ends when killed.
    await firstLine;
    expect(JSON.parse(out.split('\n')[0] as string)).toMatchObject({
      Action: 'start',
      id: sim.containers.get('traefik')?.id,
    });
    expect(eventsEnded()).toBe(false);
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
    expect(await eventually(eventsEnded)).toBe(true);
    expect(sim.listening).toBe(0);
  });

  it('through the local executor: streamed lines, abort ends the client and the simulator call', async () => {
    const { sim, docker, eventsEnded } = await served();
    const controller = new AbortController();
    const lines: string[] = [];
    let seenStart!: () => void;
    const started = new Promise<void>((r) => {
      seenStart = r;
    });
    const run = new LocalExecutor().run({
      argv: [docker, 'events', '--format', '{{json .}}', '--filter', 'container=traefik'],
      signal: controller.signal,
      onOutput: (chunk, stream) => {
        if (stream !== 'stdout') return;
        lines.push(...chunk.split('\n').filter(Boolean));
        if (lines.some((l) => l.includes('"Action":"start"'))) seenStart();
      },
    });
    expect(await eventually(() => sim.listening === 1)).toBe(true);
    await sim.run({ argv: [...COMPOSE, 'up', '-d', 'traefik'] });
    await started;
    controller.abort();
    const r = await run;
    expect(r.exitCode).toBe(143);
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).Action),
    ).toEqual(expect.arrayContaining(['create', 'start']));
    expect(await eventually(eventsEnded)).toBe(true);
    expect(sim.listening).toBe(0);
    // A short call through the same socket still answers whole.
    const version = await new LocalExecutor().run({ argv: [docker, 'version'] });
    expect(version).toMatchObject({ exitCode: 0, stdout: 'Docker version 28.2.2 (simulator)\n' });
  });
});

const sshd = findSshd('docker events over SSH (apt-get install openssh-server)');

describe.skipIf(!sshd)('docker events over SSH, through the simulator client', () => {
  it('streams the lines over the one connection; abort ends the remote client and the simulator call', async () => {
    const sim = simulator();
    const dir = tempDir('sf-sim-ssh-');
    dirs.push(dir);
    const server = await startSshd(sshd as string);
    servers.push({ close: () => server.stop() });
    const simServer = await serveDockerSimulator(sim);
    servers.push(simServer);
    const docker = await writeDockerSimWrapper(join(dir, 'docker'), simServer);
    // sshd's test user must reach the wrapper and the socket.
    if (process.getuid?.() === 0) chmodSync(dir, 0o711);
    const ssh = await connectSsh({
      host: server.host,
      port: server.port,
      user: server.user,
      identity: server.identity,
      knownHosts: server.knownHosts,
    });
    try {
      const controller = new AbortController();
      let text = '';
      const run = ssh.run({
        argv: [docker, 'events', '--format', '{{json .}}', '--filter', 'event=health_status'],
        signal: controller.signal,
        onOutput: (chunk, stream) => {
          if (stream === 'stdout') text += chunk;
          if (text.includes('\n')) controller.abort();
        },
      });
      expect(await eventually(() => sim.listening === 1)).toBe(true);
      await sim.run({ argv: [...COMPOSE, 'up', '-d', 'authentik-postgres'] });
      const r = await run;
      expect(r.exitCode).toBe(143);
      expect(JSON.parse(r.stdout.split('\n')[0] as string)).toMatchObject({
        Action: 'health_status: healthy',
        Actor: { Attributes: { name: 'authentik-postgres' } },
      });
      expect(await eventually(() => sim.listening === 0)).toBe(true);
      // No client is left on the remote side.
      const left = execFileSync('ps', ['-eo', 'args']).toString('utf8');
      expect(left).not.toContain(`${docker}-client.mjs events`);
    } finally {
      await ssh.close();
    }
  });
});
