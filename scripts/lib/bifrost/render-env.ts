/**
 * The two secret files of the Bifrost bundle, rendered in memory from the secret source with the
 * schema's names (CLOUDFLARE_API_TOKEN → CF_DNS_API_TOKEN, AUTHENTIK_TOKEN → AUTHENTIK_BOOTSTRAP_TOKEN, …).
 * Nothing here touches a disk: provisioning uploads the text over SFTP.
 */
import { type ConsumerId, valuesFor } from '../secrets/schema.ts';
import { formatEnvFile } from './env-file.ts';

export const BIFROST_CONSUMERS: readonly ConsumerId[] = ['bifrost-secrets-env', 'bifrost-dot-env'];

const HEADER = (file: string) =>
  `${file}: rendered by provision-bifrost from secrets/bootstrap.sops.yaml.\nDo not edit or commit; every provisioning run rewrites it.`;

export function renderBifrostEnvFiles(values: Readonly<Record<string, string | undefined>>): {
  secretsEnv: string;
  dotEnv: string;
} {
  const entries = (consumer: ConsumerId) =>
    valuesFor(consumer, values).map(({ name, value }) => ({ name, value }));
  return {
    secretsEnv: formatEnvFile(entries('bifrost-secrets-env'), HEADER('.secrets.env')),
    dotEnv: formatEnvFile(entries('bifrost-dot-env'), HEADER('.env')),
  };
}
