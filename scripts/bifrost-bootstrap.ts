/**
 * bifrost-bootstrap: starts the Bifrost containers in dependency order on the host (locally or over
 * SSH), mints the Authentik token for NetBird, renders NetBird's config, and reports a status table.
 */

import { bifrostBootstrap } from './lib/bifrost/bootstrap-command.ts';
import { HOST_ALIASES, HOST_OPTIONS, HOST_OPTIONS_HELP } from './lib/bifrost/host-flags.ts';
import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';

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
  run: (flags, _positionals, out) => bifrostBootstrap(flags, out, USAGE),
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
