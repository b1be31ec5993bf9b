/**
 * provision-bifrost: renders .secrets.env and .env in memory from the bootstrap secrets, uploads the
 * cloud/bifrost bundle over one SSH connection (staged, swapped in by rename, incremental), then runs
 * the bootstrap engine over the same connection. Replaces the original's Pulumi step.
 */

import { HOST_OPTIONS, HOST_OPTIONS_HELP } from './lib/bifrost/host-flags.ts';
import { provisionBifrost } from './lib/bifrost/provision.ts';
import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';
import { DEFAULT_SECRETS_FILE } from './lib/secrets/source.ts';

const USAGE = 'node --import tsx scripts/provision-bifrost.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...HOST_OPTIONS,
  'secrets-file': { type: 'string' },
  'from-env': { type: 'boolean' },
  force: { type: 'boolean' },
  'allow-rotate': { type: 'string', multiple: true },
  'lock-wait': { type: 'string' },
  'write-local': { type: 'string' },
  'dry-run': { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  strict: { type: 'boolean' },
  bundle: { type: 'string' },
} as const;

export const command = defineCommand({
  name: USAGE,
  synopsis: '(--host H | --local) [options]',
  description: `Provisions the Bifrost VPS in one SSH connection (--local: this machine, on the VPS itself):
  1. renders .secrets.env and .env in memory from the bootstrap secrets (nothing written locally;
     NB_OWNER_PASSWORD only as its bcrypt hash, the host's kept while it verifies), and checks the
     bundle as \`bifrost check-bundle\` does: a problem stops the run (exit 2) before connecting
  2. refuses a changed NB_DATA_STORE_KEY / NB_RELAY_SECRET / Authentik key unless --allow-rotate KEY
  3. uploads cloud/bifrost/ to --remote-dir: only changed files, into a staging directory that replaces
     the live one by rename when complete; secret files are 0600 from creation
  4. runs the bootstrap (service order, health, Authentik token, NetBird config) over the same
     connection, its output streamed; skipped when nothing changed since the last deploy (--force runs it)
A lock on the host stops two operators provisioning at once; a lock whose run is provably gone (it ran
on this machine and its process has ended, even if its take was cut short; or it never recorded its holder,
after 60 s) is taken over with a notice.
Ctrl-C (SIGINT) or SIGTERM stops the work, releases the lock and says what was interrupted.`,
  options: OPTIONS,
  aliases: { file: 'secrets-file' },
  optionsHelp: `${HOST_OPTIONS_HELP}
  --secrets-file F     SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same; --from-env
                       takes the environment
  --force              run the bootstrap even when nothing changed
  --allow-rotate KEY   accept a changed guarded secret (repeatable)
  --strict             refuse a hand-made token (Cloudflare, NetBird) whose format is not the vendor's
                       documented one; without it that is a warning and the value is used
  --lock-wait S        wait up to S seconds for another operator's lock (default 0)
  --write-local DIR    also write the rendered .secrets.env and .env to DIR (0600, atomic)
  --bundle DIR         the local bundle to upload (default cloud/bifrost of this checkout)
  --dry-run            say what would be uploaded and run; change nothing (--write-local writes nothing)
  -y, --yes            no prompts (it asks none)`,
  exits: {
    ok: 'done (or nothing to do)',
    failed: 'failed while working (a step, the lock held by another run)',
    badInput: 'bad input (missing or malformed secrets, a guarded secret changed, host key refused)',
  },
  run: (flags, _positionals, out) => provisionBifrost(flags, out, USAGE),
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
