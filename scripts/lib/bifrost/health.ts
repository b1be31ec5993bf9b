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
  deadline: number;
  resolve: (s: ContainerState) => void;
  reject: (e: Error) => void;
  last?: ContainerState;
}

/**
 * One polling loop for every container being waited on: a single `docker inspect A B C` per round,
 * rounds back to back (a short pause between them), so a health change is seen within about one docker
 * call of happening, and each waiter has its own wall-clock deadline.
 */
export class HealthWatcher {
  private waiters: Waiter[] = [];
  private running = false;
  private stopped = false;
  /** Called with every state seen, for progress lines. */
  onState?: (name: string, state: ContainerState | undefined, waitedMs: number) => void;

  constructor(
    private readonly executor: Executor,
    private readonly cli: DockerCli,
    private readonly pauseMs: number,
  ) {}

  waitReady(name: string, deadlineMs: number): Promise<ContainerState> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ name, deadline: Date.now() + deadlineMs, resolve, reject });
      if (!this.running) void this.loop();
    });
  }

  /** Stops the loop; pending waits reject. */
  stop(): void {
    this.stopped = true;
    for (const w of this.waiters.splice(0)) w.reject(new StoppedError());
  }

  private async loop(): Promise<void> {
    this.running = true;
    const started = new Map<Waiter, number>();
    try {
      while (this.waiters.length > 0 && !this.stopped) {
        for (const w of this.waiters) if (!started.has(w)) started.set(w, Date.now());
        const names = [...new Set(this.waiters.map((w) => w.name))];
        let states: Map<string, ContainerState>;
        try {
          states = await inspectContainers(this.executor, this.cli, names);
        } catch (err) {
          for (const w of this.waiters.splice(0)) w.reject(err as Error);
          break;
        }
        const now = Date.now();
        this.waiters = this.waiters.filter((w) => {
          const state = states.get(w.name);
          w.last = state;
          this.onState?.(w.name, state, now - (started.get(w) ?? now));
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
        if (this.waiters.length > 0 && this.pauseMs > 0)
          await new Promise((r) => setTimeout(r, this.pauseMs));
      }
    } finally {
      this.running = false;
    }
  }
}
