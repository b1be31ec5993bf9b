import { runContext } from '../core/run-context.ts';
import type { Executor } from '../exec/executor.ts';
import { type ContainerState, type DockerCli, inspectContainers, isReady } from './docker.ts';

export class DeadlineError extends Error {
  constructor(
    readonly container: string,
    readonly last: ContainerState | undefined,
  ) {
    super(`${container} did not become healthy in time`);
  }
}

/** A wait cut short because another step failed. */
export class StoppedError extends Error {
  constructor() {
    super('stopped after another step failed');
  }
}

interface Waiter {
  name: string;
  started: number;
  deadline: number;
  resolve: (s: ContainerState) => void;
  reject: (e: Error) => void;
  last?: ContainerState;
}

/**
 * One watcher for every container being waited on: each poll is a single `docker inspect A B C`, and
 * polls are pipelined (a new one every `intervalMs`, up to `maxInFlight` at once) so a health change is
 * seen within about `intervalMs` of happening rather than a whole docker call later. Each waiter has
 * its own wall-clock deadline.
 */
export class HealthWatcher {
  private waiters: Waiter[] = [];
  private timer?: NodeJS.Timeout;
  private inFlight = 0;
  private stopped = false;
  private offStop: (() => void) | undefined;
  /** Called with every state seen, for progress lines. */
  onState?: (name: string, state: ContainerState | undefined, waitedMs: number) => void;

  constructor(
    private readonly executor: Executor,
    private readonly cli: DockerCli,
    private readonly intervalMs = 50,
    private readonly maxInFlight = 2,
  ) {}

  waitReady(name: string, deadlineMs: number): Promise<ContainerState> {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new StoppedError());
      this.waiters.push({ name, started: Date.now(), deadline: Date.now() + deadlineMs, resolve, reject });
      // An interrupt ends every wait at once (the engine records those steps as not run).
      this.offStop ??= runContext.onStop(() => this.stop());
      if (!this.timer) {
        this.timer = setInterval(() => this.tick(), this.intervalMs);
        this.tick();
      }
    });
  }

  /** Stops polling; pending waits reject with StoppedError. */
  stop(): void {
    this.stopped = true;
    this.offStop?.();
    this.idle();
    for (const w of this.waiters.splice(0)) w.reject(new StoppedError());
  }

  private idle(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Resolves once no poll is in flight: a finished run leaves no docker process behind. */
  async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
  }

  private tick(): void {
    if (this.waiters.length === 0) {
      this.idle();
      return;
    }
    if (this.inFlight >= this.maxInFlight) return;
    this.inFlight += 1;
    void this.poll().finally(() => {
      this.inFlight -= 1;
    });
  }

  private async poll(): Promise<void> {
    const names = [...new Set(this.waiters.map((w) => w.name))];
    let states: Map<string, ContainerState>;
    try {
      states = await inspectContainers(this.executor, this.cli, names);
    } catch (err) {
      for (const w of this.waiters.splice(0)) w.reject(err as Error);
      this.idle();
      return;
    }
    const now = Date.now();
    this.waiters = this.waiters.filter((w) => {
      if (!names.includes(w.name)) return true; // started waiting after this poll began
      const state = states.get(w.name);
      w.last = state;
      this.onState?.(w.name, state, now - w.started);
      if (isReady(state)) {
        w.resolve(state as ContainerState);
        return false;
      }
      if (now >= w.deadline) {
        w.reject(new DeadlineError(w.name, state));
        return false;
      }
      return true;
    });
    if (this.waiters.length === 0) this.idle();
  }
}
