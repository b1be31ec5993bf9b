/**
 * The rehearsal's work (scripts/rehearse.ts): a target directory stands in for the Bifrost host, the
 * product's own commands run on it with --local, and the docker simulator, its state kept in the target
 * between commands, answers their `docker`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { EXIT, InputError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { runContext } from '../core/run-context.ts';
import { localFiles } from '../exec/local.ts';
import { serveDockerSimulator, writeDockerSimWrapper } from './docker-sim-server.ts';
import {
  DockerSimulator,
  SANDBOX_TIME_SCALE,
  SANDBOX_TIMELINE,
  type SimulatorState,
} from './docker-simulator.ts';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const USAGE = 'node --import tsx scripts/rehearse.ts';
/** The rehearsal target unless --target names another: in the checkout, ignored by git. */
export const DEFAULT_TARGET = join(ROOT, '.rehearsal');
/** In the target: the "host's" bundle directory (--remote-dir), the simulator's state, and its mark. */
const BUNDLE_DIR = 'bifrost';
const STATE_FILE = 'docker-simulator.json';
const MARK = '.secrets-flow-rehearsal';

/** How every recipe starts a command (its bundle while current, else tsx), by path: any working directory. */
const LAUNCHER = join(ROOT, 'bin', 'run.mjs');

/** The recovery commands that act on a host (check-bundle reads a local bundle: nothing to rehearse). */
export const HOST_COMMANDS = ['status', 'logs', 'token', 'render', 'verify', 'unlock'];

/**
 * The product command a rehearsal command runs: its script and arguments, --local on `bundleDir` added.
 * `words` are the command word and what follows it, as given.
 */
export function rehearsedCommand(
  words: readonly string[],
  bundleDir: string,
): { script: string; args: string[] } {
  const [name, ...rest] = words;
  const local = ['--local', '--remote-dir', bundleDir];
  if (name === 'up') return { script: 'provision-bifrost.ts', args: [...local, ...rest] };
  if (name === 'bootstrap') return { script: 'bifrost-bootstrap.ts', args: [...local, ...rest] };
  if (name === 'bifrost') {
    const [sub, ...more] = rest;
    if (!sub || !HOST_COMMANDS.includes(sub))
      throw new InputError(
        sub
          ? `bifrost ${sub} does not act on a host: there is nothing to rehearse`
          : 'rehearse bifrost: say which recovery command',
        `one of: ${HOST_COMMANDS.join(', ')}`,
      );
    return { script: 'bifrost.ts', args: [sub, ...local, ...more] };
  }
  throw new InputError(
    `unknown rehearsal command "${name ?? ''}"`,
    `one of: up, bootstrap, bifrost ${HOST_COMMANDS.join('|')}, clean (see ${USAGE} --help)`,
  );
}

/**
 * This command's own options (before the command word) and the rehearsal command: the command word and
 * everything after it, which belongs to the rehearsed command (--help there is its help).
 */
export function splitRehearsal(argv: readonly string[]): { own: string[]; words: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') return { own: argv.slice(0, i), words: argv.slice(i + 1) };
    if (arg === '--target') i++;
    else if (!arg.startsWith('-')) return { own: argv.slice(0, i), words: argv.slice(i) };
  }
  return { own: [...argv], words: [] };
}

/**
 * Runs one rehearsal command on `targetFlag` (default DEFAULT_TARGET): `words` are the command word and
 * what follows it. Its exit code is the rehearsed command's.
 */
