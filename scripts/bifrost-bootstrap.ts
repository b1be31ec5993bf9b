/**
 * bifrost-bootstrap: starts the Bifrost containers in dependency order on the host (locally or over
 * SSH), mints the Authentik token for NetBird, renders NetBird's config, and reports a status table.
 */

import { bundleProblems, readHostBundle, requireSoundBundle } from './lib/bifrost/check-bundle.ts';
import { dockerCliFromFlags } from './lib/bifrost/docker.ts';
import { describePlan, formatStatusTable, runBifrostBootstrap } from './lib/bifrost/engine.ts';
import { parseEnvFile } from './lib/bifrost/env-file.ts';
import { COMMON_OPTIONS, parseFlags, runMain } from './lib/cli.ts';
import { EXIT, InputError } from './lib/errors.ts';
import type { Executor } from './lib/exec/executor.ts';
import { LocalExecutor } from './lib/exec/local.ts';
import { connectFromFlags, SSH_OPTIONS } from './lib/exec/ssh-cli.ts';
import type { Output } from './lib/output.ts';
import { runContext, withCleanup } from './lib/run-context.ts';

const USAGE = 'node --import tsx scripts/bifrost-bootstrap.ts';

const HELP = `Usage: ${USAGE} (--local | --host H [--port P] [--user U] [--identity F] [--known-hosts F])
         [--dir DIR] [--docker BIN] [--compose CMD] [--dry-run] [--json]

Starts the Bifrost services in dependency order and waits for each to be healthy:
  traefik, authentik-postgres → authentik migrate → authentik-server + authentik-worker
  → netbird-mgmt-token (ak shell) → netbird/config.yaml → netbird-server
  → netbird-dashboard, netbird-proxy (needs NB_PROXY_TOKEN), netbird-agent (needs NB_BIFROST_SETUP_KEY)
The bundle on the host is checked first (\`bifrost check-bundle\`'s checks): a problem stops the run
before anything starts, with exit 2. Independent steps run in parallel. A re-run changes nothing; a
service whose env file or rendered config changed is recreated. Without NB_PROXY_TOKEN /
NB_BIFROST_SETUP_KEY those services are skipped with setup guidance and the run still succeeds.

Where:
  --local            run on this machine
  --host H           run on H over SSH (one connection); --port P (22), --user U ($USER),
                     --identity F (key file; else ssh-agent), --known-hosts F (~/.ssh/known_hosts),
                     --accept-new (record an unknown host key, like StrictHostKeyChecking=accept-new)
Options:
  --dir DIR          the bundle on the host (default /etc/bifrost)
  --docker BIN       docker CLI (default $DOCKER or docker)
  --compose CMD      compose command (default "docker compose"; "docker-compose" for v1)
  --cloud-init-timeout S  seconds to wait for cloud-init (default 600)
  --dry-run          print what would run, run nothing
  --json             print the result as JSON on stdout
  --verbose          print every command
  -h, --help         this help

Exit codes: 0 done (skipped optional services included), 1 a step failed, 2 bad input, 130 interrupted
by SIGINT, 143 by SIGTERM.`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...SSH_OPTIONS,
  local: { type: 'boolean' },
  dir: { type: 'string' },
  docker: { type: 'string' },
  compose: { type: 'string' },
  'cloud-init-timeout': { type: 'string' },
  'dry-run': { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  // For the sandbox and tests: shortens every deadline and backoff.
  'time-scale': { type: 'string' },
} as const;

function positiveNumber(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InputError(`--${flag} must be a positive number, not "${value}"`);
  return n;
}

export async function main(argv: string[], out: Output): Promise<number> {
  const flags = parseFlags(argv, OPTIONS, USAGE, HELP, out);
  if (!flags) return EXIT.ok;
  if (Boolean(flags.local) === Boolean(flags.host)) {
    throw new InputError('say where to run: --local or --host H (exactly one)', `see ${USAGE} --help`);
  }
  const cli = dockerCliFromFlags(flags, flags.dir, process.env.DOCKER ?? 'docker');
  runContext.setPhase('connecting', 'nothing was changed on the host');
  const executor: Executor = flags.local
    ? new LocalExecutor()
    : await connectFromFlags({ ...flags, host: flags.host as string });
  return withCleanup(
    async () => {
      // check-bundle on the bundle as it sits on the host, before anything starts.
      runContext.setPhase('checking the bundle', 'nothing was changed on the host');
      requireSoundBundle(
        await bundleProblems(await readHostBundle(executor, cli.dir)),
        `${executor.where}:${cli.dir}`,
      );
      runContext.setPhase('bootstrap', 'services already started keep running');
      out.info(
        out.color.bold(
          `bifrost-bootstrap on ${executor.where}, bundle ${cli.dir}${flags['dry-run'] ? ' [dry run]' : ''}`,
        ),
      );
      if (flags['dry-run']) {
        const secrets = parseEnvFile((await executor.files.readFile(`${cli.dir}/.secrets.env`)) ?? '');
        const lines = describePlan(cli, (key) => Boolean(secrets.get(key)));
        for (const line of lines) out.info(`  ${line}`);
        out.result({ ok: true, dryRun: true, where: executor.where, plan: lines });
        return EXIT.ok;
      }
      const result = await runBifrostBootstrap({
        executor,
        cli,
        out,
        timeScale: positiveNumber('time-scale', flags['time-scale'], 1),
        cloudInitTimeoutSec: positiveNumber('cloud-init-timeout', flags['cloud-init-timeout'], 600),
      });
      out.info(`\n${formatStatusTable(result)}`);
      if (result.failure) {
        out.error(`step ${result.failure.step} failed:\n${result.failure.message}`, result.failure.hint);
      } else {
        out.info(out.color.green(`bifrost is up in ${result.seconds.toFixed(1)} s`));
      }
      out.result({ ...result, where: executor.where, dir: cli.dir });
      return result.failure ? EXIT.failed : EXIT.ok;
    },
    () => executor.close(),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain((out) => main(process.argv.slice(2), out));
}
