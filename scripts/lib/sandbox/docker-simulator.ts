/**
 * A fast stand-in for the Docker CLI subset the Bifrost engine uses (bifrost/docker.ts), with scripted health
 * timelines. It is an Executor: the engine runs against it exactly as against a host, and every call
 * (argv and stdin) is recorded for tests to inspect. The bundle directory is real and local.
 *
 * It follows compose's own rules where the engine depends on them: `up -d` leaves an up-to-date
 * container alone and recreates one whose env files changed, but not one whose bind-mounted file
 * changed (which is why the engine passes --force-recreate then); missing env files and required
 * ${VAR:?} values fail like compose does.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { parseEnvFile } from '../bifrost/env-file.ts';
import type { Command, CommandResult, Executor } from '../exec/executor.ts';
import { abortedBeforeStart, localFiles } from '../exec/local.ts';
import {
  type DockerEvent,
  eventJson,
  eventMatches,
  eventText,
  eventTimeNs,
  goDurationNs,
  parseEventFilters,
} from './docker-events.ts';

export interface ServiceTimeline {
  /** Milliseconds from container start until its healthcheck passes; undefined: never healthy. */
  healthyAfterMs?: number;
  logs?: string[];
  /** Whether the container has a healthcheck; default: whether its compose service defines one. */
  healthcheck?: boolean;
}

export interface SimulatorOptions {
  /** The bundle directory (docker-compose.yml and its files). */
  dir: string;
  timeline: Readonly<Record<string, ServiceTimeline>>;
  /** How long `run --rm … migrate` takes. */
  migrateMs?: number;
  /** What every CLI call costs, like a real docker CLI process (~100 ms). */
  callLatencyMs?: number;
  /** `ak shell` fails this many times ("akadmin does not exist yet") before it succeeds. */
  tokenFailures?: number;
  /** Log noise Authentik prints around the TOKEN line. */
  tokenNoise?: string[];
  /** Whether `cloud-init` exists on the simulated host. */
  cloudInit?: boolean;
  /**
   * How long an event takes to reach a running `docker events` call (a stream over SSH lags the daemon):
   * a command's own answer can then come back before the events it caused.
   */
  eventLatencyMs?: number;
  /**
   * Called as each CLI call (but `docker events`) begins; the call goes on once what it returns settles:
   * a test holds a call open (a migration still running) until the moment it chooses.
   */
  beforeCall?: (argv: readonly string[]) => Promise<void> | undefined;
}

export interface RecordedCall {
  argv: string[];
  input: string;
  startedAt: number;
  endedAt: number;
}

/**
 * A simulator's host as data (its containers, how often each was created, the daemon's event log), so that
 * a simulator in a later process goes on where this one stopped (scripts/rehearse.ts keeps one host across
 * commands). Container times are wall-clock milliseconds; event times exact nanoseconds as strings.
 */
export interface SimulatorState {
  version: 1;
  containers: (Omit<Container, 'startedAt'> & { startedAtMs: number; healthPending: boolean })[];
  creations: Record<string, number>;
  events: (Omit<DockerEvent, 'timeNano'> & { timeNano: string })[];
  tokenAttempts: number;
  /** The proxy access tokens `token create` minted, in order (absent in states saved before them). */
  proxyTokens?: string[];
}

interface Container {
  id: string;
  service: string;
  image: string;
  /** Docker's Config.Healthcheck (durations in ns), or undefined without one. */
  healthcheck?: Record<string, unknown>;
  startedAt: number;
  /** Environment as the container received it (env files and interpolation at creation). */
  env: Record<string, string>;
  /** compose's config hash: what compose compares to decide on a recreate during `up -d`. */
  configHash: string;
  /** Set once its main process exited (kill()): docker keeps the container, not running. */
  exitCode?: number;
  /** Set once its healthcheck started failing (turnUnhealthy()). */
  failing?: boolean;
  /**
   * Its timeline as it stood when it was created: a container's health follows its own image and config,
   * so a timeline changed later (a test's next instance that never gets healthy) is the next instance's.
   */
  timeline?: ServiceTimeline;
}

interface ServiceDef {
  image?: string;
  healthcheck?: { test?: string[] | string; disable?: boolean } & Record<string, unknown>;
  env_file?: string[] | string;
  environment?: Record<string, string> | string[];
  volumes?: string[];
}

