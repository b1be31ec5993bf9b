/**
 * --dry-run of the bootstrap engine: the real plan runs against a recording executor. Files are read
 * from the real host (read-only: writes land in memory), and every command is recorded, never run, and
 * answered as a host where everything comes up would answer it. What it prints is what the engine
 * issued, so a change to the plan or the engine shows up here with no second description to keep.
 */

import type { Output } from '../core/output.ts';
import type { Command, CommandResult, Executor, FileOps, FileStat } from '../exec/executor.ts';
import { formatCommand } from '../exec/executor.ts';
import { abortedBeforeStart } from '../exec/local.ts';
import type { DockerCli } from './docker.ts';
import { type EngineOptions, type EngineResult, runBifrostBootstrap } from './engine.ts';
import { BIFROST_PLAN } from './plan.ts';

/** The token the recording run's `ak shell` hands back: clearly not a real one. */
const DRY_RUN_TOKEN = 'dry-run-token-not-minted';
/** The proxy token the recording run's `token create` hands back, in NetBird's output shape. */
const DRY_RUN_PROXY_TOKEN = 'nbx_dry-run-token-not-minted';

const ok = (stdout = ''): CommandResult => ({ exitCode: 0, stdout, stderr: '', timedOut: false });

export interface RecordedWrite {
  path: string;
  mode: number;
}

/** Records every command and file write; reads go to `real` (the overlay of writes first). */
export class RecordingExecutor implements Executor {
  readonly commands: string[][] = [];
  readonly writes: RecordedWrite[] = [];
  private readonly overlay = new Map<string, string>();
  readonly files: FileOps;

  constructor(
    private readonly real: Executor,
    private readonly cli: DockerCli,
  ) {
    this.files = {
      readFile: async (path) => (this.overlay.has(path) ? this.overlay.get(path) : real.files.readFile(path)),
      writeFileAtomic: async (path, content, mode) => {
        this.overlay.set(path, content);
        this.writes.push({ path, mode });
      },
      stat: async (path): Promise<FileStat | undefined> => {
        const text = this.overlay.get(path);
        if (text === undefined) return real.files.stat(path);
        return { size: Buffer.byteLength(text), mode: 0o100600, mtimeMs: Date.now() };
      },
    };
  }

  get where(): string {
    return this.real.where;
  }

  /** Where the recorded `docker events` stream's lines go while it is open. */
  private eventSink: ((line: string) => void) | undefined;
  private started = 0;

  /**
   * Nothing runs: each command is recorded and answered as a host where everything comes up would answer
   * it. `docker events` stays open until its signal ends it, and each recorded `up` puts its containers'
   * start and healthy events on it, so the engine takes the path it takes on a host. An already-aborted
   * signal records nothing, as it would start nothing.
   */
  async run(cmd: Command): Promise<CommandResult> {
    if (cmd.signal?.aborted) return abortedBeforeStart();
    const argv = [...cmd.argv];
    this.commands.push(argv);
    const [bin, sub, ...rest] = argv;
    if (bin === this.cli.docker && sub === 'events') return this.eventsStream(cmd);
    if (argv.includes('up')) this.started = this.announceStarts(argv);
    if (bin === this.cli.docker && sub === 'inspect') return ok(JSON.stringify(rest.map(runningHealthy)));
    if (bin === this.cli.docker && sub === 'exec' && argv.includes('ak'))
      return ok(`TOKEN:${DRY_RUN_TOKEN}\n`);
    if (bin === this.cli.docker && sub === 'exec' && argv.includes('token'))
      return ok(`Token created successfully!\nToken: ${DRY_RUN_PROXY_TOKEN}\n`);
    if (bin === 'cloud-init') return ok('status: done\n');
    return ok();
  }

  async close(): Promise<void> {}

  private eventsStream(cmd: Command): Promise<CommandResult> {
    return new Promise((resolve) => {
      const end = () => {
        this.eventSink = undefined;
        resolve(ok());
      };
      if (!cmd.signal) return end();
      this.eventSink = (line) => cmd.onOutput?.(line, 'stdout');
      cmd.signal.addEventListener('abort', end, { once: true });
    });
  }

  /** The services of a recorded `compose up`: each one's new container starts and is healthy. */
  private announceStarts(argv: readonly string[]): number {
    const services = argv.slice(argv.indexOf('up') + 1).filter((a) => !a.startsWith('-'));
    let n = this.started;
    for (const name of services) {
      const id = `dry-run-${name}-${++n}`;
      for (const action of ['start', 'health_status: healthy'])
        this.eventSink?.(
          `${JSON.stringify({ status: action, id, Type: 'container', Action: action, Actor: { ID: id, Attributes: { name } } })}\n`,
        );
    }
    return n;
  }
}

function runningHealthy(name: string) {
  return {
    Id: `dry-run-${name}`,
    Name: `/${name}`,
    State: { Status: 'running', StartedAt: new Date().toISOString(), Health: { Status: 'healthy' } },
  };
}

export interface DryRun {
  result: EngineResult;
  /** Every command the engine issued, in order, health polls (`docker inspect`) left out. */
  commands: string[];
  writes: RecordedWrite[];
  /** One line per step: what it would do, or why it would be skipped. */
  steps: string[];
}

/** Runs the plan against a RecordingExecutor over `executor` (whose files are only read). */
export async function dryRunBootstrap(
  opts: Omit<EngineOptions, 'out' | 'executor'> & { executor: Executor; out: Output },
): Promise<DryRun> {
  const recorder = new RecordingExecutor(opts.executor, opts.cli);
  const quiet: Output = { ...opts.out, info: opts.out.detail, warn: opts.out.detail, data: opts.out.detail };
  const result = await runBifrostBootstrap({ ...opts, executor: recorder, out: quiet, timeScale: 1 });
  const plan = opts.plan ?? BIFROST_PLAN;
  const steps = result.steps.map((s) => {
    const step = plan.find((p) => p.id === s.id);
    const after = step?.after.length ? ` (after ${step.after.join(', ')})` : '';
    const what =
      s.status === 'skipped' && step?.gate
        ? `skipped, ${step.gate.key} is not set`
        : s.status === 'done'
          ? 'would run'
          : `${s.status}: ${s.detail.split('\n')[0]}`;
    return `${s.id}${after}: ${what}`;
  });
  const commands = recorder.commands
    .filter((argv) => !(argv[0] === opts.cli.docker && argv[1] === 'inspect'))
    .map((argv) => formatCommand(argv));
  return { result, commands, writes: recorder.writes, steps };
}

/** The dry run as lines for a person. */
export function formatDryRun(run: DryRun): string[] {
  return [
    'steps:',
    ...run.steps.map((s) => `  ${s}`),
    'commands, in order (recorded, none run; health polls with docker inspect left out):',
    ...run.commands.map((c) => `  $ ${c}`),
    'files it would write:',
    ...(run.writes.length ? run.writes.map((w) => `  ${w.path} (${w.mode.toString(8)})`) : ['  none']),
  ];
}

/** Prints the dry run and its JSON result; exit 1 when the recorded run failed a step (a template, say). */
export function reportDryRun(dry: DryRun, out: Output, base: Record<string, unknown>): number {
  for (const line of formatDryRun(dry)) out.info(line);
  const { commands, writes, steps, result } = dry;
  if (result.failure) {
    out.error(`step ${result.failure.step} would fail:\n${result.failure.message}`, result.failure.hint);
  }
  out.result({ ok: !result.failure, dryRun: true, ...base, steps, commands, writes });
  return result.failure ? 1 : 0;
}
