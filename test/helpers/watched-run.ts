/**
 * A script started in the background and watched line by line, for tests that act on a progress line
 * (send a signal, drop a connection) rather than after a delay: event order, never timing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type CliRun, PROJECT_ROOT } from './run-cli.ts';
import { scriptArgv } from './script-bundles.ts';

export interface WatchedRun {
  child: ChildProcess;
  /** Resolves when a line of stdout or stderr matches; rejects when the script ends first. */
  line(re: RegExp): Promise<string>;
  done: Promise<CliRun>;
}

const running = new Set<ChildProcess>();

/** Starts `scripts/<script>` as runScript does (its bundle), with exactly `env`, without waiting for it. */
export function startScript(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  opts: { cwd?: string } = {},
): WatchedRun {
  const child = spawn(process.execPath, [...scriptArgv(script, 'tsx'), ...args], {
    env,
    cwd: opts.cwd ?? PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  let ended = false;
  const watchers = new Set<() => void>();
  const check = () => {
    for (const w of [...watchers]) w();
  };
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
    check();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
    check();
  });
  const done = new Promise<CliRun>((resolveDone) => {
    child.on('close', (code, signal) => {
      running.delete(child);
      ended = true;
      check();
      resolveDone({ exitCode: code ?? (signal ? -1 : -2), stdout, stderr });
    });
  });
  const line = (re: RegExp) =>
    new Promise<string>((resolveLine, reject) => {
      const w = () => {
        const found = `${stdout}\n${stderr}`.split('\n').find((l) => re.test(l));
        if (found !== undefined) {
          watchers.delete(w);
          resolveLine(found);
        } else if (ended) {
          watchers.delete(w);
          reject(new Error(`ended before a line matching ${re}:\n${stdout}\n${stderr}`));
        }
      };
      watchers.add(w);
      w();
    });
  return { child, line, done };
}

/** Sends `sig` to the script's process (as Ctrl-C or `kill` would). */
export function signalRun(r: WatchedRun, sig: NodeJS.Signals): void {
  if (r.child.pid) process.kill(r.child.pid, sig);
}

/** SIGKILLs every script started here that still runs: a test that failed half-way leaves none. */
export function killWatchedRuns(): void {
  for (const child of running) if (child.pid) process.kill(child.pid, 'SIGKILL');
}
