/**
 * The host flags every Bifrost command shares (bifrost-bootstrap, provision-bifrost, the recovery
 * commands): the SSH options, where the bundle lives on the host and which docker CLI runs there, with
 * their help lines, so that the same flag means the same thing everywhere.
 */
import { InputError } from '../errors.ts';
import type { Executor } from '../exec/executor.ts';
import { connectFromFlags, SSH_OPTIONS, SSH_OPTIONS_HELP, type SshFlags } from '../exec/ssh-cli.ts';
import type { Output } from '../output.ts';
import { runContext, withCleanup } from '../run-context.ts';
import { DEFAULT_BUNDLE_HOST_DIR, type DockerCli, dockerCliFromFlags } from './docker.ts';
import { normalizeRemoteDir } from './upload.ts';

export const HOST_OPTIONS = {
  ...SSH_OPTIONS,
  'remote-dir': { type: 'string' },
  docker: { type: 'string' },
  compose: { type: 'string' },
} as const;

/** bifrost-bootstrap's --dir is the older spelling of --remote-dir. */
export const HOST_ALIASES = { dir: 'remote-dir' } as const;

export const HOST_OPTIONS_HELP = `${SSH_OPTIONS_HELP}
  --remote-dir D       the bundle directory on the host (default ${DEFAULT_BUNDLE_HOST_DIR})
  --docker BIN         docker CLI on the host (default $DOCKER, else docker)
  --compose CMD        compose command on the host (default "docker compose"; "docker-compose" for v1)`;

export interface HostFlags extends SshFlags {
  'remote-dir'?: string;
  docker?: string;
  compose?: string;
}

/** The docker CLI on the host from the flags; the dir is checked before connecting (it must be absolute). */
export function hostDockerCli(flags: HostFlags): DockerCli {
  return dockerCliFromFlags(
    flags,
    normalizeRemoteDir(flags['remote-dir'] ?? DEFAULT_BUNDLE_HOST_DIR),
    process.env.DOCKER ?? 'docker',
  );
}

/** --host is required: the host and its docker CLI. */
export function requireHost(flags: HostFlags, usage: string): { cli: DockerCli; host: string } {
  if (!flags.host) throw new InputError('--host is required', `see ${usage} --help`);
  return { host: flags.host, cli: hostDockerCli(flags) };
}

/** Connects, runs `fn` over the one connection, and closes it whatever happens. */
export async function withHost<T>(
  flags: HostFlags & { host: string },
  out: Output,
  cli: DockerCli,
  fn: (executor: Executor) => Promise<T>,
): Promise<T> {
  runContext.setPhase('connecting', 'nothing was changed on the host');
  const executor = await connectFromFlags(flags);
  return withCleanup(
    async () => {
      runContext.setPhase('reading the host', 'nothing was changed on the host');
      out.info(`target  ${executor.where}:${cli.dir}`);
      return await fn(executor);
    },
    () => executor.close(),
  );
}
