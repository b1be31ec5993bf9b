/**
 * A Bifrost "host" for tests: a real loopback sshd, a remote bundle directory its test user owns, and
 * the docker simulator served on a unix socket behind a `docker` wrapper, plus an empty HOME and TMPDIR
 * for the operator side (leak checks look there).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type DockerSimServer,
  serveDockerSimulator,
  writeDockerSimWrapper,
} from '../../scripts/lib/sandbox/docker-sim-server.ts';
import { DockerSimulator, type ServiceTimeline } from '../../scripts/lib/sandbox/docker-simulator.ts';
import { BUNDLE_SOURCE, referenceTimeline } from '../helpers/bifrost-fixture.ts';
import { type CliRun, runScript } from '../helpers/run-cli.ts';
import { startScript, type WatchedRun } from '../helpers/watched-run.ts';
import { type SshdServer, sshCliArgs, startSshd } from './sshd.ts';

export interface BifrostTestHost {
  server: SshdServer;
  sim: DockerSimulator;
  simServer: DockerSimServer;
  root: string;
  /** The bundle directory on the "host". */
  remoteDir: string;
  /** A local copy of cloud/bifrost that tests may edit. */
  bundle: string;
  /** The host's docker CLI (the simulator client). */
  docker: string;
  home: string;
  tmp: string;
  /** Stops sshd and the simulator, then removes `root` and everything in it. */
  stop(): Promise<void>;
}

export async function startBifrostTestHost(
  sshdPath: string,
  opts: { prefix: string; timeline?: Record<string, ServiceTimeline>; sftpLog?: boolean },
): Promise<BifrostTestHost> {
  const server = await startSshd(sshdPath, { sftpLog: opts.sftpLog });
  const root = mkdtempSync(join(tmpdir(), opts.prefix));
  const remoteDir = join(root, 'remote', 'bifrost');
  mkdirSync(join(root, 'remote'));
  const bundle = join(root, 'bundle');
  cpSync(BUNDLE_SOURCE, bundle, { recursive: true });
  const home = join(root, 'home');
  const tmp = join(root, 'tmp');
  mkdirSync(home);
  mkdirSync(tmp);
  const reference = referenceTimeline(5);
  const sim = new DockerSimulator({
    dir: remoteDir,
    ...reference,
    timeline: opts.timeline ?? reference.timeline,
  });
  const simServer = await serveDockerSimulator(sim);
  mkdirSync(join(root, 'bin'));
  const docker = await writeDockerSimWrapper(join(root, 'bin', 'docker'), simServer);
  if (process.getuid?.() === 0) {
    // sshd logs in as its /bin/sh test user: it must own the remote dir and reach the socket and wrapper.
    execFileSync('chown', [server.user, join(root, 'remote')]);
    execFileSync('chmod', ['711', root]);
  }
  return {
    server,
    sim,
    simServer,
    root,
    remoteDir,
    bundle,
    docker,
    home,
    tmp,
    stop: async () => {
      await simServer.close();
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** provision-bifrost's argv and environment against `host` (see provisionOnTestHost). */
function provisionCommand(
  host: BifrostTestHost,
  extra: readonly string[],
  env: Record<string, string>,
): [string[], Record<string, string>] {
  return [
    [
      ...sshCliArgs(host.server),
      '--remote-dir',
      host.remoteDir,
      '--bundle',
      host.bundle,
      '--docker',
      host.docker,
      '--compose',
      `${host.docker} compose`,
      '--from-env',
      '--json',
      ...extra,
    ],
    {
      PATH: process.env.PATH ?? '',
      HOME: host.home,
      TMPDIR: host.tmp,
      NO_COLOR: '1',
      SECRETS_FLOW_TIME_SCALE: '0.05',
      ...env,
    },
  ];
}

/**
 * Runs provision-bifrost against `host` as the tests do: its sshd, remote dir, bundle copy and simulated
 * docker, secrets from the environment (`env`), JSON on stdout, the bootstrap's deadlines shortened.
 */
export function provisionOnTestHost(
  host: BifrostTestHost,
  extra: readonly string[],
  env: Record<string, string>,
): Promise<CliRun> {
  return runScript('provision-bifrost.ts', ...provisionCommand(host, extra, env));
}

/** The same, started in the background and watched line by line (watched-run.ts). */
export function startProvisionOnTestHost(
  host: BifrostTestHost,
  extra: readonly string[],
  env: Record<string, string>,
): WatchedRun {
  return startScript('provision-bifrost.ts', ...provisionCommand(host, extra, env));
}

/**
 * Leaves the host's lock held by another machine's run (alice@laptop), as its take leaves it: the lock dir
 * with its holder record, owned by the SSH user. `ageMs` back-dates the record. Returns the lock dir.
 */
export function holdHostLock(host: BifrostTestHost, ageMs = 0): string {
  const lockDir = `${host.remoteDir}.lock`;
  mkdirSync(lockDir);
  writeFileSync(
    join(lockDir, 'holder.json'),
    JSON.stringify({
      holder: 'alice@laptop',
      pid: 4242,
      since: new Date(Date.now() - ageMs).toISOString(),
      command: 'provision-bifrost',
    }),
  );
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', host.server.user, lockDir]);
  return lockDir;
}
