/**
 * The Bifrost bootstrap engine: pre-flight, then the plan's steps, each started as soon as what it
 * waits for is done (independent steps run in parallel), health watched with wall-clock deadlines.
 * Every command goes through one Executor (local, SSH, or the simulator).
 */
import { InputError, WorkError } from '../core/errors.ts';
import { formatTable } from '../core/format.ts';
import type { Output } from '../core/output.ts';
import { describeSecret, redactor } from '../core/redact.ts';
import { InterruptedError, runContext, stoppableSleep } from '../core/run-context.ts';
import type { Executor } from '../exec/executor.ts';
import { formatCommand } from '../exec/executor.ts';
import { namesFor } from '../secrets/schema.ts';
import { Bundle, type BundleState } from './bundle.ts';
import { envFileInput, renderConfigTemplate, serviceEnvEntries } from './bundle-rules.ts';
import {
  type ContainerState,
  composeVersionArgv,
  type DockerCli,
  eventsArgv,
  execArgv,
  inspectContainers,
  isReady,
  logsArgv,
  runArgv,
  upArgv,
} from './docker.ts';
import { formatEnvFile, quoteEnvValue, upsertEnvLine } from './env-file.ts';
import { ContainerFailedError, EventWatcher } from './events.ts';
import { DeadlineError, StoppedError } from './health.ts';
import { proxyTokenMinted, RENDERED_ENV_CONSUMERS, SECRETS_ENV, withMintedProxyToken } from './host-state.ts';
import {
  BIFROST_PLAN,
  NB_IDP_MGMT_TOKEN,
  type PlanStep,
  PROXY_TOKEN_GUIDANCE,
  SERVICE_SECRET_FILES,
} from './plan.ts';
import { AK_SHELL_SCRIPT, findProxyTokenLine, findTokenLine, loadRetry, mintWithRetry } from './token.ts';
import { UpBatcher } from './up-batcher.ts';

export interface EngineOptions {
  executor: Executor;
  cli: DockerCli;
  out: Output;
  plan?: readonly PlanStep[];
  /**
   * Rendered env files (.secrets.env, .env) by name, as provisioning has just uploaded them: the engine
   * takes their values from here, not back over the connection, and writes a minted token into them on
   * the host as before. One not given (not sent this run; every one for the recovery commands and
   * bifrost-bootstrap on the host) it reads from the host.
   */
  envFiles?: Readonly<Record<string, string>>;
  /** Multiplies every deadline and backoff (default: SECRETS_FLOW_TIME_SCALE, else 1). */
  timeScale?: number;
  cloudInitTimeoutSec?: number;
  /**
   * Mint netbird-mgmt-token even when .secrets.env already holds NB_IDP_MGMT_TOKEN (`bifrost token`). The
   * old line stays until the new token is minted, and is then replaced in one atomic write.
   */
  remintToken?: boolean;
  /**
   * Mint the proxy's token even when .secrets.env holds a minted one (`bifrost proxy-token`); the old line
   * stays until the new token is minted. A value from the SOPS file is never replaced.
   */
  remintProxyToken?: boolean;
}

export type StepStatus = 'done' | 'skipped' | 'failed' | 'not run';

export interface StepResult {
  id: string;
  status: StepStatus;
  seconds?: number;
  detail: string;
}

export interface EngineResult {
  ok: boolean;
  seconds: number;
  steps: StepResult[];
  failure?: { step: string; message: string; hint?: string };
}

/** How long `compose version` may take before the pre-flight calls docker unavailable. */
const COMPOSE_VERSION_TIMEOUT_SEC = 30;

class StepFailure extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

export async function runBifrostBootstrap(opts: EngineOptions): Promise<EngineResult> {
  const engine = new Engine(opts);
  return engine.run();
}

class Engine {
  private readonly plan: readonly PlanStep[];
  private readonly bundle: Bundle;
  private readonly scale: number;
  private watcher!: EventWatcher;
  private readonly ups: UpBatcher;
  private secrets = new Map<string, string>();
  private state: BundleState = { services: {} };
  private readonly results = new Map<string, StepResult>();
  private readonly t0 = Date.now();
  private aborted = false;
  /** Ends the run as an error rather than a step failure: the connection dropped. */
  private fatal: Error | undefined;

