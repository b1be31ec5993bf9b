/** What the recovery commands of scripts/bifrost.ts share: their name, host flags and help lines. */
import { COMMON_OPTIONS } from '../../cli.ts';
import type { Output } from '../../output.ts';
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
