/**
 * The EventWatcher against a scripted docker: the events stream is a command that stays open until its
 * signal aborts it, lines are pushed into it, and `docker inspect` answers from a table the test sets.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ContainerState, DockerCli } from '../../scripts/lib/bifrost/docker.ts';
import { ContainerFailedError, EventWatcher, parseEventLine } from '../../scripts/lib/bifrost/events.ts';
import { DeadlineError, StoppedError } from '../../scripts/lib/bifrost/health.ts';
import type { Command, CommandResult, Executor } from '../../scripts/lib/exec/executor.ts';
import { localFiles } from '../../scripts/lib/exec/local.ts';

const CLI: DockerCli = { docker: 'docker', compose: ['docker', 'compose'], dir: '/srv/b' };
const ID = (n: number) => String(n).repeat(64).slice(0, 64);

/** A docker events line as the CLI prints it with --format '{{json .}}'. */
function line(action: string, name: string, id: string, extra: Record<string, string> = {}): string {
  return `${JSON.stringify({
    status: action,
    id,
    from: 'img',
    Type: 'container',
    Action: action,
    Actor: { ID: id, Attributes: { name, image: 'img', ...extra } },
    scope: 'local',
    time: 1,
    timeNano: 1,
  })}\n`;
}

interface Inspected {
  id: string;
  status?: string;
  health?: string;
  exitCode?: number;
}

class ScriptedDocker implements Executor {
  readonly where = 'scripted docker';
  readonly files = localFiles;
  readonly argvs: string[][] = [];
  inspect = new Map<string, Inspected>();
  eventsExit: CommandResult | undefined;
  /** Holds every inspect's answer until it resolves (the inspect has looked; its answer is on the way). */
  gate: Promise<void> | undefined;
  private push: ((chunk: string) => void) | undefined;
  streamAborted = false;

  /** Ends the running events call with an error, as a broken connection to the daemon does. */
  endStream: (stderr: string) => void = () => {};

  emit(chunk: string): void {
    this.push?.(chunk);
  }

  async run(cmd: Command): Promise<CommandResult> {
    this.argvs.push([...cmd.argv]);
    const sub = cmd.argv[1];
    if (sub === 'events') {
      if (this.eventsExit) return this.eventsExit;
      this.push = (chunk) => cmd.onOutput?.(chunk, 'stdout');
      return new Promise((resolve) => {
        this.endStream = (stderr) => resolve({ exitCode: 1, stdout: '', stderr, timedOut: false });
        const done = () => {
          this.streamAborted = true;
          resolve({ exitCode: 0, stdout: '', stderr: '', timedOut: false });
        };
        if (cmd.signal?.aborted) done();
        cmd.signal?.addEventListener('abort', done, { once: true });
      });
    }
    if (sub === 'inspect') {
      const gate = this.gate;
      const found = cmd.argv.slice(2).flatMap((name) => {
        const c = this.inspect.get(name);
        if (!c) return [];
        return [
          {
            Id: c.id,
            Name: `/${name}`,
            State: {
              Status: c.status ?? 'running',
              ...(c.exitCode === undefined ? {} : { ExitCode: c.exitCode }),
              ...(c.health ? { Health: { Status: c.health, Log: [{ Output: 'probe said so' }] } } : {}),
            },
          },
        ];
      });
      await gate;
      return { exitCode: 0, stdout: JSON.stringify(found), stderr: '', timedOut: false };
    }
    return { exitCode: 125, stdout: '', stderr: 'unsupported', timedOut: false };
  }

  async close(): Promise<void> {}

  count(sub: string): number {
    return this.argvs.filter((a) => a[1] === sub).length;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 5));
const watchers: EventWatcher[] = [];
afterEach(async () => {
  for (const w of watchers.splice(0)) {
    w.stop();
    await w.drain();
  }
});

function watcher(
  docker: ScriptedDocker,
  healthchecks: Record<string, boolean | undefined>,
  warn: string[] = [],
) {
  const w = new EventWatcher(docker, CLI, Object.keys(healthchecks), {
    healthcheck: (n) => healthchecks[n],
    maxSeconds: 60,
    warn: (l) => warn.push(l),
  });
  watchers.push(w);
  return w;
}

