/** bifrost token: mint NB_IDP_MGMT_TOKEN again, re-render NetBird's config, recreate netbird-server if changed. */
import { netbirdCommand } from './netbird.ts';

export const summary = `mint NB_IDP_MGMT_TOKEN again, re-render netbird/config.yaml, recreate netbird-server
when the config changed`;

export const command = netbirdCommand('token', {
  description: `Mints netbird-mgmt-token again: removes the NB_IDP_MGMT_TOKEN line from the host's .secrets.env (atomic,
0600), runs \`docker exec -i authentik-server ak shell\` with the script on stdin, stores the new token,
re-renders netbird/config.yaml and recreates netbird-server only if its config changed. Use it after
Authentik's database was restored or the token was deleted in Authentik. Takes the host lock.`,
  footer: 'just: bifrost-token HOST',
  exits: { failed: 'a step failed (the token line stays removed: run again once fixed)' },
});
