/**
 * What a running command shares with everything below it, in one RunContext per run:
 *
 * - the interrupt: SIGINT/SIGTERM reach every stop listener (`onStop`) that executors, waits and the
 *   engine registered: work started after it is refused, work in flight is killed (remote commands get SIGKILL, local
 *   children SIGTERM then SIGKILL);
 * - clean-up: steps registered while they are needed (release the host lock, close the connection),
 *   run last-in first-out by runMain after an interrupt, each inside `cleanupScope` so that the
 *   executors still serve them;
 * - the phase: what the command is doing now ("upload"), so that an interrupt or a dropped connection
 *   is reported as "during upload", with what that means for the host;
 * - its secrets: the redactor that hides every value the run registered, and the fingerprint key
 *   (redact.ts reads both from here);
 * - how a failure is said, when a layer below knows its cause better than the error that reached the top
 *   (a dropped connection: see `frameFailure`).
 *
 * runMain begins a run per command (`beginRun`); a test that drives the library in-process begins its
 * own, so that nothing an earlier run registered, interrupted or left to clean up reaches it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { constants as osConstants } from 'node:os';
import { Redactor } from './redactor.ts';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/** Work refused or cut short because the operator interrupted the command. */
export class InterruptedError extends Error {
  readonly exitCode: number;
  constructor(readonly signal: StopSignal) {
    super(`interrupted by ${signal}`);
    this.name = 'InterruptedError';
    this.exitCode = exitCodeForSignal(signal);
  }
}

/** 130 for SIGINT, 143 for SIGTERM: 128 + the signal number, as shells report it. */
export function exitCodeForSignal(signal: StopSignal): number {
  return 128 + osConstants.signals[signal];
}

export interface CleanupStep {
  /** Said after an interrupt when it worked ("the host lock was released"); undefined: say nothing. */
  done?: string;
  /** Names it when it failed ("releasing the host lock"). */
  what: string;
  /** What the operator can do when it failed or never finished (a second signal cut it short). */
  hint?: string;
  run: () => Promise<void>;
}

interface Phase {
  name: string;
  /** What an interrupt in this phase leaves behind ("the live bundle is unchanged"). */
  consequence?: string;
}

/** A connection that dropped: where, during which phase, and why. */
export interface DroppedConnection {
  where: string;
  phase: string | undefined;
  reason: string;
}

/** A command's failure as said to the operator: its message, secondary lines, hint and extra JSON fields. */
export interface Failure {
  message: string;
  secondary: string[];
  hint?: string;
  fields?: Record<string, unknown>;
}

export class RunContext {
  /** Every secret this run registered, in every form it travels in. */
  readonly redactor = new Redactor();
  /** The key of this run's fingerprints (FINGERPRINT_KEY), once a source provided it. */
  fingerprintKey: Buffer | undefined;

  private interruptedBy: StopSignal | undefined;
  private currentPhase: Phase | undefined;
  private cleanups: CleanupStep[] = [];
  private firstDrop: DroppedConnection | undefined;
  private framer: ((failure: Failure) => Failure) | undefined;
  // A set of our own rather than an AbortSignal's listeners: dozens of requests in flight would trip
  // Node's "possible EventTarget memory leak" warning.
  private readonly stopListeners = new Set<() => void>();
  private readonly cleanupScope = new AsyncLocalStorage<boolean>();

  get interrupted(): StopSignal | undefined {
    return this.interruptedBy;
  }

  /** True when work must stop: interrupted, and not a clean-up step. */
  stopped(): boolean {
    return this.interruptedBy !== undefined && !this.cleanupScope.getStore();
  }

  throwIfStopped(): void {
    if (this.interruptedBy && !this.cleanupScope.getStore()) throw new InterruptedError(this.interruptedBy);
  }

  /** Calls `fn` once work must stop (at once when it already must); returns the unsubscribe. */
  onStop(fn: () => void): () => void {
    if (this.cleanupScope.getStore()) return () => {};
    if (this.interruptedBy) {
      fn();
      return () => {};
    }
    const listener = () => fn();
    this.stopListeners.add(listener);
    return () => this.stopListeners.delete(listener);
  }

  /**
   * `onStop` bound to the caller's scope now: for callbacks that run outside it later (ssh2 calls back
   * from its socket, where a clean-up step's scope is not visible).
   */
  stopHook(): (fn: () => void) => () => void {
    if (this.cleanupScope.getStore()) return () => () => {};
    return (fn) => this.onStop(fn);
  }

  interrupt(signal: StopSignal): void {
    if (this.interruptedBy) return;
    this.interruptedBy = signal;
    const listeners = [...this.stopListeners];
    this.stopListeners.clear();
    for (const fn of listeners) fn();
  }

