/**
 * Waiting for containers by listening: one `docker events` stream per run (start / die / health_status of
 * the plan's containers), opened before the first `compose up`, read line by line as JSON. One
 * `docker inspect` after it is open covers what already ran before it; the stream covers the rest.
 *
 * What a container's events mean is kept per container name:
 * - `start` adopts the event's container id (a recreated container has a new one) as running, health
 *   `starting` when its service has a healthcheck, `none` (ready) when it has none;
 * - `health_status: healthy|unhealthy` of that id sets its health; unhealthy fails its wait at once;
 * - `die` of that id is confirmed with one inspect (compose recreating it dies the old one first), then
 *   fails its wait at once, naming the exit code;
 * - before an `up` (`expectStart`) the old instance's events no longer count: compose alone decides
 *   whether it recreates, so the wait holds until a new instance's `start` or the present is read.
 *
 * Every wait starts from the present: docker sends an event only on a change, so a container that is
 * already healthy, and that an `up` left alone, sends nothing more (moby daemon/health.go emits
 * `health_status` when the status changes). Unless what is known of it already says ready, a wait reads
 * the container's state once (the stream is already open, so no change falls between): healthy counts at
 * once, unhealthy or exited fails at once. Events that arrive while that read is in flight are applied
 * on top of it, since they may be newer than what it saw.
 *
 * Each wait keeps its own deadline. A container whose events stop coming for `RECONCILE_MS` is inspected
 * once (a missed event costs at most that); when the stream cannot be opened or ends early, the watcher
 * says so once and polls instead (health.ts). The stream is stopped when the run ends, on every path.
 */

import { runContext } from '../core/run-context.ts';
import type { Executor } from '../exec/executor.ts';
import { type ContainerState, type DockerCli, eventsArgv, inspectContainers, isReady } from './docker.ts';
import { DeadlineError, HealthWatcher, StoppedError } from './health.ts';

/** An event line is a few hundred bytes (its labels included); far longer is not docker's. */
const MAX_EVENT_LINE = 64 * 1024;

/** A wait ended early: the container died, or its healthcheck says unhealthy. */
export class ContainerFailedError extends Error {
  constructor(
    readonly container: string,
    readonly reason: 'died' | 'unhealthy',
    readonly last: ContainerState | undefined,
    readonly exitCode?: number,
  ) {
    super(
      reason === 'died'
        ? `${container} exited${exitCode === undefined ? '' : ` with code ${exitCode}`} while it was awaited`
        : `${container} turned unhealthy`,
    );
  }
}

/** One line of `docker events --format '{{json .}}'`, the fields used here. */
export interface DockerEvent {
  id: string;
  /** `start`, `die`, `health_status: healthy`, … */
  action: string;
  name: string;
  exitCode?: number;
}

/** Parses one event line; undefined for anything that is not a container event with a name. */
export function parseEventLine(line: string): DockerEvent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (raw === null || typeof raw !== 'object') return undefined;
  const e = raw as {
    Type?: string;
    Action?: string;
    status?: string;
    id?: string;
    Actor?: { ID?: string; Attributes?: Record<string, string> };
  };
  if (e.Type !== undefined && e.Type !== 'container') return undefined;
  const action = e.Action ?? e.status;
  const id = e.Actor?.ID ?? e.id;
  const name = e.Actor?.Attributes?.name;
  if (!action || !id || !name) return undefined;
  const code = Number(e.Actor?.Attributes?.exitCode);
  return { id, action, name, ...(Number.isInteger(code) ? { exitCode: code } : {}) };
}

interface Tracked {
  state?: ContainerState;
  /** A recreating `up` was issued: only a `start` (a new instance) counts until it comes. */
  awaitingStart: boolean;
  /** Confirmed dead (the die was not compose replacing it). */
  died?: { exitCode?: number };
  /** Started, and whether it has a healthcheck is not known yet: asked once it is awaited. */
  probe?: boolean;
  lastEventAt: number;
  /** Events heard while the present state is being read; applied again on top of what the read saw. */
  heardWhileReading?: DockerEvent[];
}

