/** What the recovery commands of scripts/bifrost.ts share: their name, host flags and help lines. */
import { COMMON_OPTIONS } from '../../cli.ts';
import { WorkError } from '../../errors.ts';
import type { Executor } from '../../exec/executor.ts';
import type { Output } from '../../output.ts';
import { DEFAULT_BUNDLE_HOST_DIR } from '../docker.ts';
import { HOST_OPTIONS, HOST_OPTIONS_HELP } from '../host-flags.ts';
import type { Verdict } from '../upload.ts';

export const USAGE = 'node --import tsx scripts/bifrost.ts';

/** Every host command's flags; the read-only ones accept --dry-run and --yes as no-ops (DESIGN.md). */
export const RECOVERY_OPTIONS = {
  ...COMMON_OPTIONS,
  ...HOST_OPTIONS,
  'dry-run': { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
} as const;

export const RECOVERY_OPTIONS_HELP = HOST_OPTIONS_HELP;

/** A read-only command: --dry-run and --yes change nothing, since it changes nothing. */
export const READ_ONLY_HELP = `${RECOVERY_OPTIONS_HELP}
  --dry-run, -y/--yes  accepted; this command changes nothing`;

/** --lock-wait, for the commands that take the host lock. */
export const LOCK_WAIT_HELP =
  "  --lock-wait S        wait up to S seconds for another run's lock (default 0)";

/** A verdict cell: green when the same, yellow otherwise (painted after padding). */
export function paintVerdict(out: Output, padded: string): string {
  return (padded.trim() as Verdict) === 'same' ? out.color.green(padded) : out.color.yellow(padded);
}

/**
 * The bundle directory is there with its compose file, or a WorkError saying which is missing. Checked
 * first: docker answers for the containers whatever directory was named, so a wrong --remote-dir would
 * otherwise read as a healthy host, and a mutating command would create directories there (its lock).
 */
export async function requireBundleDir(executor: Executor, dir: string): Promise<void> {
  const [compose, top] = await Promise.all([
    executor.files.stat(`${dir}/docker-compose.yml`),
    executor.files.stat(dir),
  ]);
  if (compose) return;
  throw new WorkError(
    top
      ? `${dir} on ${executor.where} holds no docker-compose.yml: it is not a provisioned Bifrost bundle`
      : `${dir} does not exist on ${executor.where}: there is no Bifrost bundle to look at`,
    `check --remote-dir (default ${DEFAULT_BUNDLE_HOST_DIR}), or provision the host first: just bifrost-up HOST`,
  );
}