describe('parseEventLine', () => {
  it('reads the fields of a docker events JSON line; ignores other types and garbage', () => {
    expect(parseEventLine(line('health_status: healthy', 'traefik', ID(1), { exitCode: '0' }))).toEqual({
      id: ID(1),
      action: 'health_status: healthy',
      name: 'traefik',
      exitCode: 0,
    });
    expect(parseEventLine(JSON.stringify({ Type: 'network', Action: 'connect', Actor: { ID: 'x' } }))).toBe(
      undefined,
    );
    expect(parseEventLine('not json')).toBe(undefined);
  });
});

describe('EventWatcher', () => {
  it('opens the stream first, inspects once, reads the present where the wait begins, then waits on events alone', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { traefik: true });
    await w.start();
    expect(docker.argvs.map((a) => a[1])).toEqual(['events', 'inspect']);
    expect(docker.argvs[0]).toContain('container=traefik');
    w.expectStart('traefik');
    const ready = w.waitReady('traefik', 10_000);
    docker.emit(line('start', 'traefik', ID(1)));
    await tick();
    docker.emit(line('health_status: healthy', 'traefik', ID(1)));
    expect(await ready).toMatchObject({ id: ID(1), status: 'running', health: 'healthy' });
    expect(docker.count('inspect')).toBe(2);
  });

  it('a container already healthy that the up left alone counts at once: no event will come', async () => {
    const docker = new ScriptedDocker();
    docker.inspect.set('traefik', { id: ID(1), health: 'healthy' });
    const w = watcher(docker, { traefik: true });
    await w.start();
    w.expectStart('traefik');
    // No event: docker sends one only on a change.
    expect(await w.waitReady('traefik', 2_000)).toMatchObject({ id: ID(1), health: 'healthy' });
  });

  it('a container found unhealthy or exited where the wait begins fails at once, naming it', async () => {
    const docker = new ScriptedDocker();
    docker.inspect.set('traefik', { id: ID(1), health: 'unhealthy' });
    docker.inspect.set('netbird-server', { id: ID(2), status: 'exited', exitCode: 3 });
    const w = watcher(docker, { traefik: true, 'netbird-server': true });
    await w.start();
    w.expectStart('traefik');
    w.expectStart('netbird-server');
    const [unhealthy, exited] = await Promise.allSettled([
      w.waitReady('traefik', 600_000),
      w.waitReady('netbird-server', 600_000),
    ]);
    expect(unhealthy).toMatchObject({
      status: 'rejected',
      reason: { reason: 'unhealthy', container: 'traefik' },
    });
    expect(exited).toMatchObject({ status: 'rejected', reason: { reason: 'died', exitCode: 3 } });
    // Both waits began together: one inspect read both (after the first look).
    expect(docker.count('inspect')).toBe(2);
  });

  it('events heard while the present is being read count on top of what the read saw', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { traefik: true });
    await w.start();
    w.expectStart('traefik');
    docker.inspect.set('traefik', { id: ID(1), health: 'starting' });
    let release = () => {};
    docker.gate = new Promise<void>((r) => {
      release = r;
    });
    const ready = w.waitReady('traefik', 2_000);
    await tick();
    // The healthcheck passed after the inspect looked and before its answer came back.
    docker.emit(line('health_status: healthy', 'traefik', ID(1)));
    release();
    expect(await ready).toMatchObject({ id: ID(1), health: 'healthy' });
  });

  it('a recreated container: the old instance dying does not count; the new one healthy does', async () => {
    const docker = new ScriptedDocker();
    docker.inspect.set('authentik-server', { id: ID(1), health: 'healthy' });
    const w = watcher(docker, { 'authentik-server': true });
    await w.start();
    expect(w.current('authentik-server')?.id).toBe(ID(1));
    w.expectStart('authentik-server');
    // compose recreated it: the new instance runs when the up returns, its healthcheck still starting.
    docker.inspect.set('authentik-server', { id: ID(2), health: 'starting' });
    const ready = w.waitReady('authentik-server', 10_000);
    // The old instance was healthy: that must not end the wait for the new one.
    let settled = false;
    void ready.then(() => {
      settled = true;
    });
    docker.emit(line('die', 'authentik-server', ID(1), { exitCode: '0' }));
    docker.emit(line('health_status: healthy', 'authentik-server', ID(1)));
    await tick();
    expect(settled).toBe(false);
    docker.emit(line('start', 'authentik-server', ID(2)));
    docker.emit(line('health_status: healthy', 'authentik-server', ID(2)));
    expect((await ready).id).toBe(ID(2));
  });

  it('a container that dies while awaited fails at once with its exit code, not at its deadline', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { 'netbird-server': true });
    await w.start();
    w.expectStart('netbird-server');
    const ready = w.waitReady('netbird-server', 600_000);
    docker.emit(line('start', 'netbird-server', ID(3)));
    docker.inspect.set('netbird-server', { id: ID(3), status: 'exited', health: 'unhealthy' });
    docker.emit(line('die', 'netbird-server', ID(3), { exitCode: '2' }));
    const err = await ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ContainerFailedError);
    expect((err as ContainerFailedError).reason).toBe('died');
    expect((err as ContainerFailedError).message).toMatch(/netbird-server exited with code 2/);
  });

  it('compose replacing a container (a die, then a new one running) is not a failure', async () => {
    const docker = new ScriptedDocker();
    docker.inspect.set('traefik', { id: ID(1), health: 'starting' });
    const w = watcher(docker, { traefik: true });
    await w.start();
    const ready = w.waitReady('traefik', 10_000);
    docker.inspect.set('traefik', { id: ID(2), health: 'starting' });
    docker.emit(line('die', 'traefik', ID(1), { exitCode: '0' }));
    await tick();
    docker.emit(line('health_status: healthy', 'traefik', ID(2)));
    expect((await ready).id).toBe(ID(2));
  });

  it('a container gone right after its die is being replaced: the replacement decides', async () => {
    const docker = new ScriptedDocker();
    docker.inspect.set('traefik', { id: ID(1), health: 'starting' });
    const w = watcher(docker, { traefik: true });
    await w.start();
    const ready = w.waitReady('traefik', 10_000);
    docker.inspect.delete('traefik');
    docker.emit(line('die', 'traefik', ID(1), { exitCode: '0' }));
    await tick();
    docker.emit(line('start', 'traefik', ID(2)));
    docker.emit(line('health_status: healthy', 'traefik', ID(2)));
    expect((await ready).id).toBe(ID(2));
  });

  it('unhealthy fails the wait at once', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { 'netbird-proxy': true });
    await w.start();
    w.expectStart('netbird-proxy');
    const ready = w.waitReady('netbird-proxy', 600_000);
    docker.emit(line('start', 'netbird-proxy', ID(4)));
    docker.emit(line('health_status: unhealthy', 'netbird-proxy', ID(4)));
    await expect(ready).rejects.toMatchObject({ reason: 'unhealthy', container: 'netbird-proxy' });
  });

  it('a service without a healthcheck is ready when it runs; one the compose file does not describe is inspected', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { plain: false, unknown: undefined });
    await w.start();
    w.expectStart('plain');
    w.expectStart('unknown');
    const plain = w.waitReady('plain', 10_000);
    const unknown = w.waitReady('unknown', 10_000);
    docker.emit(line('start', 'plain', ID(5)));
    expect((await plain).health).toBe('none');
    // Its image has a healthcheck: not ready until healthy.
    docker.inspect.set('unknown', { id: ID(6), health: 'starting' });
    docker.emit(line('start', 'unknown', ID(6)));
    await tick();
    docker.emit(line('health_status: healthy', 'unknown', ID(6)));
    expect((await unknown).health).toBe('healthy');
  });

  it('a line far longer than any event is dropped; the events after it still count', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { traefik: true });
    await w.start();
    w.expectStart('traefik');
    const ready = w.waitReady('traefik', 10_000);
    docker.emit('x'.repeat(200_000));
    docker.emit('\n');
    docker.emit(line('start', 'traefik', ID(1)));
    docker.emit(line('health_status: healthy', 'traefik', ID(1)));
    expect((await ready).id).toBe(ID(1));
  });

  it('a wait whose event never comes fails at its deadline, naming the container', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { traefik: true });
    await w.start();
    w.expectStart('traefik');
    await expect(w.waitReady('traefik', 30)).rejects.toBeInstanceOf(DeadlineError);
  });

  it('without a stream it says so once and polls instead', async () => {
    const docker = new ScriptedDocker();
    docker.eventsExit = { exitCode: 1, stdout: '', stderr: 'unknown command "events"\n', timedOut: false };
    docker.inspect.set('traefik', { id: ID(7), health: 'healthy' });
    const warn: string[] = [];
    const w = watcher(docker, { traefik: true }, warn);
    await w.start();
    await tick();
    expect(await w.waitReady('traefik', 10_000)).toMatchObject({ health: 'healthy' });
    expect(await w.waitReady('traefik', 10_000)).toMatchObject({ health: 'healthy' });
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatch(/docker events is not available .*unknown command "events".*polling/);
  });

  it('a stream that ends while a wait is pending: it says so once, polls, and the container turning healthy then ends the wait', async () => {
    const docker = new ScriptedDocker();
    const warn: string[] = [];
    const w = watcher(docker, { traefik: true }, warn);
    await w.start();
    docker.inspect.set('traefik', { id: ID(3), health: 'starting' });
    docker.emit(line('start', 'traefik', ID(3)));
    let settled = false;
    // A deadline far shorter than the quiet-container check (60 s here): only a poll can end it in time.
    const ready = w.waitReady('traefik', 5_000).finally(() => {
      settled = true;
    });
    await tick();
    docker.endStream('error during connect: unexpected EOF\n');
    const inspected = docker.count('inspect');
    // Read again since the stream ended, and still starting: the wait goes on.
    await vi.waitFor(() => expect(docker.count('inspect')).toBeGreaterThan(inspected), { interval: 2 });
    expect(settled).toBe(false);
    docker.inspect.set('traefik', { id: ID(3), health: 'healthy' });
    expect(await ready).toMatchObject({ id: ID(3), health: 'healthy' });
    expect(warn).toEqual([
      'docker events is not available on scripted docker (error during connect: unexpected EOF): polling docker inspect instead',
    ]);
  });

  it('stop ends the stream (its signal) and every wait; drain leaves nothing running', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { traefik: true });
    await w.start();
    w.expectStart('traefik');
    const ready = w.waitReady('traefik', 600_000);
    w.stop();
    await expect(ready).rejects.toBeInstanceOf(StoppedError);
    await w.drain();
    expect(docker.streamAborted).toBe(true);
  });

  it('says how a long wait stands from what it knows, without a docker call', async () => {
    const docker = new ScriptedDocker();
    const w = watcher(docker, { traefik: true });
    await w.start();
    w.expectStart('traefik');
    const seen: string[] = [];
    const progressed = new Promise<void>((resolve) => {
      w.onState = (name, state) => {
        seen.push(`${name} ${state?.health}`);
        resolve();
      };
    });
    // Nothing happens: no event, so the progress comes from the watcher's own timer.
    const ready = w.waitReady('traefik', 60_000);
    await progressed;
    expect(seen[0]).toBe('traefik undefined');
    // The first look and the wait's one read of the present; nothing every interval.
    expect(docker.count('inspect')).toBe(2);
    docker.emit(line('start', 'traefik', ID(9)));
    docker.emit(line('health_status: healthy', 'traefik', ID(9)));
    await ready;
  });

  it('a quiet container is inspected once its events have been silent for 15 s', async () => {
    // Only the watcher's interval runs on a fake clock: the scripted docker's own timers stay real.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    try {
      const docker = new ScriptedDocker();
      const w = new EventWatcher(docker, CLI, ['traefik'], {
        healthcheck: () => true,
        maxSeconds: 60,
        warn: () => {},
      });
      watchers.push(w);
      await w.start();
      docker.inspect.set('traefik', { id: ID(8), health: 'starting' });
      const inspectsBefore = docker.count('inspect');
      let settled: ContainerState | undefined;
      const ready = w.waitReady('traefik', 60_000).then((s) => (settled = s));
      // The wait reads the present first (starting), on the real clock.
      while (docker.count('inspect') === inspectsBefore) await new Promise((r) => setTimeout(r, 5));
      // The healthy event is missed (no event comes): an inspect finds it once the container has been
      // quiet for the reconcile interval, not before.
      docker.inspect.set('traefik', { id: ID(8), health: 'healthy' });
      const inspectsAtStart = docker.count('inspect');
      await vi.advanceTimersByTimeAsync(14_000);
      expect(settled).toBeUndefined();
      expect(docker.count('inspect')).toBe(inspectsAtStart);
      await vi.advanceTimersByTimeAsync(16_000);
      await ready;
      expect(settled?.health).toBe('healthy');
      expect(docker.count('inspect')).toBeGreaterThan(inspectsAtStart);
    } finally {
      vi.useRealTimers();
    }
  });
});
