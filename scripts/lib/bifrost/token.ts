/**
 * The netbird-mgmt-token step: Authentik's Django ORM, reached with `docker exec -i authentik-server ak
 * shell` and this script on stdin (Django's shell executes stdin). The key never appears on any argv:
 * the script reads AUTHENTIK_BOOTSTRAP_TOKEN from the container's own environment.
 */
export const TOKEN_IDENTIFIER = 'netbird-mgmt-token';

/**
 * The .secrets.env key the token is minted from: the script below gives the Authentik token the value of
 * AUTHENTIK_BOOTSTRAP_TOKEN (env/authentik.env, rendered from this key), so a new value means a new token.
 */
export const TOKEN_MINTED_FROM = 'AUTHENTIK_BOOTSTRAP_TOKEN';

export const AK_SHELL_SCRIPT = `
import os, sys
from authentik.core.models import Token, TokenIntents, User

key = os.environ.get("AUTHENTIK_BOOTSTRAP_TOKEN", "")
if not key:
    print("ERROR: AUTHENTIK_BOOTSTRAP_TOKEN is not set in the container", file=sys.stderr)
    sys.exit(3)
user = User.objects.filter(username="akadmin").first()
if user is None:
    # The worker creates akadmin from its blueprints; the caller retries until it exists.
    print("ERROR: user akadmin does not exist yet", file=sys.stderr)
    sys.exit(4)
token, created = Token.objects.get_or_create(
    identifier="${TOKEN_IDENTIFIER}",
    defaults={
        "user": user,
        "intent": TokenIntents.INTENT_API,
        "key": key,
        "expiring": False,
        "description": "NetBird IDP management token (provisioned by secrets-flow)",
    },
)
if created:
    print("created new token", file=sys.stderr)
elif token.key != key:
    token.key = key
    token.save(update_fields=["key"])
    print("updated existing token key", file=sys.stderr)
else:
    print("token already exists with matching key", file=sys.stderr)
print("TOKEN:" + token.key)
`;

/** The key from the one `TOKEN:` line among Authentik's log noise, or undefined. */
export function findTokenLine(stdout: string): string | undefined {
  for (const line of stdout.split('\n')) {
    const m = /^TOKEN:(\S+)\s*$/.exec(line.replace(/\r$/, ''));
    if (m) return m[1];
  }
  return undefined;
}

/** One try at minting: the token, or why not (a line for the log, the whole text for the failure). */
export type MintAttempt = { token: string } | { error: string };

export interface MintRetryOptions {
  /** Wall-clock deadline (Date.now() milliseconds): no attempt starts whose wait would pass it. */
  deadline: number;
  /** The first wait; each later one doubles, up to `maxDelayMs`. */
  firstDelayMs: number;
  maxDelayMs: number;
  attempt: (n: number) => Promise<MintAttempt>;
  /** Before each wait: attempt `n` failed with `error`; the next starts in `delayMs`. */
  onRetry: (n: number, error: string, delayMs: number) => void;
  /** The wait itself; the engine's ends at once on an interrupt. */
  sleep: (ms: number) => Promise<void>;
  now?: () => number;
}

export type MintOutcome = { token: string; attempts: number } | { error: string; attempts: number };

/** Thrown inside zx's retry to mean "try again"; anything else ends the loop. */
class TryAgain extends Error {}

/**
 * zx's retry machinery, loaded once. Loading zx takes ~0.2 s: the engine starts it early, off the critical
 * path, so that the token's first attempt follows Authentik's health at once.
 */
let retryKit: Promise<Pick<typeof import('zx'), 'retry' | 'expBackoff'>> | undefined;
export function loadRetry(): Promise<Pick<typeof import('zx'), 'retry' | 'expBackoff'>> {
  retryKit ??= (async () => {
    const { loadZx, requireHere } = await import('../exec/local.ts');
    await loadZx(); // zx's log hook (the retry log entries) goes through the redactor
    // retry and expBackoff are only in the full `zx` entry point; its CommonJS build shares zx/core's $.
    const { retry, expBackoff } = requireHere('zx') as typeof import('zx');
    return { retry, expBackoff };
  })();
  return retryKit;
}

/**
 * The token step's retries: zx's `retry` runs the attempts and `expBackoff` spaces them (1 s, 2 s,
 * 4 s … capped), bounded by a wall-clock deadline as every wait here is.
 * zx's own sleep cannot be interrupted, so zx is given no delay and the wait happens at the start of
 * the next attempt, through `sleep`. Only TryAgain is retried: an interrupt or a dropped connection
 * comes back out of `retry` at once, as a value, and is rethrown here.
 */
export async function mintWithRetry(opts: MintRetryOptions): Promise<MintOutcome> {
  const now = opts.now ?? Date.now;
  const { retry, expBackoff } = await loadRetry();
  const backoff = expBackoff(opts.maxDelayMs, opts.firstDelayMs);
  // The most attempts the deadline allows even if every one failed at once: the bound zx counts to.
  const most = Math.max(1, Math.ceil((opts.deadline - now()) / Math.max(1, opts.firstDelayMs)) + 1);
  let attempts = 0;
  let lastError = '';
  type Step = MintOutcome | { thrown: unknown };
  const step: Step = await retry(most, async (): Promise<Step> => {
    try {
      if (attempts > 0) {
        const delay = backoff.next().value ?? opts.maxDelayMs;
        if (now() + delay > opts.deadline) return { error: lastError, attempts };
        opts.onRetry(attempts, lastError, delay);
        await opts.sleep(delay);
      }
      attempts += 1;
      const r = await opts.attempt(attempts);
      if ('token' in r) return { token: r.token, attempts };
      lastError = r.error;
    } catch (err) {
      return { thrown: err };
    }
    throw new TryAgain(lastError);
  }).catch((err: unknown) =>
    err instanceof TryAgain ? { error: lastError, attempts } : ({ thrown: err } as Step),
  );
  if ('thrown' in step) throw step.thrown;
  return step;
}

/**
 * The token from NetBird's `token create` output: the `Token: nbx_…` line among "Token created
 * successfully!", the warning and `Token ID: …` (netbirdio/netbird@v0.66.0:management/cmd/token/token.go).
 */
export function findProxyTokenLine(stdout: string): string | undefined {
  for (const line of stdout.split('\n')) {
    const m = /^Token: (nbx_\S+)\s*$/.exec(line.replace(/\r$/, ''));
    if (m) return m[1];
  }
  return undefined;
}