export async function rehearse(
  targetFlag: string | undefined,
  words: string[],
  out: Output,
): Promise<number> {
  const target = resolve(targetFlag ?? DEFAULT_TARGET);
  if (words[0] === 'clean') {
    if (words.length > 1) throw new InputError('clean takes no arguments', `see ${USAGE} --help`);
    return clean(target, out);
  }
  const bundleDir = join(target, BUNDLE_DIR);
  const { script, args } = rehearsedCommand(words, bundleDir);
  // Its help needs neither the target nor the simulator.
  if (args.includes('--help') || args.includes('-h')) return run(script, args, process.env).exited;
  claimTarget(target);
  const sim = new DockerSimulator({ dir: bundleDir, ...SANDBOX_TIMELINE });
  const stateFile = join(target, STATE_FILE);
  const saved = readState(stateFile);
  if (saved) sim.restore(saved);
  const server = await serveDockerSimulator(sim);
  const bin = mkdtempSync(join(tmpdir(), 'secrets-flow-rehearse-'));
  await writeDockerSimWrapper(join(bin, 'docker'), server);
  out.info(
    out.color.dim(
      `rehearsal  ${target} (host dir ${BUNDLE_DIR}/, docker = the simulator, ${sim.containers.size} container(s) from earlier commands)`,
    ),
  );

  // Ends once: after the rehearsed command exits, its host's state is saved and the simulator stopped,
  // whether the command finished or an interrupt cut it short.
  const { child, exited } = run(script, args, {
    ...process.env,
    PATH: [bin, process.env.PATH].filter(Boolean).join(delimiter),
    SECRETS_FLOW_TIME_SCALE: SANDBOX_TIME_SCALE,
  });
  const finished = exited.then(async (code) => {
    try {
      await localFiles.writeFileAtomic(stateFile, `${JSON.stringify(sim.snapshot(), null, 1)}\n`, 0o600);
    } finally {
      await sim.close();
      await server.close();
      rmSync(bin, { recursive: true, force: true });
    }
    return code;
  });
  // Ctrl-C reaches the rehearsed command with the rest of the terminal's process group; a SIGTERM sent to
  // this process alone is passed on. Either way it unwinds (releasing the host lock) before the state is
  // saved.
  runContext.onStop(() => {
    if (runContext.interrupted === 'SIGTERM') child.kill('SIGTERM');
  });
  runContext.onCleanup({
    what: "waiting for the rehearsed command and saving the simulator's state",
    done: "the rehearsal target's state was saved",
    run: async () => {
      await finished;
    },
  });
  runContext.setPhase(`rehearse ${words.slice(0, words[0] === 'bifrost' ? 2 : 1).join(' ')}`);
  return finished;
}

/** Starts a project script as its own process, its stdio this one's; `exited`: its exit code (128 + N for signal N). */
function run(script: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [LAUNCHER, join(ROOT, 'scripts', script), ...args], {
    stdio: 'inherit',
    env,
  });
  const exited = new Promise<number>((done) => {
    child.on('error', (err) => {
      process.stderr.write(`error: could not start ${script}: ${err.message}\n`);
      done(EXIT.failed);
    });
    child.on('exit', (code, signal) => done(code ?? 128 + (signal ? osConstants.signals[signal] : 0)));
  });
  return { child, exited };
}

/** Makes the target (0700) or checks that it is one: never a directory that holds anything else. */
function claimTarget(target: string): void {
  mkdirSync(target, { recursive: true, mode: 0o700 });
  const entries = readdirSync(target);
  if (entries.length > 0 && !entries.includes(MARK))
    throw new InputError(
      `${target} is not a rehearsal target (no ${MARK} in it) and is not empty`,
      'give --target a new or empty directory (or leave it out: .rehearsal in the checkout)',
    );
  writeFileSync(join(target, MARK), 'a secrets-flow rehearsal target (scripts/rehearse.ts)\n', {
    mode: 0o600,
  });
}

function readState(file: string): SimulatorState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as SimulatorState;
  } catch (err) {
    throw new InputError(
      `${file} is not a simulator state (${(err as Error).message})`,
      `start the rehearsal afresh: ${USAGE} clean`,
    );
  }
}

function clean(target: string, out: Output): number {
  let entries: string[];
  try {
    entries = readdirSync(target);
  } catch {
    out.info(`no rehearsal target at ${target}: nothing to remove`);
    return EXIT.ok;
  }
  if (entries.length > 0 && !entries.includes(MARK))
    throw new InputError(`${target} is not a rehearsal target (no ${MARK} in it): not removing it`);
  rmSync(target, { recursive: true, force: true });
  out.info(`removed the rehearsal target ${target}`);
  return EXIT.ok;
}
