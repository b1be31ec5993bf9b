/**
 * The netbird-mgmt-token step: Authentik's Django ORM, reached with `docker exec -i authentik-server ak
 * shell` and this script on stdin (Django's shell executes stdin). The key never appears on any argv:
 * the script reads AUTHENTIK_BOOTSTRAP_TOKEN from the container's own environment.
 */
export const TOKEN_IDENTIFIER = 'netbird-mgmt-token';

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
