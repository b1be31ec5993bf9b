/**
 * rehearse (sandbox): the guide's Bifrost days on this machine, with neither a VPS nor Docker. A rehearsal
 * target directory stands in for the host: the product's own commands run with --local on TARGET/bifrost
 * (the real local executor, upload, lock and engine), and `docker` on their PATH is the docker simulator
 * (scripts/lib/sandbox/), whose containers and event log are kept in TARGET between commands, so that
 * consecutive commands see one host: day 1, a secret added, day 2, `bifrost status`, ...
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { COMMON_OPTIONS, defineCommand, runMain } from './lib/cli.ts';
import { EXIT, InputError } from './lib/errors.ts';
import { localFiles } from './lib/exec/local.ts';
import type { Output } from './lib/output.ts';
import { runContext } from './lib/run-context.ts';
import { serveDockerSimulator, writeDockerSimWrapper } from './lib/sandbox/docker-sim-server.ts';
import {
  DockerSimulator,
  SANDBOX_TIME_SCALE,
  SANDBOX_TIMELINE,
  type SimulatorState,
} from './lib/sandbox/docker-simulator.ts';

const ROOT = resolve(import.meta.dirname, '..');
const USAGE = 'node --import tsx scripts/rehearse.ts';
/** The rehearsal target unless --target names another: in the checkout, ignored by git. */
export const DEFAULT_TARGET = join(ROOT, '.rehearsal');
/** In the target: the "host's" bundle directory (--remote-dir), the simulator's state, and its mark. */
const BUNDLE_DIR = 'bifrost';
const STATE_FILE = 'docker-simulator.json';
const MARK = '.secrets-flow-rehearsal';

/** `node --import tsx` from any working directory: tsx by its path, not resolved from the cwd. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** The recovery commands that act on a host (check-bundle reads a local bundle: nothing to rehearse). */
const HOST_COMMANDS = ['status', 'logs', 'token', 'render', 'verify', 'unlock'];

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

export const command = defineCommand({
  name: USAGE,
  synopsis: '[--target DIR] (up | bootstrap | bifrost COMMAND | clean) [ITS OPTIONS...]',
  description: `Rehearses the Bifrost days of the operator guide on this machine, without a VPS or Docker. The
target directory stands in for the host; each command runs the product's own command on it with --local
(the real local executor, upload, host lock and bootstrap engine), with \`docker\` on its PATH being the
sandbox's docker simulator on a shortened timeline (every second of the real one is 20 ms). The
simulator's containers and event log are kept in the target between commands, so consecutive commands see
one host.
  up [OPTIONS]           provision-bifrost --local (day 1, and every day after): --secrets-file F or
                         --from-env, --force, --dry-run, ... as \`just bifrost-up\` takes them
  bootstrap [OPTIONS]    bifrost-bootstrap --local on the target's bundle
  bifrost COMMAND [...]  a recovery command on the target: ${HOST_COMMANDS.join(', ')}
  clean                  removes the target
Everything after the command word is that command's own (\`rehearse.ts up --help\` shows provision-bifrost's
options). The target holds what a host holds, .secrets.env included (0600, in a 0700 directory): remove it
with clean when done. One command at a time per target.`,
  options: { ...COMMON_OPTIONS, target: { type: 'string' } },
  optionsHelp: `  --target DIR         the rehearsal target (default .rehearsal in the checkout; made 0700 when missing)`,
  positionals: {
    min: 1,
    max: Number.POSITIVE_INFINITY,
    name: 'command (up, bootstrap, bifrost COMMAND, clean)',
  },
  footer: `justfile: just rehearse-up [OPTIONS], just rehearse bifrost COMMAND [OPTIONS], just rehearse-clean`,
  exits: {
    ok: "the rehearsed command's exit code: 0 done",
    failed: 'it failed while working (or the simulator could not start)',
    badInput: 'bad input (its own, or a target that is not a rehearsal target)',
  },
  run: (flags, positionals, out) => rehearse(resolve(flags.target ?? DEFAULT_TARGET), positionals, out),
});

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

/** The words after `--` are positionals to this parser: it leaves the rehearsed command's alone. */
export const main = (argv: string[], out: Output) => {
  const { own, words } = splitRehearsal(argv);
  return command.main([...own, '--', ...words], out);
};

async function rehearse(target: string, words: string[], out: Output): Promise<number> {
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
  const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'scripts', script), ...args], {
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

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain({ ...command, main });
}
