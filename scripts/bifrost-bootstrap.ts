/**
 * bifrost-bootstrap: starts the Bifrost containers in dependency order on the host (locally or over
 * SSH), mints the Authentik token for NetBird, renders NetBird's config, and reports a status table.
 */

import { bundleProblems, readHostBundle, requireSoundBundle } from './lib/bifrost/check-bundle.ts';
import { dryRunBootstrap, reportDryRun } from './lib/bifrost/dry-run.ts';
import { formatStatusTable, runBifrostBootstrap } from './lib/bifrost/engine.ts';
import {
  HOST_ALIASES,
  HOST_OPTIONS,
  HOST_OPTIONS_HELP,
  openHost,
  requireHost,
} from './lib/bifrost/host-flags.ts';
import { COMMON_OPTIONS, defineCommand, numberFlag, runMain } from './lib/core/cli.ts';
import { EXIT } from './lib/core/errors.ts';
import { runContext, withCleanup } from './lib/core/run-context.ts';

const USAGE = 'node --import tsx scripts/bifrost-bootstrap.ts';

export const command = defineCommand({
  name: USAGE,
  synopsis: '(--local | --host H [ssh options]) [--remote-dir D] [--dry-run] [options]',
  description: `Starts the Bifrost services in dependency order and waits for each to be healthy:
  traefik; authentik-postgres → authentik migrate → authentik-server + authentik-worker
  → netbird-mgmt-token (ak shell); beside them, netbird/config.yaml → netbird-server
  → netbird-dashboard, netbird-proxy-token → netbird-proxy, netbird-agent (needs NB_BIFROST_SETUP_KEY)
Without NB_PROXY_TOKEN in .secrets.env, netbird-proxy-token mints one once netbird-server is healthy,
as NetBird's setup does (docker exec netbird-server /go/bin/netbird-server token create; the nbx_ token
read from stdout), and keeps it in .secrets.env; a value from the SOPS file wins.
The bundle on the host is checked first (\`bifrost check-bundle\`'s checks): a problem stops the run
before anything starts, with exit 2. Independent steps run in parallel. A re-run changes nothing; a
service whose env file or rendered config changed is recreated. Without NB_BIFROST_SETUP_KEY the
agent is skipped with setup guidance and the run still succeeds.
--dry-run runs the real plan against a recording executor: the host's files are only read, every
command is recorded and answered as a host where everything comes up; it prints those commands.`,
  options: {
    ...COMMON_OPTIONS,
    ...HOST_OPTIONS,
    'cloud-init-timeout': { type: 'string' },
    'dry-run': { type: 'boolean' },
    yes: { type: 'boolean', short: 'y' },
  },
  aliases: HOST_ALIASES,
  optionsHelp: `${HOST_OPTIONS_HELP}
  --dir D              the same as --remote-dir
  --cloud-init-timeout S  seconds to wait for cloud-init (default 600)
  --dry-run            print what would run (a recording run), run nothing
  -y, --yes            no prompts (it asks none)`,
  exits: { ok: 'done (skipped optional services included)', failed: 'a step failed' },
  async run(flags, _positionals, out) {
    const { cli } = requireHost(flags, USAGE);
    const cloudInitTimeoutSec = numberFlag(
      'cloud-init-timeout',
      flags['cloud-init-timeout'],
      'positive',
      600,
    );
    const executor = await openHost(flags);
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
          const dry = await dryRunBootstrap({ executor, cli, out, cloudInitTimeoutSec });
          return reportDryRun(dry, out, { where: executor.where, dir: cli.dir });
        }
        const result = await runBifrostBootstrap({ executor, cli, out, cloudInitTimeoutSec });
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
  },
});

export const main = command.main;

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain(command);
}
