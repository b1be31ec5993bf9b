/**
 * The `bifrost-bootstrap` command's work: on the host (locally or over SSH), check the bundle as it sits
 * there, then run the engine (or, under --dry-run, a recording run) and report its status table.
 */

import { numberFlag } from '../core/cli.ts';
import { EXIT } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { runContext, withCleanup } from '../core/run-context.ts';
import { bundleProblems, readHostBundle, requireSoundBundle } from './check-bundle.ts';
import { dryRunBootstrap, reportDryRun } from './dry-run.ts';
import { formatStatusTable, runBifrostBootstrap } from './engine.ts';
import { type HostFlags, openHost, requireHost } from './host-flags.ts';

export interface BootstrapFlags extends HostFlags {
  'cloud-init-timeout'?: string;
  'dry-run'?: boolean;
}

export async function bifrostBootstrap(flags: BootstrapFlags, out: Output, usage: string): Promise<number> {
  const { cli } = requireHost(flags, usage);
  const cloudInitTimeoutSec = numberFlag('cloud-init-timeout', flags['cloud-init-timeout'], 'positive', 600);
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
}
