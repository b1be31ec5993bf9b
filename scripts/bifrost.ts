/**
 * bifrost: recovery commands for the Bifrost VPS, over the same SSH options as provision-bifrost. Each
 * command lives in scripts/lib/bifrost/recovery/; this entry point only dispatches.
 */

import * as checkBundle from './lib/bifrost/recovery/check-bundle.ts';
import { USAGE } from './lib/bifrost/recovery/common.ts';
import * as logs from './lib/bifrost/recovery/logs.ts';
import * as proxyToken from './lib/bifrost/recovery/proxy-token.ts';
import * as render from './lib/bifrost/recovery/render.ts';
import * as status from './lib/bifrost/recovery/status.ts';
import * as token from './lib/bifrost/recovery/token.ts';
import * as unlock from './lib/bifrost/recovery/unlock.ts';
import * as verify from './lib/bifrost/recovery/verify.ts';
import { defineGroup, isMainModule, runMain } from './lib/core/cli.ts';

export const command = defineGroup({
  name: USAGE,
  description: `Recovery commands for the Bifrost VPS, over one SSH connection each, or on the VPS itself with --local
(the same --host or --local, --remote-dir, --docker and --compose options as provision-bifrost). token,
proxy-token, render and unlock take --dry-run (show what would happen); status, logs and verify change
nothing, and accept --dry-run and --yes as no-ops.
Each has a justfile recipe: just bifrost-status HOST, bifrost-logs HOST SERVICE, bifrost-token HOST,
bifrost-proxy-token HOST, bifrost-render HOST, bifrost-verify HOST, bifrost-unlock HOST,
bifrost-check-bundle.`,
  commands: {
    status,
    logs: { ...logs, summary: `SERVICE: ${logs.summary}` },
    token,
    'proxy-token': proxyToken,
    render,
    verify,
    unlock,
    'check-bundle': checkBundle,
  },
  exits: {
    failed: 'failed while working (or: not healthy / differs, see each command)',
  },
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
