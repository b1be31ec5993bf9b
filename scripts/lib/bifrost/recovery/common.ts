/** What the recovery commands of scripts/bifrost.ts share: their name, host flags and help lines. */
import { COMMON_OPTIONS } from '../../core/cli.ts';
import { InputError, WorkError } from '../../core/errors.ts';
import type { Output } from '../../core/output.ts';
import type { Executor } from '../../exec/executor.ts';
import { LocalExecutor } from '../../exec/local.ts';
import { keysFor } from '../../secrets/schema.ts';
import { DEFAULT_SECRETS_FILE, loadSecrets } from '../../secrets/source.ts';
import { DEFAULT_BUNDLE_HOST_DIR } from '../docker.ts';
import { HOST_OPTIONS, HOST_OPTIONS_HELP } from '../host-flags.ts';
import { BIFROST_CONSUMERS } from '../render-env.ts';
import type { Verdict } from '../upload.ts';

export const USAGE = 'node --import tsx scripts/bifrost.ts';

/** Every host command's flags; the read-only ones accept --dry-run and --yes as no-ops, so every command takes the same flags. */
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

/** Where the operator's secret values come from, as provision-bifrost takes them. */
export const SECRETS_OPTIONS = {
  'secrets-file': { type: 'string' },
  'from-env': { type: 'boolean' },
} as const;

export const SECRETS_OPTIONS_HELP = `  --secrets-file F     SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same; --from-env
                       takes the environment`;

/** How an operator gives the values a command needs to redact what it prints. */
export const GIVE_VALUES_HINT =
  "give the values as for just bifrost-up: --secrets-file F with its age key (SOPS_AGE_KEY_FILE or ~/.config/sops/age/keys.txt), or --from-env with them in the environment (sops exec-env F '…')";

/**
 * Registers the operator's secret values (the SOPS file, or the environment) with the redactor, or an
 * InputError saying why they cannot be known. Container output is redacted with these, not only with the
 * host's env files: a host that lost (or never had) its .secrets.env still runs containers that print
 * the values, and the host cannot be trusted to say what they are. Every required Bifrost key must be
 * known: a value missing here is one the redactor could not hide.
 */
export async function registerOperatorSecrets(
  flags: { 'secrets-file'?: string; 'from-env'?: boolean },
  out: Output,
): Promise<void> {
  const { required } = keysFor(BIFROST_CONSUMERS);
  let loaded: Awaited<ReturnType<typeof loadSecrets>>;
  try {
    loaded = await loadSecrets({
      secretsFile: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      fromEnv: Boolean(flags['from-env']),
      required,
      executor: new LocalExecutor(),
    });
  } catch (err) {
    if (!(err instanceof InputError || err instanceof WorkError)) throw err;
    throw new InputError(
      `the secret values are needed to redact what the host prints, and cannot be read: ${err.message}`,
      // The loader's own hint when it says more than how to give the values (the age key to check).
      `${GIVE_VALUES_HINT}${err.hint && !err.hint.includes('--from-env') ? `; ${err.hint}` : ''}`,
    );
  }
  const missing = required.filter((k) => !loaded.values[k]);
  if (missing.length > 0) {
    throw new InputError(
      `${loaded.describe} lacks ${missing.join(', ')}: the host's output cannot be redacted without every Bifrost value`,
      GIVE_VALUES_HINT,
    );
  }
  out.info(`source  ${loaded.describe}`);
  for (const warning of loaded.warnings) out.warn(warning);
}

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
