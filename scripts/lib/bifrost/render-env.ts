/**
 * The two secret files of the Bifrost bundle, rendered in memory from the secret source with the
 * schema's names (CLOUDFLARE_API_TOKEN → CF_DNS_API_TOKEN, AUTHENTIK_TOKEN → AUTHENTIK_BOOTSTRAP_TOKEN, …)
 * and, where the host takes a hash (NB_OWNER_PASSWORD → NB_OWNER_PASSWORD_HASH), the hash, computed here.
 * Nothing here touches a disk: provisioning uploads the text over SFTP.
 */
import { redactor } from '../core/redact.ts';
import { type ConsumerId, hashedNames, valuesFor } from '../secrets/schema.ts';
import { formatEnvFile, parseEnvFile } from './env-file.ts';
import { DOT_ENV, RENDERED_ENV_CONSUMERS, SECRETS_ENV } from './host-state.ts';

export const BIFROST_CONSUMERS: readonly ConsumerId[] = RENDERED_ENV_CONSUMERS.map(
  ([, consumer]) => consumer,
);

const HEADER = (file: string) =>
  `${file}: rendered by provision-bifrost from secrets/bootstrap.sops.yaml.\nDo not edit or commit; every provisioning run rewrites it.`;

/** The env-file names that hold a hash rather than a value. */
const HASHED_NAMES: ReadonlySet<string> = new Set(
  BIFROST_CONSUMERS.flatMap((c) => hashedNames(c).map((h) => h.name)),
);

/**
 * `host`: the host's .secrets.env and .env as they stand (undefined: none, or not read yet); a hash they
 * hold is kept while it verifies against the secret, so an unchanged secret renders an unchanged file.
 * Every hash rendered is registered with the redactor: it is not the secret, but nothing prints it.
 */
export function renderBifrostEnvFiles(
  values: Readonly<Record<string, string | undefined>>,
  host: { secretsEnv?: string; dotEnv?: string } = {},
): {
  secretsEnv: string;
  dotEnv: string;
} {
  const entries = (consumer: ConsumerId, held: string | undefined) =>
    valuesFor(consumer, values, parseEnvFile(held ?? '')).map(({ name, key, value }) => {
      if (HASHED_NAMES.has(name)) redactor.register(value, name);
      // A refused value is named as the operator knows it: the SOPS file's key.
      return { name, value, label: name === key ? name : `${name} (the SOPS file's ${key})` };
    });
  return {
    secretsEnv: formatEnvFile(entries('bifrost-secrets-env', host.secretsEnv), HEADER(SECRETS_ENV)),
    dotEnv: formatEnvFile(entries('bifrost-dot-env', host.dotEnv), HEADER(DOT_ENV)),
  };
}