  constructor(private readonly opts: EngineOptions) {
    this.plan = opts.plan ?? BIFROST_PLAN;
    this.bundle = new Bundle(opts.executor.files, opts.cli.dir, opts.envFiles);
    this.scale = opts.timeScale ?? timeScaleFromEnv();
    this.ups = new UpBatcher((services, forceRecreate) =>
      this.run$(upArgv(opts.cli, services, { forceRecreate }), { timeoutMs: 300_000 }),
    );
  }

  private get out(): Output {
    return this.opts.out;
  }

  private run$(argv: string[], extra: { input?: string; timeoutMs?: number } = {}) {
    this.out.detail(`$ ${formatCommand(argv)}${extra.input ? ' (script on stdin)' : ''}`);
    return this.opts.executor.run({ argv, ...extra });
  }

  async run(): Promise<EngineResult> {
    // The stream opens beside the pre-flight (compose version already needs docker there), so the
    // first up follows the pre-flight at once.
    this.watcher = this.makeWatcher();
    const listening = this.listen();
    listening.catch(() => {});
    try {
      await this.preflight();
      await listening;
      await this.schedule();
    } finally {
      // Every path (done, failed, interrupted, dropped): the stream ends and no docker process is left.
      await listening.catch(() => {});
      this.watcher?.stop();
      await this.watcher?.drain();
    }
    await Promise.all(this.saves);
    // Interrupted, or the connection dropped: the steps cut short are "not run", and the caller reports
    // the interrupt or the drop (with its phase), not a step failure.
    runContext.throwIfStopped();
    if (this.fatal) throw this.fatal;
    const steps = this.plan.map(
      (s) => this.results.get(s.id) ?? { id: s.id, status: 'not run' as const, detail: '' },
    );
    const failed = steps.find((s) => s.status === 'failed');
    return {
      ok: !failed,
      seconds: (Date.now() - this.t0) / 1000,
      steps,
      failure: failed
        ? { step: failed.id, message: failed.detail, hint: this.failureHints.get(failed.id) }
        : undefined,
    };
  }

  private readonly failureHints = new Map<string, string>();
  private readonly saves: Promise<void>[] = [];

  // ---- pre-flight -------------------------------------------------------------------------------

  private async preflight(): Promise<void> {
    const { executor, cli } = this.opts;
    const timeoutSec = this.opts.cloudInitTimeoutSec ?? 600;
    // Independent checks, run together: each is a process (or an SSH round trip) of its own. Reading
    // overlaps them; writing waits for them: nothing on the host changes before the pre-flight passes.
    const versionTimeoutSec = COMPOSE_VERSION_TIMEOUT_SEC * this.scale;
    const [version, ci] = await Promise.all([
      this.run$(composeVersionArgv(cli), { timeoutMs: versionTimeoutSec * 1000 }),
      this.run$(['cloud-init', 'status', '--wait'], { timeoutMs: timeoutSec * 1000 }),
      this.readSecrets().then(async () => {
        if (this.missing.length > 0) return;
        this.state = await this.bundle.loadState();
      }),
    ]);
    if (version.exitCode !== 0 || version.spawnError) {
      // A hung docker (a stuck daemon socket) says nothing: the reason is then the time it was given.
      const reason = version.timedOut
        ? `timed out after ${Number(versionTimeoutSec.toFixed(2))} s`
        : `failed: ${(version.spawnError ?? version.stderr).trim() || `exit ${version.exitCode}, no message`}`;
      throw new WorkError(
        `docker compose is not available on ${executor.where} (${formatCommand(composeVersionArgv(cli))} ${reason})`,
        'install Docker with the compose plugin, or pass --compose docker-compose for v1; on a new VPS see /var/log/cloud-init-output.log',
      );
    }
    if (ci.spawnError || ci.exitCode === 127) {
      this.out.info('pre-flight: no cloud-init; assuming a pre-provisioned host');
    } else if (ci.timedOut) {
      throw new WorkError(
        `cloud-init did not finish within ${timeoutSec} s`,
        'see /var/log/cloud-init-output.log on the host, then run again',
      );
    } else if (ci.exitCode !== 0) {
      this.out.warn(`cloud-init status exited ${ci.exitCode} (normal on pre-provisioned servers)`);
    } else {
      this.out.info('pre-flight: cloud-init done');
    }
    if (this.missing.length > 0) {
      throw new InputError(
        `required secrets are missing in ${this.opts.cli.dir}:\n${this.missing.map((m) => `  - ${m}`).join('\n')}`,
        'render and upload them with provision-bifrost (just bifrost-up), then run again',
      );
    }
    await this.renderServiceEnvFiles();
  }