  setPhase(name: string, consequence?: string): void {
    this.currentPhase = { name, consequence };
  }

  get phase(): Readonly<Phase> | undefined {
    return this.currentPhase;
  }

  /** Registers a clean-up step; the returned function removes it (call it once the step is done). */
  onCleanup(step: CleanupStep): () => void {
    this.cleanups.push(step);
    return () => {
      this.cleanups = this.cleanups.filter((s) => s !== step);
    };
  }

  /**
   * Runs the registered clean-up steps, last registered first, within `boundMs` together; each step
   * that fails or is cut off by the bound is reported with its hint, never thrown. A step stays
   * registered until it is done, so that `cleanupHints` names what a second signal leaves unfinished.
   */
  async runCleanups(boundMs: number): Promise<{ done: string[]; failed: string[]; hints: string[] }> {
    const steps = [...this.cleanups].reverse();
    const report = { done: [] as string[], failed: [] as string[], hints: [] as string[] };
    const end = Date.now() + boundMs;
    for (const step of steps) {
      const left = end - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        const limit = boundMs >= 1000 ? `${boundMs / 1000} s` : `${boundMs} ms`;
        timer = setTimeout(() => reject(new Error(`no result within ${limit}`)), left);
      });
      try {
        if (left <= 0) throw new Error('no time left for clean-up');
        await Promise.race([this.cleanupScope.run(true, step.run), bound]);
        if (step.done) report.done.push(step.done);
        this.cleanups = this.cleanups.filter((s) => s !== step);
      } catch (err) {
        report.failed.push(`${step.what} failed: ${(err as Error).message}`);
        if (step.hint && !report.hints.includes(step.hint)) report.hints.push(step.hint);
      } finally {
        clearTimeout(timer);
      }
    }
    return report;
  }

  /** Records the first connection that dropped (the phase is the one current now). */
  noteDropped(where: string, reason: string): void {
    this.firstDrop ??= { where, phase: this.currentPhase?.name, reason };
  }

  get dropped(): DroppedConnection | undefined {
    return this.firstDrop;
  }

  /** The hints of the clean-up steps not done yet: what is left to the operator if they never finish. */
  cleanupHints(): string[] {
    return [...new Set(this.cleanups.flatMap((s) => (s.hint ? [s.hint] : [])))];
  }

  /**
   * Says the command's failure the way `frame` recasts it: set by the layer that knows the cause underneath
   * whatever error reaches the top (a dropped connection). The first cause set is the one said.
   */
  frameFailure(frame: (failure: Failure) => Failure): void {
    this.framer ??= frame;
  }

  /** The failure as it is said: recast by the frame set, if any. */
  framed(failure: Failure): Failure {
    return this.framer ? this.framer(failure) : failure;
  }
}

/**
 * The run in progress. A live binding: every module that imports it sees the run `beginRun` began last.
 * Until one begins, a process that uses the library directly (the bench) has a run of its own.
 */
export let runContext = new RunContext();

/** Begins a run: a fresh context, installed as the one in progress (runMain, once per command; tests). */
export function beginRun(): RunContext {
  runContext = new RunContext();
  return runContext;
}

/** A wait that ends early when work must stop (rejecting with InterruptedError). */
export function stoppableSleep(ms: number): Promise<void> {
  const run = runContext;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      resolve();
    }, ms);
    const off = run.onStop(() => {
      clearTimeout(timer);
      reject(new InterruptedError(run.interrupted ?? 'SIGINT'));
    });
  });
}

/**
 * Runs `work`, then `cleanup` whatever happened. A clean-up failure after a failed `work` never
 * replaces the error that caused it: it is attached to it as a secondary line (see `secondaryOf`).
 */
export async function withCleanup<T>(work: () => Promise<T>, cleanup: () => Promise<void>): Promise<T> {
  let result: T;
  try {
    result = await work();
  } catch (err) {
    try {
      await cleanup();
    } catch (cleanupErr) {
      attachSecondary(err, cleanupErr);
    }
    throw err;
  }
  await cleanup();
  return result;
}

type WithSecondary = { secondary?: string[] };

export function attachSecondary(err: unknown, secondary: unknown): void {
  if (typeof err !== 'object' || err === null) return;
  const e = err as WithSecondary;
  const message = secondary instanceof Error ? secondary.message : String(secondary);
  e.secondary = [...(e.secondary ?? []), message];
}

export function secondaryOf(err: unknown): string[] {
  return (typeof err === 'object' && err !== null && (err as WithSecondary).secondary) || [];
}
