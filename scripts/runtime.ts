/**
 * runtime: the runtime tier's cluster-side commands.
 *   setup  the one-time OpenBao setup (auth method, KV mount, per-app policy and role, initial values)
 *          run in the OpenBao pod through `kubectl exec -i`, the token and values on stdin only
 */
import { defineGroup, isMainModule, runMain } from './lib/core/cli.ts';
import { setupCommand, USAGE } from './lib/runtime/setup-command.ts';

export const command = defineGroup({
  name: USAGE,
  description: "The runtime tier's cluster-side commands.",
  commands: {
    setup: {
      command: setupCommand,
      summary: 'one-time OpenBao setup: auth, KV mount, per-app policy and role, create-only initial values',
    },
  },
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