  private missing: string[] = [];

  /**
   * .secrets.env and .env (as provisioning handed them over, else read from the host), each key reported
   * by length; missing ones are collected.
   */
  private async readSecrets(): Promise<void> {
    const missing = this.missing;
    for (const [file, consumer] of RENDERED_ENV_CONSUMERS) {
      const text = await this.bundle.read(file);
      const { values, problems } = envFileInput(file, consumer, text);
      missing.push(...problems);
      if (text === undefined) continue;
      for (const v of values.values()) redactor.register(v);
      if (file === SECRETS_ENV) {
        this.secrets = values;
        this.secretsText = text;
      }
      for (const { name, required } of namesFor(consumer)) {
        const value = values.get(name);
        if (value) this.out.info(`pre-flight: ✓ ${file} ${describeSecret(name, value)}`);
        else if (!required) this.out.info(`pre-flight: - ${file} ${name} not set (optional)`);
      }
    }
    const token = this.secrets.get(NB_IDP_MGMT_TOKEN);
    if (token) redactor.register(token, NB_IDP_MGMT_TOKEN);
  }

  /** .secrets.env as read in the pre-flight: whether its NB_PROXY_TOKEN is minted or the SOPS file's. */
  private secretsText = '';

  /** Each service's own env file, holding only the secrets it reads (plan.ts). */
  private async renderServiceEnvFiles(): Promise<void> {
    await Promise.all(
      SERVICE_SECRET_FILES.map(async (f) => {
        const entries = serviceEnvEntries(f, this.secrets);
        const header = `Rendered by bifrost-bootstrap from .secrets.env for ${f.services.join(', ')}; do not edit.`;
        if (await this.bundle.writeIfChanged(f.file, formatEnvFile(entries, header))) {
          this.out.detail(`rendered ${f.file}`);
        }
      }),
    );
  }

  // ---- listening --------------------------------------------------------------------------------

  /**
   * The watcher of the plan's containers, not yet listening. Which services have healthchecks comes from the
   * compose file, read meanwhile: it is first needed when a container starts, long after.
   */
  private makeWatcher(): EventWatcher {
    const names = this.watchedNames();
    const healthchecks = new Map<string, boolean | undefined>();
    const read = Promise.all(
      names.map(async (n) => healthchecks.set(n, await this.bundle.hasHealthcheck(n))),
    );
    // A compose file that cannot be read is the steps' to report; until then "unknown" (one inspect).
    read.catch(() => {});
    const watcher = new EventWatcher(this.opts.executor, this.opts.cli, names, {
      healthcheck: (n) => healthchecks.get(n),
      maxSeconds: this.streamBound(),
      warn: (line) => this.out.warn(line),
    });
    // Progress on long waits: one line per container every 15 s while it is not ready.
    const lastShown = new Map<string, number>();
    watcher.onState = (name, state, waitedMs) => {
      const shown = lastShown.get(name) ?? 0;
      if (waitedMs - shown < 15_000) return;
      lastShown.set(name, waitedMs);
      const health = state ? `${state.status}, health ${state.health}` : 'no container yet';
      this.out.info(`wait   ${name}: ${health} (${Math.round(waitedMs / 1000)} s)`);
    };
    return watcher;
  }

