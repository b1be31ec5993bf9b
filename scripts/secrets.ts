/**
 * secrets: the bootstrap SOPS file's own tooling, all derived from the schema table.
 *   init   generate every generatable key and write the SOPS file encrypted to an age recipient
 *   check  a table of every key: present, length, format, consumers; never a value
 *   set    one value (from stdin or a prompt) into the SOPS file, only that key's ENC[...] changing
 *   rotate new values for generatable keys, and what must be redeployed
 *   recipients  list, add or remove age recipients (.sops.yaml kept in step)
 *   edit   the decrypted file in $VISUAL/$EDITOR (plaintext only in memory), validated, minimal diff
 *   where  the design page's "What Lives Where" table
 *   status where every value stands: in sync / differs / missing in the cluster's Secrets and on the host
 * Each subcommand is defined beside its work: the SOPS file's own in lib/secrets/commands.ts, those that
 * read the cluster, the hosts or the bundle in lib/report/commands.ts.
 */
import { defineGroup, isMainModule, runMain } from './lib/core/cli.ts';
import { check, rotate, status, where } from './lib/report/commands.ts';
import { ENVIRONMENT, edit, init, recipients, set, USAGE } from './lib/secrets/commands.ts';

export const command = defineGroup({
  name: USAGE,
  description: "The bootstrap SOPS file's own tooling, all derived from the schema table.",
  // The order here is the order of the help's command list.
  commands: { init, check, rotate, recipients, set, edit, where, status },
  footer: ENVIRONMENT,
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