interface Waiter {
  name: string;
  started: number;
  deadline: number;
  timer: NodeJS.Timeout;
  resolve: (s: ContainerState) => void;
  reject: (e: Error) => void;
}

export interface EventWatcherOptions {
  /** Whether each container's service defines a healthcheck (from the compose file). */
  healthcheck: (name: string) => boolean | undefined;
  /** How long the stream may run at the most, a bound in case stopping it fails (seconds). */
  maxSeconds: number;
  /** Said once when falling back to polling. */
  warn: (line: string) => void;
}

/** Inspect a waited-on container whose events have been quiet this long (a missed event's cost). */
const RECONCILE_MS = 15_000;
/** Without the event stream: a health poll (one `docker inspect`) this often. */
const POLL_INTERVAL_MS = 50;

export class EventWatcher {
  private readonly tracked = new Map<string, Tracked>();
  private waiters: Waiter[] = [];
  private readonly abort = new AbortController();
  private stream: Promise<unknown> | undefined;
  private stopped = false;
  private polling: HealthWatcher | undefined;
  private buffered = '';
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Containers whose present state the next inspect reads (waits that begin in the same turn). */
  private readonly presentQueue = new Set<string>();
  private reconcileTimer: NodeJS.Timeout | undefined;
  private offStop: (() => void) | undefined;
  /** Called with every state seen, for progress lines. */
  onState?: (name: string, state: ContainerState | undefined, waitedMs: number) => void;

  constructor(
    private readonly executor: Executor,
    private readonly cli: DockerCli,
    private readonly names: readonly string[],
    private readonly opts: EventWatcherOptions,
  ) {}

  /** Opens the stream, then inspects every container once: what was running before the stream began. */
  async start(): Promise<ReadonlyMap<string, ContainerState>> {
    this.offStop = runContext.onStop(() => this.stop());
    this.stream = this.executor
      .run({
        argv: eventsArgv(this.cli, this.names, { untilSeconds: this.opts.maxSeconds }),
        signal: this.abort.signal,
        onOutput: (chunk, stream) => {
          if (stream === 'stdout') this.feed(chunk);
        },
      })
      .then(
        (r) => this.streamEnded(r.spawnError ?? (r.stderr.trim().split('\n').at(-1) || `exit ${r.exitCode}`)),
        (err: Error) => this.streamEnded(err.message),
      );
    return this.firstLook();
  }

  private async firstLook(): Promise<ReadonlyMap<string, ContainerState>> {
    const states = await this.inspect(this.names);
    for (const [name, state] of states) {
      // The inspect wins over events of the same container that came first: the daemon replays the
      // current second's events to a new stream, older than what the inspect saw. An event of another
      // (newer) container is kept.
      const t = this.track(name);
      if (!t.awaitingStart && (!t.state || t.state.id === state.id)) {
        t.state = state;
        t.probe = false;
      }
    }
    return states;
  }

  private pollingWatcher(): HealthWatcher {
    const polling = new HealthWatcher(this.executor, this.cli, POLL_INTERVAL_MS);
    if (this.onState) polling.onState = this.onState;
    return polling;
  }

  /** The state the watcher holds for a container (from the first inspect, then its events). */
  current(name: string): ContainerState | undefined {
    const t = this.tracked.get(name);
    return t && !t.awaitingStart && !t.died ? t.state : undefined;
  }

  /**
   * Before an `up` of the container: only a new instance counts until the present is read, since the old
   * one's health no longer says anything about what compose leaves running.
   */
  expectStart(name: string): void {
    const t = this.track(name);
    t.awaitingStart = true;
    t.died = undefined;
  }