  private watchedNames(): string[] {
    return [...new Set(this.plan.flatMap((s) => (s.kind === 'service' ? [s.service] : [])))];
  }

  /** The stream's own bound (--until): every step's deadline in a row, and ten minutes more. */
  private streamBound(): number {
    return this.plan.reduce((sum, s) => sum + s.deadlineSec, 0) * this.scale + 600;
  }

  /** One docker events stream for the run, opened before the first up, then one inspect. */
  private async listen(): Promise<void> {
    const argv = eventsArgv(this.opts.cli, this.watchedNames(), { untilSeconds: this.streamBound() });
    this.out.detail(`$ ${formatCommand(argv)} (until the run ends)`);
    await this.watcher.start();
  }

  private tokenRetryWarmed = false;

  /**
   * zx's retry code, for the token step, loaded while the first containers boot: loading it blocks the event
   * loop for ~0.2 s, which costs nothing then and would delay the token's first attempt later.
   */
  private warmTokenRetry(): void {
    if (this.tokenRetryWarmed || !this.plan.some((s) => s.kind === 'token')) return;
    this.tokenRetryWarmed = true;
    if (this.mintsToken()) setImmediate(() => loadRetry().catch(() => {}));
  }

  /** Up to date: the definition and inputs recorded when it last came up, and running and healthy now. */
  private async upToDate(service: string): Promise<{ inputs: string; definition: string; current: boolean }> {
    const [inputs, definition] = await Promise.all([
      this.bundle.inputsHash(service),
      this.bundle.definitionHash(service),
    ]);
    const recorded = this.state.services[service];
    const current =
      recorded?.inputs === inputs &&
      recorded.definition === definition &&
      isReady(this.watcher.current(service));
    return { inputs, definition, current };
  }

  // ---- scheduling -------------------------------------------------------------------------------

