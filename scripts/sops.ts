/**
 * `sops decrypt` and `sops exec-env` without the sops binary, for age-encrypted files.
 * Each subcommand is defined beside its work in lib/secrets/sops-commands.ts.
 * Run: node --import tsx scripts/sops.ts --help
 */
import { defineGroup, isMainModule, runMain } from './lib/core/cli.ts';
import { decrypt, EXITS, execEnv, USAGE } from './lib/secrets/sops-commands.ts';

export const command = defineGroup({
  name: USAGE,
  description: `Decrypts SOPS files encrypted with age, without the sops binary. The MAC is always checked.`,
  commands: {
    decrypt,
    'exec-env': execEnv,
  },
  footer: `Age keys are found as sops finds them: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, then
$XDG_CONFIG_HOME/sops/age/keys.txt or ~/.config/sops/age/keys.txt. A keys file or SOPS file that its
group or other users can read gets a warning with the chmod that fixes it.

Environment:
  SECRETS_FLOW_SOPS_TIMEOUT  seconds SOPS_AGE_KEY_CMD may run before it is killed (default 30)

Limits (bad input, exit 2): a regular file of at most 16 MiB (a FIFO, device or directory is
refused unopened), maps and lists nested at most 100 deep, keys and values of at most 1 MiB each,
at most 200000 keys and list items in all.`,
  exits: EXITS,
});

// The plaintext goes to stdout untouched (that is what decrypt is for); errors go through runMain's
// redacted error path with the conventional exit codes.
if (isMainModule(import.meta.url)) {
  await runMain(command);
}