  /** Called once the container's `up` has returned: what runs by that name then is what is awaited. */
  waitReady(name: string, deadlineMs: number): Promise<ContainerState> {
    if (this.polling) return this.polling.waitReady(name, deadlineMs);
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new StoppedError());
      const started = Date.now();
      const waiter: Waiter = {
        name,
        started,
        deadline: started + deadlineMs,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(waiter), deadlineMs),
      };
      this.waiters.push(waiter);
      const t = this.track(name);
      t.lastEventAt = Date.now();
      this.ensureReconcile();
      if (!t.awaitingStart && !t.died && isReady(t.state)) this.settle(name);
      else this.readPresent(name);
    });
  }

  /**
   * Reads the state of `name` once, where a wait begins: waits that begin together (one `up` of several
   * services) share one inspect.
   */
  private readPresent(name: string): void {
    const t = this.track(name);
    if (t.heardWhileReading) return;
    t.heardWhileReading = [];
    this.presentQueue.add(name);
    if (this.presentQueue.size > 1) return;
    queueMicrotask(() => {
      const names = [...this.presentQueue];
      this.presentQueue.clear();
      if (this.stopped) return;
      this.inspect(names).then(
        (states) => {
          for (const n of names) this.takePresent(n, states.get(n));
        },
        () => {
          // A read that fails changes nothing: the stream, the quiet-container check and the deadline hold.
          for (const n of names) this.track(n).heardWhileReading = undefined;
        },
      );
    });
  }

  private takePresent(name: string, seen: ContainerState | undefined): void {
    const t = this.track(name);
    const heard = t.heardWhileReading ?? [];
    t.heardWhileReading = undefined;
    if (!seen) {
      // No container by that name when read. Heard of meanwhile: the events are newer, keep them.
      // Otherwise compose is between removing one and starting its replacement: its start (or the
      // quiet-container check, or the deadline) decides.
      if (heard.length === 0) t.awaitingStart = true;
      return;
    }
    t.awaitingStart = false;
    t.probe = false;
    t.state = seen;
    t.died =
      seen.status === 'running' ? undefined : seen.exitCode === undefined ? {} : { exitCode: seen.exitCode };
    // What was heard meanwhile of this instance may be newer than the read; a start of another
    // instance may be older, and is left to the quiet-container check.
    for (const e of heard) if (e.id === seen.id) this.apply(e);
    this.settle(name);
  }

  /** Ends the stream and every wait (StoppedError); idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.offStop?.();
    clearInterval(this.reconcileTimer);
    this.abort.abort();
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new StoppedError());
    }
    this.polling?.stop();
  }

  /** Resolves once the stream and every inspect have ended: nothing is left running. */
  async drain(): Promise<void> {
    await this.stream;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.polling?.drain();
  }

  // ---- events -------------------------------------------------------------------------------------

  private track(name: string): Tracked {
    let t = this.tracked.get(name);
    if (!t) {
      t = { awaitingStart: false, lastEventAt: Date.now() };
      this.tracked.set(name, t);
    }
    return t;
  }

  private feed(chunk: string): void {
    this.buffered += chunk;
    let nl = this.buffered.indexOf('\n');
    while (nl >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const event = parseEventLine(line);
      if (event && this.names.includes(event.name)) this.apply(event);
      nl = this.buffered.indexOf('\n');
    }
    // The host's output is not trusted: a line no event is that long is dropped, not kept growing.
    if (this.buffered.length > MAX_EVENT_LINE) this.buffered = '';
  }

  private apply(e: DockerEvent): void {
    const t = this.track(e.name);
    t.lastEventAt = Date.now();
    t.heardWhileReading?.push(e);
    if (e.action === 'start') {
      // The container already known running (a replayed start): nothing new.
      if (!t.awaitingStart && t.state?.id === e.id && t.state.status === 'running') return;
      const has = this.opts.healthcheck(e.name);
      t.awaitingStart = false;
      t.died = undefined;
      t.state = {
        id: e.id,
        status: 'running',
        health: has === false ? 'none' : 'starting',
        healthLog: [],
      };
      t.probe = has === undefined;
    } else if (t.awaitingStart || t.state?.id !== e.id) {
      // The old instance of a container being recreated, or an instance already replaced.
      return;
    } else if (e.action.startsWith('health_status:')) {
      const health = e.action.slice('health_status:'.length).trim();
      if (health === 'healthy' || health === 'unhealthy' || health === 'starting')
        t.state = { ...t.state, health };
    } else if (e.action === 'die') {
      t.state = { ...t.state, status: 'exited' };
      // compose replacing a container dies the old one first: dead only if no new one runs by its name.
      this.refresh([e.name], e.exitCode === undefined ? {} : { exitCode: e.exitCode });
      return;
    }
    this.settle(e.name);
  }

  /** Resolves or rejects the waits on `name` by what is known of it now. */
  private settle(name: string): void {
    const t = this.tracked.get(name);
    if (!t || t.awaitingStart) return;
    const waiting = this.waiters.filter((x) => x.name === name);
    if (t.probe && waiting.length > 0 && t.state) {
      const has = this.opts.healthcheck(name);
      t.probe = false;
      if (has === false) t.state = { ...t.state, health: 'none' };
      // Neither the compose file nor an inspect said yet: its image may have a healthcheck. Ask once.
      else if (has === undefined) {
        this.refresh([name]);
        return;
      }
    }
    for (const w of waiting) {
      this.onState?.(name, t.state, Date.now() - w.started);
      if (isReady(t.state)) this.finish(w, () => w.resolve(t.state as ContainerState));
      else if (t.died)
        this.finish(w, () => w.reject(new ContainerFailedError(name, 'died', t.state, t.died?.exitCode)));
      else if (t.state?.health === 'unhealthy')
        this.finish(w, () => w.reject(new ContainerFailedError(name, 'unhealthy', t.state)));
    }
  }

  private finish(w: Waiter, done: () => void): void {
    clearTimeout(w.timer);
    this.waiters = this.waiters.filter((x) => x !== w);
    done();
  }

  private expire(w: Waiter): void {
    const t = this.tracked.get(w.name);
    this.finish(w, () => w.reject(new DeadlineError(w.name, t?.awaitingStart ? undefined : t?.state)));
  }

  // ---- inspect: the first look, a die's confirmation, a quiet container --------------------------

  private inspect(names: readonly string[]): Promise<Map<string, ContainerState>> {
    const p = inspectContainers(this.executor, this.cli, names);
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => {});
    return p;
  }

  /**
   * Inspects `names` and takes what it shows as their state: a container that is not running (after a
   * die, or found so by a reconcile) has died; one running under a new id was recreated.
   */
  private refresh(names: string[], die?: { exitCode?: number }): void {
    if (this.stopped) return;
    this.inspect(names).then(
      (states) => {
        for (const name of names) {
          const t = this.track(name);
          const seen = states.get(name);
          // Still waiting for the new instance of a recreated container, and this is not it.
          if (t.awaitingStart && (!seen || seen.id === t.state?.id)) continue;
          if (!seen && die) {
            // Gone right after it died: compose is between removing it and starting its replacement.
            // The replacement's start (or the deadline) decides.
            t.awaitingStart = true;
            continue;
          }
          t.awaitingStart = false;
          t.state = seen;
          t.probe = false;
          t.died = seen?.status === 'running' ? undefined : (die ?? {});
          this.settle(name);
        }
      },
      () => {
        // An inspect that fails changes nothing: the deadline still holds.
      },
    );
  }

  private ensureReconcile(): void {
    const every = RECONCILE_MS;
    this.reconcileTimer ??= setInterval(
      () => {
        const now = Date.now();
        // Progress on long waits from what is known (the engine prints a line every 15 s): no docker call.
        for (const w of this.waiters)
          this.onState?.(w.name, this.tracked.get(w.name)?.state, now - w.started);
        const quiet = [
          ...new Set(
            this.waiters
              .map((w) => w.name)
              .filter((n) => now - (this.tracked.get(n)?.lastEventAt ?? 0) >= every),
          ),
        ];
        if (quiet.length === 0) return;
        for (const n of quiet) this.track(n).lastEventAt = now;
        this.refresh(quiet);
      },
      Math.max(50, Math.min(1000, Math.floor(every / 4))),
    );
    this.reconcileTimer.unref();
  }

  // ---- losing the stream --------------------------------------------------------------------------

  private streamEnded(why: string): void {
    if (this.stopped) return;
    this.opts.warn(
      `docker events is not available on ${this.executor.where} (${why.slice(0, 200)}): polling docker inspect instead`,
    );
    this.polling = this.pollingWatcher();
    clearInterval(this.reconcileTimer);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      this.polling.waitReady(w.name, Math.max(0, w.deadline - Date.now())).then(w.resolve, w.reject);
    }
  }
}