  /** Starts every step whose prerequisites are done; stops starting new ones after a failure. */
  private async schedule(): Promise<void> {
    const pending = new Map(this.plan.map((s) => [s.id, s]));
    const running = new Map<string, Promise<void>>();
    const done = (id: string) =>
      this.results.get(id)?.status === 'done' || this.results.get(id)?.status === 'skipped';
    while (pending.size > 0 || running.size > 0) {
      if (!this.aborted && !runContext.stopped()) {
        const ready = [...pending.values()].filter((step) => step.after.every(done));
        // Renders are quick local writes: done before the pass announces its ups, so the services they
        // unblock join the same compose call whatever the disk's speed (and the dry run matches a run).
        const renders = ready.filter((step) => step.kind === 'render');
        if (renders.length > 0) {
          for (const step of renders) pending.delete(step.id);
          await Promise.all(renders.map((step) => this.runStep(step)));
          continue;
        }
        this.ups.expect(ready.filter((s) => s.kind === 'service' && !this.gatedOut(s)).length);
        for (const step of ready) {
          pending.delete(step.id);
          running.set(
            step.id,
            this.runStep(step).finally(() => running.delete(step.id)),
          );
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
  }

  private gatedOut(step: PlanStep): boolean {
    return step.gate !== undefined && !this.secrets.get(step.gate.key);
  }

  private async runStep(step: PlanStep): Promise<void> {
    const started = Date.now();
    const record = (status: StepStatus, detail: string) =>
      this.results.set(step.id, { id: step.id, status, seconds: (Date.now() - started) / 1000, detail });
    if (step.gate && this.gatedOut(step)) {
      record('skipped', `${step.gate.key} not set`);
      this.out.info(this.out.color.yellow(`skip   ${step.id}: ${step.gate.key} is not set`));
      for (const line of step.gate.guidance) this.out.info(`         ${line}`);
      return;
    }
    try {
      const detail = await this.execute(step);
      record('done', detail);
      this.out.info(
        `${this.out.color.green('done')}   ${step.id}: ${detail} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
      );
    } catch (err) {
      if (err instanceof StoppedError) {
        record('not run', err.message);
        return;
      }
      if (err instanceof InterruptedError || runContext.stopped() || runContext.dropped) {
        this.fatal ??= err as Error;
        record('not run', (err as Error).message);
        this.aborted = true;
        this.watcher.stop();
        return;
      }
      const e = err as Error & { hint?: string };
      record('failed', e.message);
      this.failureHints.set(step.id, e.hint ?? '');
      this.aborted = true;
      this.watcher.stop();
      this.out.info(this.out.color.red(`FAILED ${step.id}: ${e.message}`));
    }
  }

  private execute(step: PlanStep): Promise<string> {
    switch (step.kind) {
      case 'service':
        return this.startService(step.service, step.deadlineSec);
      case 'run':
        return this.runOnce(step.service, step.args, step.deadlineSec, step.currentWith ?? []);
      case 'token':
        return this.mintToken(step.container, step.deadlineSec);
      case 'render':
        return this.renderConfig(step.template, step.output);
      case 'proxy-token':
        return this.mintProxyToken(step);
    }
  }

  // ---- steps ------------------------------------------------------------------------------------

  private async startService(service: string, deadlineSec: number): Promise<string> {
    let inputs: string;
    let definition: string;
    try {
      const now = await this.upToDate(service);
      ({ inputs, definition } = now);
      if (now.current) {
        // Nothing compose would change and the container is healthy: no docker call at all.
        this.ups.withdraw();
        return 'up to date and healthy; left alone';
      }
    } catch (err) {
      this.ups.withdraw();
      throw err;
    }
    const recorded = this.state.services[service]?.inputs;
    // A container started from inputs other than today's must be recreated: compose would keep it.
    // Without a record (first run, or a host bootstrapped by other means) recreating is the safe
    // choice, and for a container that does not exist yet --force-recreate just creates it.
    const recreate = recorded !== inputs;
    const why = recorded === undefined ? '' : recreate ? ' (recreate: its config or env file changed)' : '';
    this.out.info(`start  ${service}${why}`);
    // Compose alone decides whether this up makes a new container (by a config hash the engine cannot
    // see): the old instance's health says nothing until the wait reads what runs now.
    this.watcher.expectStart(service);
    const up = await this.ups.request(service, recreate);
    if (up.exitCode !== 0) {
      throw new StepFailure(
        `compose up ${service} failed (exit ${up.exitCode}):\n${tail(`${up.stdout}\n${up.stderr}`)}`,
        'fix the cause shown, then run again: steps already done are kept',
      );
    }
    this.warmTokenRetry();
    const waitStart = Date.now();
    try {
      await this.watcher.waitReady(service, deadlineSec * 1000 * this.scale);
    } catch (err) {
      if (err instanceof DeadlineError || err instanceof ContainerFailedError)
        throw await this.waitFailure(service, deadlineSec, err);
      throw err;
    }
    this.state.services[service] = { inputs, definition };
    // Saved in the background (saves are queued): dependents need not wait for the disk.
    const save = this.bundle.saveState(this.state);
    // Awaited at the end of the run; until then a failed save (a dropped connection) must not count as
    // an unhandled rejection, which would end the process.
    save.catch(() => {});
    this.saves.push(save);
    const waited = ((Date.now() - waitStart) / 1000).toFixed(1);
    return `${recorded !== undefined && recreate ? 'recreated, ' : ''}healthy after ${waited} s`;
  }

  /** A wait that ended badly: the deadline passed, or the container died or turned unhealthy. */
  private async waitFailure(
    service: string,
    deadlineSec: number,
    err: DeadlineError | ContainerFailedError,
  ): Promise<StepFailure> {
    // Its last log lines, and its health-check log as docker holds it now (events carry neither).
    const [logs, inspected] = await Promise.all([
      this.run$(logsArgv(this.opts.cli, service, 30), { timeoutMs: 30_000 }),
      inspectContainers(this.opts.executor, this.opts.cli, [service]).catch(
        () => new Map<string, ContainerState>(),
      ),
    ]);
    const state = inspected.get(service) ?? err.last;
    const what =
      err instanceof ContainerFailedError
        ? `${err.message}, before it was healthy (reported at once, not at its ${deadlineSec * this.scale} s deadline)`
        : `${service} did not become healthy within ${deadlineSec * this.scale} s`;
    const lines = [
      `${what} (state: ${state ? `${state.status}, health ${state.health}` : 'no container'})`,
      'last log lines:',
      ...(logs.stdout + logs.stderr)
        .trim()
        .split('\n')
        .map((l) => `  | ${l}`),
    ];
    if (state?.healthLog.length)
      lines.push('health-check log:', ...state.healthLog.slice(-5).map((l) => `  | ${l}`));
    return new StepFailure(
      lines.join('\n'),
      `look at the logs above (docker logs ${service}); once fixed, run again: healthy services are kept`,
    );
  }

  private async runOnce(
    service: string,
    args: readonly string[],
    deadlineSec: number,
    currentWith: readonly string[],
  ): Promise<string> {
    if (currentWith.length > 0) {
      const states = await Promise.all(currentWith.map((s) => this.upToDate(s)));
      if (states.every((s) => s.current))
        return `not needed: ${currentWith.join(', ')} up to date and healthy`;
    }
    this.out.info(`run    ${service} ${args.join(' ')}`);
    const r = await this.run$(runArgv(this.opts.cli, service, args), {
      timeoutMs: deadlineSec * 1000 * this.scale,
    });
    if (r.timedOut)
      throw new StepFailure(
        `${service} ${args.join(' ')} ran longer than ${deadlineSec * this.scale} s`,
        'check the database, then run again',
      );
    if (r.exitCode !== 0) {
      throw new StepFailure(
        `${service} ${args.join(' ')} failed (exit ${r.exitCode}):\n${tail(`${r.stdout}\n${r.stderr}`)}`,
        'fix the cause shown, then run again',
      );
    }
    return 'completed';
  }

  /** The token step mints: none in .secrets.env yet, or a new one asked for. */
  private mintsToken(): boolean {
    return this.opts.remintToken === true || !this.secrets.get(NB_IDP_MGMT_TOKEN);
  }

  private async mintToken(container: string, deadlineSec: number): Promise<string> {
    if (!this.mintsToken()) return `${NB_IDP_MGMT_TOKEN} already set in .secrets.env; kept`;
    const outcome = await mintWithRetry({
      deadline: Date.now() + deadlineSec * 1000 * this.scale,
      firstDelayMs: 1000 * this.scale,
      maxDelayMs: 10_000 * this.scale,
      sleep: stoppableSleep,
      onRetry: (attempt, error, delay) =>
        this.out.info(
          `wait   netbird-mgmt-token: attempt ${attempt} failed (${error.split('\n')[0]}); retrying in ${(delay / 1000).toFixed(1)} s`,
        ),
      attempt: async () => {
        const r = await this.run$(execArgv(this.opts.cli, container, ['ak', 'shell']), {
          input: AK_SHELL_SCRIPT,
          timeoutMs: 120_000,
        });
        const token = r.exitCode === 0 ? findTokenLine(r.stdout) : undefined;
        if (token) return { token };
        return {
          error: tail(r.exitCode === 0 ? `no TOKEN: line in the output\n${r.stdout}` : r.stderr || r.stdout),
        };
      },
    });
    if ('token' in outcome) {
      const { token, attempts } = outcome;
      redactor.register(token, NB_IDP_MGMT_TOKEN);
      const current = (await this.bundle.read(SECRETS_ENV)) ?? '';
      await this.bundle.writeIfChanged(SECRETS_ENV, upsertEnvLine(current, NB_IDP_MGMT_TOKEN, token));
      this.secrets.set(NB_IDP_MGMT_TOKEN, token);
      return `netbird-mgmt-token minted on attempt ${attempts}; ${describeSecret(NB_IDP_MGMT_TOKEN, token)} written to .secrets.env`;
    }
    const { attempts: attempt, error: lastError } = outcome;
    throw new StepFailure(
      `could not mint netbird-mgmt-token in ${deadlineSec * this.scale} s (${attempt} attempts); last error: ${lastError}`,
      'check that akadmin exists (docker logs authentik-worker) and that env/authentik.env holds AUTHENTIK_BOOTSTRAP_TOKEN, then run again',
    );
  }

  /**
   * The proxy's token, as NetBird's own setup makes it once the server is up: `docker exec` of the server's
   * `token create`, the token read from stdout (never an argv), written into .secrets.env as one marked
   * line, then into the proxy's env file. A value already there (the SOPS file's, or one minted before) is
   * kept; `remintProxyToken` replaces only a minted one.
   */
  private async mintProxyToken(step: Extract<PlanStep, { kind: 'proxy-token' }>): Promise<string> {
    const { key } = step;
    const held = this.secrets.get(key);
    if (held && !(this.opts.remintProxyToken && proxyTokenMinted(this.secretsText)))
      return `${key} already set in .secrets.env${proxyTokenMinted(this.secretsText) ? ' (minted here before)' : ' (from the SOPS file)'}; kept`;
    this.out.info(`mint   ${key}: ${step.command.join(' ')} in ${step.container}`);
    const r = await this.run$([this.opts.cli.docker, 'exec', step.container, ...step.command], {
      timeoutMs: step.deadlineSec * 1000 * this.scale,
    });
    const token = r.exitCode === 0 ? findProxyTokenLine(r.stdout) : undefined;
    if (!token) {
      const why = r.timedOut
        ? `ran longer than ${step.deadlineSec * this.scale} s`
        : r.exitCode === 0
          ? 'no "Token:" line on its stdout'
          : `exit ${r.exitCode}: ${tail(r.spawnError ?? r.stderr, 4)}`;
      throw new StepFailure(
        `could not mint ${key} in ${step.container} (${why})`,
        `${PROXY_TOKEN_GUIDANCE.join('\n')}\nthen run again: healthy services are kept`,
      );
    }
    redactor.register(token, key);
    const current = (await this.bundle.read(SECRETS_ENV)) ?? '';
    const next = withMintedProxyToken(current, `${key}=${quoteEnvValue(key, token)}`);
    await this.bundle.writeIfChanged(SECRETS_ENV, next);
    this.secretsText = next;
    this.secrets.set(key, token);
    // The proxy's env file was rendered in the pre-flight, without the token.
    await this.renderServiceEnvFiles();
    return `${describeSecret(key, token)} minted in ${step.container}; written to .secrets.env and the proxy's env file`;
  }

  private async renderConfig(template: string, output: string): Promise<string> {
    const text = await this.bundle.read(template);
    if (text === undefined)
      throw new StepFailure(`${template} is missing from the bundle`, 'upload the bundle again');
    let rendered: string;
    try {
      rendered = renderConfigTemplate(text, template, (k) => this.secrets.get(k));
    } catch (err) {
      throw new StepFailure((err as Error).message, (err as InputError).hint ?? 'fix the template');
    }
    const changed = await this.bundle.writeIfChanged(output, rendered);
    return changed ? `${output} rendered` : `${output} unchanged`;
  }
}

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** The status table printed at the end of a run. */
export function formatStatusTable(result: EngineResult): string {
  return formatTable(
    ['step', 'status', 'time', 'detail'],
    result.steps.map((s) => [
      s.id,
      s.status,
      s.seconds === undefined ? '' : `${s.seconds.toFixed(1)} s`,
      s.detail.split('\n')[0] ?? '',
    ]),
  );
}

/**
 * SECRETS_FLOW_TIME_SCALE: multiplies every deadline and backoff of the engine, for the sandbox demo and
 * the tests (a positive number; 1 when unset). Read here only: no operator command has a flag for it.
 */
export function timeScaleFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SECRETS_FLOW_TIME_SCALE;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new InputError(`SECRETS_FLOW_TIME_SCALE must be a positive number, not "${raw}"`);
  return n;
}