const ok = (stdout = '', stderr = ''): CommandResult => ({ exitCode: 0, stdout, stderr, timedOut: false });
const fail = (stderr: string, exitCode = 1, stdout = ''): CommandResult => ({
  exitCode,
  stdout,
  stderr,
  timedOut: false,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How many events the daemon keeps for `--since` (moby daemon/events: eventsLimit). */
const EVENT_LOG_LIMIT = 256;
/** Exit status of a docker CLI ended by SIGTERM (128 + 15), which is what an aborted `events` call reports. */
const TERMINATED = 143;

/** One running `docker events` call. */
interface EventStream {
  deliver(ev: DockerEvent): void;
  /** Ends the call (the simulator closed). */
  end(): void;
}

/**
 * The reference health timeline of the Bifrost plan, shortened for the sandbox (demo, rehearse): every
 * second of the real one is 20 ms.
 */
export const SANDBOX_TIMELINE = {
  timeline: Object.fromEntries(
    Object.entries({
      traefik: 3,
      'authentik-postgres': 8,
      'authentik-server': 45,
      'authentik-worker': 40,
      'netbird-server': 4,
      'netbird-dashboard': 3,
      'netbird-proxy': 3,
      'netbird-agent': 4,
    }).map(([name, sec]) => [name, { healthyAfterMs: sec * 20 }]),
  ),
  migrateMs: 6 * 20,
};

/** The engine's deadlines and backoffs for that timeline (SECRETS_FLOW_TIME_SCALE). */
export const SANDBOX_TIME_SCALE = '0.05';

export class DockerSimulator implements Executor {
  readonly where = 'docker simulator';
  readonly files = localFiles;
  readonly calls: RecordedCall[] = [];
  readonly containers = new Map<string, Container>();
  /** How many times each service's container was created (1 = started once, 2 = recreated once). */
  readonly creations = new Map<string, number>();
  /** The daemon's event log: the last 256 events, for `docker events --since`. */
  readonly events: DockerEvent[] = [];
  private readonly streams = new Set<EventStream>();
  /** Pending health events by container id. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private lastNano = 0n;
  private tokenAttempts = 0;
  /** The proxy access tokens netbird-server's store holds: each `token create` adds one. */
  readonly proxyTokens: string[] = [];
  private readonly t0 = Date.now();

  constructor(readonly opts: SimulatorOptions) {}

  /** How many `docker events` calls are running (listening for events) now. */
  get listening(): number {
    return this.streams.size;
  }

  /** Cancels pending health events and ends every running `docker events` call. */
  async close(): Promise<void> {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.endEventStreams();
  }

  /**
   * The daemon's connection to every running `docker events` call breaks (as a restarted dockerd or a
   * proxy's idle cut does): each call ends with the CLI's error; the containers run on, and what happens
   * to them from now on reaches no stream.
   */
  endEventStreams(): void {
    for (const s of [...this.streams]) s.end();
  }

  /** The host's state as data: what `restore` takes up in another simulator, in another process. */
  snapshot(): SimulatorState {
    return {
      version: 1,
      containers: [...this.containers.values()].map(({ startedAt, ...c }) => ({
        ...c,
        startedAtMs: this.t0 + startedAt,
        healthPending: this.timers.has(c.id),
      })),
      creations: Object.fromEntries(this.creations),
      events: this.events.map((ev) => ({ ...ev, timeNano: String(ev.timeNano) })),
      tokenAttempts: this.tokenAttempts,
      proxyTokens: [...this.proxyTokens],
    };
  }

  /**
   * Takes up a snapshot, replacing this simulator's host: the containers run on (their health as their age
   * says, a health event still due is emitted when due), and `docker events --since` replays the log.
   */
  restore(state: SimulatorState): void {
    if (state.version !== 1) throw new Error(`simulator state version ${state.version} is not 1`);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.containers.clear();
    for (const { startedAtMs, healthPending, ...saved } of state.containers) {
      const c: Container = { ...saved, startedAt: startedAtMs - this.t0 };
      this.containers.set(c.service, c);
      if (healthPending) this.scheduleHealth(c);
    }
    this.creations.clear();
    for (const [service, n] of Object.entries(state.creations)) this.creations.set(service, n);
    this.events.splice(
      0,
      this.events.length,
      ...state.events.map((ev) => ({ ...ev, timeNano: BigInt(ev.timeNano) })),
    );
    // The log is in time order, so its last event is the latest.
    this.lastNano = this.events.at(-1)?.timeNano ?? 0n;
    this.tokenAttempts = state.tokenAttempts;
    this.proxyTokens.splice(0, this.proxyTokens.length, ...(state.proxyTokens ?? []));
  }

  /** Milliseconds since the simulator was made; the clock of every recorded call. */
  now(): number {
    return Date.now() - this.t0;
  }

  async run(cmd: Command): Promise<CommandResult> {
    if (cmd.signal?.aborted) return abortedBeforeStart();
    if (cmd.argv[1] === 'events') return this.eventsCall(cmd);
    const startedAt = this.now();
    const hold = this.opts.beforeCall?.(cmd.argv);
    if (hold) await hold;
    // Like a docker CLI process: most of its cost is start-up, then it reads or changes the daemon's
    // state, so what it reports (or starts) is as of the end of the call.
    if (this.opts.callLatencyMs) await sleep(this.opts.callLatencyMs);
    const result = await this.dispatch([...cmd.argv], cmd.input ?? '');
    this.calls.push({ argv: [...cmd.argv], input: cmd.input ?? '', startedAt, endedAt: this.now() });
    if (result.stdout) cmd.onOutput?.(result.stdout, 'stdout');
    if (result.stderr) cmd.onOutput?.(result.stderr, 'stderr');
    return result;
  }

  private async dispatch(argv: string[], input: string): Promise<CommandResult> {
    const [bin = '', sub, ...rest] = argv;
    if (bin === 'cloud-init') {
      return this.opts.cloudInit
        ? ok('status: done\n')
        : { ...fail('', 127), spawnError: 'cloud-init: not found' };
    }
    if (bin.endsWith('docker-compose')) return this.compose([sub ?? '', ...rest]);
    if (sub === 'compose') return this.compose(rest);
    if (sub === 'inspect') return this.inspect(rest);
    if (sub === 'exec') return this.exec(rest, input);
    if (sub === 'logs') return this.logs(rest);
    if (sub === 'version') return ok('Docker version 28.2.2 (simulator)\n');
    return fail(`simulator: unsupported command: ${argv.join(' ')}\n`, 125);
  }

  private async compose(args: string[]): Promise<CommandResult> {
    // -f FILE --project-directory DIR SUBCOMMAND …
    const rest = [...args];
    while (rest[0]?.startsWith('-'))
      rest.splice(0, rest[0] === '-f' || rest[0] === '--project-directory' ? 2 : 1);
    const [sub, ...more] = rest;
    if (sub === 'version') return ok('Docker Compose version v2.29.0 (simulator)\n');
    const services = this.services();
    if (sub === 'up') {
      const flags = more.filter((a) => a.startsWith('-'));
      const names = more.filter((a) => !a.startsWith('-'));
      for (const name of names) {
        const def = services[name];
        if (!def) return fail(`no such service: ${name}\n`);
        const problem = this.missingInputs(def);
        if (problem) return fail(problem);
      }
      for (const name of names)
        this.up(name, services[name] as ServiceDef, flags.includes('--force-recreate'));
      return ok('', names.map((n) => ` Container ${n}  Started\n`).join(''));
    }
    if (sub === 'run') {
      const names = more.filter((a) => !a.startsWith('-'));
      if (names[0] !== 'authentik-server' || names[1] !== 'migrate')
        return fail(`simulator: unsupported run ${names}\n`);
      await sleep(this.opts.migrateMs ?? 0);
      return ok('Operations to perform: migrate\nNo migrations to apply.\n');
    }
    return fail(`simulator: unsupported compose command ${sub}\n`, 125);
  }

  private services(): Record<string, ServiceDef> {
    const text = readFileSync(join(this.opts.dir, 'docker-compose.yml'), 'utf8');
    if (this.composeCache?.text !== text) {
      const doc = parse(text, { merge: true }) as { services: Record<string, ServiceDef> };
      this.composeCache = { text, services: doc.services };
    }
    return this.composeCache.services;
  }

  private composeCache?: { text: string; services: Record<string, ServiceDef> };

  private envFiles(def: ServiceDef): string[] {
    return def.env_file === undefined ? [] : Array.isArray(def.env_file) ? def.env_file : [def.env_file];
  }

  private readDotEnv(): Map<string, string> {
    try {
      return parseEnvFile(readFileSync(join(this.opts.dir, '.env'), 'utf8'));
    } catch {
      return new Map();
    }
  }

  /** compose refuses to start a service whose env file is missing or whose ${VAR:?} has no value. */
  private missingInputs(def: ServiceDef): string | undefined {
    for (const file of this.envFiles(def)) {
      try {
        readFileSync(join(this.opts.dir, file));
      } catch {
        return `Couldn't find env file: ${join(this.opts.dir, file)}\n`;
      }
    }
    const dotEnv = this.readDotEnv();
    for (const m of JSON.stringify(def.environment ?? {}).matchAll(/\$\{([A-Z0-9_]+):\?/g)) {
      if (!dotEnv.get(m[1] as string)) return `required variable ${m[1]} is missing a value\n`;
    }
    return undefined;
  }

  private resolvedEnv(def: ServiceDef): Record<string, string> {
    const env: Record<string, string> = {};
    for (const file of this.envFiles(def)) {
      for (const [k, v] of parseEnvFile(readFileSync(join(this.opts.dir, file), 'utf8'))) env[k] = v;
    }
    const dotEnv = this.readDotEnv();
    for (const [k, v] of Object.entries(def.environment ?? {})) {
      env[k] = String(v).replace(
        /\$\{([A-Z0-9_]+)(?::\?[^}]*)?\}/g,
        (_m, name: string) => dotEnv.get(name) ?? '',
      );
    }
    return env;
  }

  private up(service: string, def: ServiceDef, force: boolean): void {
    const env = this.resolvedEnv(def);
    const configHash = createHash('sha256')
      .update(JSON.stringify([def, env]))
      .digest('hex');
    const existing = this.containers.get(service);
    if (existing && !force && existing.configHash === configHash) {
      // compose starts a stopped container again (same id); a running one it leaves alone.
      if (existing.exitCode !== undefined) {
        existing.exitCode = undefined;
        existing.startedAt = this.now();
        this.emit(existing, 'start');
        if (existing.healthcheck) this.scheduleHealth(existing);
      }
      return;
    }
    if (existing) {
      // compose stops the old container (SIGTERM), removes it, then creates the new one.
      this.cancelHealth(existing);
      this.emit(existing, 'kill', { signal: '15' });
      this.emit(existing, 'die', { exitCode: '0', execDuration: '1' });
      this.emit(existing, 'stop');
      this.emit(existing, 'destroy');
    }
    const timeline = this.opts.timeline[service];
    const c: Container = {
      id: randomBytes(32).toString('hex'),
      service,
      image: def.image ?? `${this.project()}-${service}`,
      startedAt: this.now(),
      env,
      configHash,
      timeline: { ...timeline },
    };
    const healthcheck = dockerHealthcheck(def);
    if (timeline?.healthcheck ?? healthcheck !== undefined)
      c.healthcheck = healthcheck ?? { Test: ['CMD', 'true'] };
    this.containers.set(service, c);
    this.creations.set(service, (this.creations.get(service) ?? 0) + 1);
    this.emit(c, 'create');
    this.emit(c, 'start');
    if (c.healthcheck) this.scheduleHealth(c);
  }

  /** The container's main process exits with `exitCode` (a crash): `die`, and inspect shows it exited. */
  kill(service: string, exitCode: number): void {
    const c = this.containers.get(service);
    if (!c || c.exitCode !== undefined) return;
    this.cancelHealth(c);
    c.exitCode = exitCode;
    this.emit(c, 'die', { exitCode: String(exitCode), execDuration: '1' });
  }

  /** The container's healthcheck starts failing: `health_status: unhealthy`, as docker sends on the change. */
  turnUnhealthy(service: string): void {
    const c = this.containers.get(service);
    if (!c?.healthcheck || c.exitCode !== undefined || c.failing) return;
    this.cancelHealth(c);
    c.failing = true;
    this.emit(c, 'health_status: unhealthy');
  }

  /** The container's healthcheck passes from now on: `health_status: healthy`, and inspect says so. */
  turnHealthy(service: string): void {
    const c = this.containers.get(service);
    if (!c?.healthcheck || c.exitCode !== undefined) return;
    this.cancelHealth(c);
    c.failing = false;
    c.timeline = { ...c.timeline, healthyAfterMs: 0 };
    this.emit(c, 'health_status: healthy');
  }

  /** compose's project name: the bundle directory's name, as compose normalizes it. */
  private project(): string {
    return basename(this.opts.dir)
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, '');
  }

  /** Health events from timers, as Docker emits them: on a change of status only. */
  private scheduleHealth(c: Container): void {
    const after = (c.timeline ?? this.opts.timeline[c.service])?.healthyAfterMs;
    const status = after === undefined ? 'unhealthy' : 'healthy';
    const timer = setTimeout(
      () => {
        this.timers.delete(c.id);
        this.emit(c, `health_status: ${status}`);
      },
      // Past 50 ms a container that never gets healthy is unhealthy (see health()); the time is counted
      // from its start, which a restored container had before this simulator was made.
      Math.max(0, (after ?? 51) - (this.now() - c.startedAt)),
    );
    // Pending health events never keep the process alive; a running events call does (its own wait).
    timer.unref();
    this.timers.set(c.id, timer);
  }

  private cancelHealth(c: Container): void {
    clearTimeout(this.timers.get(c.id));
    this.timers.delete(c.id);
  }

  /** Logs an event and hands it to every running `docker events` call. */
  private emit(c: Container, action: string, extra: Record<string, string> = {}): void {
    // Nanoseconds of the wall clock, strictly increasing (Docker's are unique in practice).
    let timeNano = BigInt(Date.now()) * 1_000_000n;
    if (timeNano <= this.lastNano) timeNano = this.lastNano + 1n;
    this.lastNano = timeNano;
    const ev: DockerEvent = {
      status: action,
      id: c.id,
      from: c.image,
      Type: 'container',
      Action: action,
      Actor: {
        ID: c.id,
        Attributes: {
          'com.docker.compose.config-hash': c.configHash,
          'com.docker.compose.container-number': '1',
          'com.docker.compose.oneoff': 'False',
          'com.docker.compose.project': this.project(),
          'com.docker.compose.service': c.service,
          'com.docker.compose.version': '2.29.0',
          image: c.image,
          name: c.service,
          ...extra,
        },
      },
      scope: 'local',
      time: Number(timeNano / 1_000_000_000n),
      timeNano,
    };
    this.events.push(ev);
    if (this.events.length > EVENT_LOG_LIMIT) this.events.shift();
    const latency = this.opts.eventLatencyMs;
    for (const s of this.streams) {
      if (latency) setTimeout(() => s.deliver(ev), latency);
      else s.deliver(ev);
    }
  }

  /**
   * `docker events [--format '{{json .}}'|json] [--filter k=v]… [--since T] [--until T]`: one line per
   * event as it happens. `--since` (or `--until` alone) replays the event log first; with `--until` the call ends then, else
   * when `cmd.signal` aborts it, with exit status 143 (a CLI ended by SIGTERM) and what it printed.
   */
  private async eventsCall(cmd: Command): Promise<CommandResult> {
    const startedAt = this.now();
    const record = (r: CommandResult): CommandResult => {
      this.calls.push({ argv: [...cmd.argv], input: cmd.input ?? '', startedAt, endedAt: this.now() });
      return r;
    };
    if (this.opts.callLatencyMs) await sleep(this.opts.callLatencyMs);
    const args = parseEventsArgs(cmd.argv.slice(2), Date.now());
    if (typeof args === 'string') return record(fail(`${args}\n`, 125));
    const filters = parseEventFilters(args.filters);
    if (typeof filters === 'string') return record(fail(`Error response from daemon: ${filters}\n`));
    const format = args.format === undefined ? eventText : eventJson;
    let stdout = '';
    const print = (ev: DockerEvent) => {
      if (!eventMatches(filters, ev)) return;
      const line = `${format(ev)}\n`;
      stdout += line;
      cmd.onOutput?.(line, 'stdout');
    };
    // dockerd replays what it holds when either bound is given: from --since, or from the start with
    // --until alone.
    if (args.since !== undefined || args.until !== undefined) {
      const since = args.since ?? 0n;
      for (const ev of this.events)
        if (ev.timeNano >= since && (args.until === undefined || ev.timeNano <= args.until)) print(ev);
    }
    const untilMs = args.until === undefined ? undefined : Number(args.until / 1_000_000n) - Date.now();
    if (untilMs !== undefined && untilMs <= 0) return record(ok(stdout));
    if (cmd.signal?.aborted) return record({ ...ok(stdout), exitCode: TERMINATED });
    const ended = await new Promise<CommandResult>((resolve) => {
      let until: NodeJS.Timeout | undefined;
      const stream: EventStream = {
        deliver: print,
        end: () => done(fail('error during connect: unexpected EOF\n', 1, stdout)),
      };
      const onAbort = () => done({ ...ok(stdout), exitCode: TERMINATED });
      const done = (r: CommandResult) => {
        clearTimeout(until);
        cmd.signal?.removeEventListener('abort', onAbort);
        this.streams.delete(stream);
        resolve(r);
      };
      this.streams.add(stream);
      cmd.signal?.addEventListener('abort', onAbort, { once: true });
      if (untilMs !== undefined) until = setTimeout(() => done(ok(stdout)), untilMs);
    });
    return record(ended);
  }

  private health(c: Container): 'starting' | 'healthy' | 'unhealthy' {
    if (c.failing) return 'unhealthy';
    const after = (c.timeline ?? this.opts.timeline[c.service])?.healthyAfterMs;
    const age = this.now() - c.startedAt;
    if (after === undefined) return age > 50 ? 'unhealthy' : 'starting';
    return age >= after ? 'healthy' : 'starting';
  }

  private inspect(names: string[]): CommandResult {
    const found: unknown[] = [];
    const missing: string[] = [];
    for (const name of names) {
      const c = this.containers.get(name);
      if (!c) {
        missing.push(name);
        continue;
      }
      const health = this.health(c);
      found.push({
        Id: c.id,
        Name: `/${name}`,
        Config: {
          Image: c.image,
          ...(c.healthcheck ? { Healthcheck: c.healthcheck } : {}),
        },
        State: {
          Status: c.exitCode === undefined ? 'running' : 'exited',
          Running: c.exitCode === undefined,
          ...(c.exitCode === undefined ? {} : { ExitCode: c.exitCode }),
          Paused: false,
          Restarting: false,
          StartedAt: new Date(this.t0 + c.startedAt).toISOString(),
          ...(c.healthcheck ? { Health: this.healthState(health) } : {}),
        },
      });
    }
    const stdout = `${JSON.stringify(found, null, 4)}\n`;
    return missing.length > 0
      ? fail(missing.map((n) => `Error: No such object: ${n}\n`).join(''), 1, stdout)
      : ok(stdout);
  }

  private healthState(health: 'starting' | 'healthy' | 'unhealthy') {
    return {
      Status: health,
      FailingStreak: health === 'unhealthy' ? 3 : 0,
      Log: [
        {
          ExitCode: health === 'healthy' ? 0 : 1,
          Output: health === 'healthy' ? 'ok' : 'connection refused',
        },
      ],
    };
  }

  private exec(args: string[], input: string): CommandResult {
    const rest = args.filter((a) => a !== '-i');
    const [name = '', ...command] = rest;
    const c = this.containers.get(name);
    if (!c) return fail(`Error response from daemon: No such container: ${name}\n`);
    if (c.service === 'netbird-server') return this.netbirdServerExec(command);
    if (command.join(' ') !== 'ak shell')
      return fail(`simulator: unsupported exec ${command.join(' ')}\n`, 126);
    // Django's shell executes what arrives on stdin.
    if (!input.includes('netbird-mgmt-token') || !input.includes('AUTHENTIK_BOOTSTRAP_TOKEN')) {
      return fail('NameError: unexpected script\n');
    }
    this.tokenAttempts += 1;
    const noise = (this.opts.tokenNoise ?? ['{"event": "Loaded config", "level": "info"}']).join('\n');
    const worker = this.containers.get('authentik-worker');
    const akadmin = worker !== undefined && this.health(worker) === 'healthy';
    if (this.tokenAttempts <= (this.opts.tokenFailures ?? 0) || !akadmin) {
      return fail('ERROR: user akadmin does not exist yet\n', 1, `${noise}\n`);
    }
    const key = c.env.AUTHENTIK_BOOTSTRAP_TOKEN;
    if (!key) return fail('ERROR: AUTHENTIK_BOOTSTRAP_TOKEN is not set in the container\n', 3);
    return ok(`${noise}\nTOKEN:${key}\n${noise}\n`, 'created new token\n');
  }

  /**
   * The pinned netbird-server image (netbirdio/netbird@v0.66.0:combined/Dockerfile): ubuntu:24.04 with the
   * binary at /go/bin/netbird-server and /go/bin not on PATH, so a bare `netbird-server` is not found.
   * `token create --name N --config FILE` answers as management/cmd/token/token.go prints (the token on a
   * `Token: nbx_…` line of stdout); without --name cobra refuses, and a config path the container does not
   * have fails to load.
   */
  private netbirdServerExec(command: string[]): CommandResult {
    const [bin = '', ...args] = command;
    if (bin !== '/go/bin/netbird-server')
      return fail(
        `OCI runtime exec failed: exec failed: unable to start container process: exec: "${bin}": executable file not found in $PATH: unknown\n`,
        126,
      );
    const flag = (name: string) => {
      const i = args.indexOf(name);
      return i === -1 ? undefined : args[i + 1];
    };
    if (args[0] !== 'token' || args[1] !== 'create')
      return fail(`simulator: unsupported netbird-server ${args.join(' ')}\n`, 1);
    if (!flag('--name')) return fail('Error: required flag(s) "name" not set\n', 1);
    if (flag('--config') !== '/etc/netbird/config.yaml')
      return fail(
        `Error: load config: read config file ${flag('--config') ?? '""'}: no such file or directory\n`,
        1,
      );
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    const pick = (n: number) => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');
    // nbx_ + 30 characters + a 6-character checksum (management/server/types/proxy_access_token.go).
    const token = `nbx_${pick(36)}`;
    this.proxyTokens.push(token);
    return ok(
      `Token created successfully!\nToken: ${token}\n\nIMPORTANT: Save this token now. It will not be shown again.\nToken ID: ${pick(20)}\n`,
    );
  }

  private logs(args: string[]): CommandResult {
    const name = args[args.length - 1] ?? '';
    const lines = this.opts.timeline[name]?.logs ?? [`${name}: starting`];
    return this.containers.has(name)
      ? ok(`${lines.join('\n')}\n`)
      : fail(`Error: No such container: ${name}\n`);
  }
}

/** A compose healthcheck as Docker's Config.Healthcheck (durations in ns); undefined when none or disabled. */
function dockerHealthcheck(def: ServiceDef): Record<string, unknown> | undefined {
  const hc = def.healthcheck;
  if (!hc || hc.disable) return undefined;
  const test = typeof hc.test === 'string' ? ['CMD-SHELL', hc.test] : hc.test;
  if (!test || test[0] === 'NONE') return undefined;
  const out: Record<string, unknown> = { Test: test };
  for (const [key, name] of [
    ['interval', 'Interval'],
    ['timeout', 'Timeout'],
    ['start_period', 'StartPeriod'],
    ['start_interval', 'StartInterval'],
  ] as const) {
    const ns = typeof hc[key] === 'string' ? goDurationNs(hc[key] as string) : undefined;
    if (ns !== undefined) out[name] = ns;
  }
  if (typeof hc.retries === 'number') out.Retries = hc.retries;
  return out;
}

interface EventsArgs {
  format?: string;
  filters: string[];
  since?: bigint;
  until?: bigint;
}

/** The `docker events` flags, as `--flag value` or `--flag=value`; a message for the CLI's usage error. */
function parseEventsArgs(args: readonly string[], nowMs: number): EventsArgs | string {
  const out: EventsArgs = { filters: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf('=');
    const [flag, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg];
    const value = inline ?? args[++i];
    if (value === undefined) return `flag needs an argument: ${flag}`;
    if (flag === '--format') {
      if (value !== '{{json .}}' && value !== 'json') return `simulator: unsupported --format ${value}`;
      out.format = value;
    } else if (flag === '--filter' || flag === '-f') out.filters.push(value);
    else if (flag === '--since' || flag === '--until') {
      const ns = eventTimeNs(value, nowMs);
      if (ns === undefined) return `invalid value for ${flag}: ${value}`;
      out[flag === '--since' ? 'since' : 'until'] = ns;
    } else return `unknown flag: ${flag}`;
  }
  return out;
}
