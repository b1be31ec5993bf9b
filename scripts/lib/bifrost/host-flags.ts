/**
 * The host flags every Bifrost command shares (bifrost-bootstrap, provision-bifrost, the recovery
 * commands): where the host is (--host over SSH, with the SSH options, or --local: this machine is the
 * host), where the bundle lives on it and which docker CLI runs there, with their help lines, so that the
 * same flag means the same thing everywhere.
 */
import { resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { runContext, withCleanup } from '../core/run-context.ts';
import type { Executor } from '../exec/executor.ts';
import { LocalExecutor } from '../exec/local.ts';
import { connectFromFlags, SSH_OPTIONS, SSH_OPTIONS_HELP, type SshFlags } from '../exec/ssh-cli.ts';
import { DEFAULT_BUNDLE_HOST_DIR, type DockerCli, dockerCliFromFlags } from './docker.ts';
import { normalizeRemoteDir } from './upload.ts';

export const HOST_OPTIONS = {
  local: { type: 'boolean' },
  ...SSH_OPTIONS,
  'remote-dir': { type: 'string' },
  docker: { type: 'string' },
  compose: { type: 'string' },
} as const;

/** bifrost-bootstrap's --dir is the older spelling of --remote-dir. */
export const HOST_ALIASES = { dir: 'remote-dir' } as const;

export const HOST_OPTIONS_HELP = `  --local              this machine is the host (on the VPS itself): local commands, no SSH
${SSH_OPTIONS_HELP}
  --remote-dir D       the bundle directory on the host (default ${DEFAULT_BUNDLE_HOST_DIR}; with --local
                       a relative path is from the current directory)
  --docker BIN         docker CLI on the host (default $DOCKER, else docker)
  --compose CMD        compose command on the host (default "docker compose"; "docker-compose" for v1)`;

export interface HostFlags extends SshFlags {
  local?: boolean;
  'remote-dir'?: string;
  docker?: string;
  compose?: string;
}

/**
 * The docker CLI on the host from the flags; the dir is checked before connecting (it must be absolute on
 * a remote host; with --local a relative one is taken from the current directory).
 */
export function hostDockerCli(flags: HostFlags): DockerCli {
  const dir = flags['remote-dir'] ?? DEFAULT_BUNDLE_HOST_DIR;
  return dockerCliFromFlags(
    flags,
    normalizeRemoteDir(flags.local ? resolve(dir) : dir),
    process.env.DOCKER ?? 'docker',
  );
}

/** What a command that sets no `where` of its own calls this machine as the host. */
export const LOCAL_HOST = 'localhost';

/**
 * Exactly one of --local and --host: the host (LOCAL_HOST for --local) and its docker CLI. Checked
 * before anything else, so a command with neither (or both) exits 2 having done nothing.
 */
export function requireHost(flags: HostFlags, usage: string): { cli: DockerCli; host: string } {
  if (Boolean(flags.local) === Boolean(flags.host))
    throw new InputError(
      'say where to run: --local (this machine) or --host H (over SSH), exactly one',
      `see ${usage} --help`,
    );
  return { host: flags.host ?? LOCAL_HOST, cli: hostDockerCli(flags) };
}

/** The command that provisions the host these flags name, for hints. */
export function provisionCommand(flags: HostFlags): string {
  return flags.local
    ? 'node --import tsx scripts/provision-bifrost.ts --local'
    : `just bifrost-up ${flags.host ?? 'HOST'}`;
}

/** The host's executor: this machine with --local, else one SSH connection to --host. */
export async function openHost(flags: HostFlags): Promise<Executor> {
  runContext.setPhase('connecting', 'nothing was changed on the host');
  if (flags.local) return new LocalExecutor();
  if (!flags.host) throw new InputError('say where to run: --local or --host H');
  return connectFromFlags({ ...flags, host: flags.host });
}

/** Opens the host (requireHost checked the flags), runs `fn` on it, and closes it whatever happens. */
export async function withHost<T>(
  flags: HostFlags,
  out: Output,
  cli: DockerCli,
  fn: (executor: Executor) => Promise<T>,
): Promise<T> {
  const executor = await openHost(flags);
  return withCleanup(
    async () => {
      runContext.setPhase('reading the host', 'nothing was changed on the host');
      out.info(`target  ${executor.where}:${cli.dir}`);
      return await fn(executor);
    },
    () => executor.close(),
  );
}
