/**
 * The Docker CLI subset the engine uses, as argv builders and output parsers. Only these forms are used,
 * so any Docker-compatible CLI works: Docker with the compose plugin, docker-compose v1, the simulator.
 */
import type { Executor } from '../exec/executor.ts';

export interface DockerCli {
  /** The docker binary (`--docker`, $DOCKER, or `docker`). */
  docker: string;
  /** The compose command as argv: ['docker', 'compose'] or ['docker-compose']. */
  compose: string[];
  /** The bundle directory on the host. */
  dir: string;
}

export function composeArgv(cli: DockerCli, ...args: string[]): string[] {
  return [...cli.compose, '-f', `${cli.dir}/docker-compose.yml`, '--project-directory', cli.dir, ...args];
}

export function composeVersionArgv(cli: DockerCli): string[] {
  return [...cli.compose, 'version'];
}

export function upArgv(
  cli: DockerCli,
  services: readonly string[],
  opts: { forceRecreate: boolean },
): string[] {
  return composeArgv(
    cli,
    'up',
    '-d',
    '--no-deps',
    ...(opts.forceRecreate ? ['--force-recreate'] : []),
    ...services,
  );
}

export function runArgv(cli: DockerCli, service: string, args: readonly string[]): string[] {
  return composeArgv(cli, 'run', '--rm', '--no-deps', service, ...args);
}

export function execArgv(cli: DockerCli, container: string, command: readonly string[]): string[] {
  return [cli.docker, 'exec', '-i', container, ...command];
}

export function logsArgv(cli: DockerCli, container: string, tail: number): string[] {
  return [cli.docker, 'logs', '--tail', String(tail), container];
}

/**
 * One `docker events` stream for `containers`: their start, die and health changes, one JSON object a
 * line. `--until` bounds it even if stopping it fails: a duration is taken from the host's own clock, and
 * a negative one lies ahead (docker's GetTimestamp: reference minus the duration), so no clock skew
 * between this machine and the host matters. `event=health_status` matches `health_status: healthy` and
 * `health_status: unhealthy` (moby's filter matches that event by prefix).
 */
export function eventsArgv(
  cli: DockerCli,
  containers: readonly string[],
  opts: { untilSeconds: number },
): string[] {
  return [
    cli.docker,
    'events',
    '--format',
    '{{json .}}',
    '--filter',
    'type=container',
    ...['start', 'die', 'health_status'].flatMap((e) => ['--filter', `event=${e}`]),
    ...containers.flatMap((c) => ['--filter', `container=${c}`]),
    // Without --since, a stream with --until replays every event the daemon still holds (up to 256):
    // old starts and dies. `0s` is the host's own now.
    '--since=0s',
    `--until=-${Math.ceil(opts.untilSeconds)}s`,
  ];
}

export interface ContainerState {
  id: string;
  status: string;
  /** Health status, or 'none' for a container without a healthcheck. */
  health: 'starting' | 'healthy' | 'unhealthy' | 'none';
  startedAt?: string;
  /** The exit code docker records for a container that is not running. */
  exitCode?: number;
  /** The last health-check outputs, newest last. */
  healthLog: string[];
}

interface InspectEntry {
  Id?: string;
  Name?: string;
  State?: {
    Status?: string;
    StartedAt?: string;
    ExitCode?: number;
    Health?: { Status?: string; Log?: { Output?: string }[] };
  };
}

/**
 * `docker inspect NAME…` for several containers in one call. A missing container makes docker exit 1
 * while the JSON still lists the others, so the exit code alone says nothing: parse what came back.
 */
export async function inspectContainers(
  executor: Executor,
  cli: DockerCli,
  names: readonly string[],
): Promise<Map<string, ContainerState>> {
  const result = await executor.run({ argv: [cli.docker, 'inspect', ...names], timeoutMs: 30_000 });
  const states = new Map<string, ContainerState>();
  let entries: InspectEntry[] = [];
  try {
    entries = JSON.parse(result.stdout || '[]') as InspectEntry[];
  } catch {
    if (result.exitCode === 0) throw new Error(`docker inspect printed something that is not JSON`);
  }
  if (result.exitCode !== 0 && entries.length === 0 && !/No such (object|container)/i.test(result.stderr)) {
    throw new Error(`docker inspect failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }
  for (const e of entries) {
    const name = (e.Name ?? '').replace(/^\//, '');
    const health = e.State?.Health?.Status;
    states.set(name, {
      id: e.Id ?? '',
      status: e.State?.Status ?? 'unknown',
      health: health === 'starting' || health === 'healthy' || health === 'unhealthy' ? health : 'none',
      startedAt: e.State?.StartedAt,
      ...(Number.isInteger(e.State?.ExitCode) ? { exitCode: e.State?.ExitCode } : {}),
      healthLog: (e.State?.Health?.Log ?? []).map((l) => (l.Output ?? '').trim()).filter(Boolean),
    });
  }
  return states;
}

/** Ready: running, and healthy when it has a healthcheck. */
export function isReady(s: ContainerState | undefined): boolean {
  return s !== undefined && s.status === 'running' && (s.health === 'healthy' || s.health === 'none');
}

/** The Bifrost bundle's home on a host unless --dir / --remote-dir says otherwise. */
export const DEFAULT_BUNDLE_HOST_DIR = '/etc/bifrost';

/** The docker CLI settings every host command takes from its flags (--docker, --compose, the dir). */
export function dockerCliFromFlags(
  flags: { docker?: string; compose?: string },
  dir: string | undefined,
  defaultDocker = 'docker',
): DockerCli {
  return {
    docker: flags.docker ?? defaultDocker,
    compose: (flags.compose ?? 'docker compose').split(/\s+/).filter(Boolean),
    dir: (dir ?? DEFAULT_BUNDLE_HOST_DIR).replace(/\/+$/, ''),
  };
}
