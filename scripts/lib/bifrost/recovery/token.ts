/** bifrost token: mint NB_IDP_MGMT_TOKEN again, re-render NetBird's config, recreate netbird-server if changed. */
import { netbirdCommand } from './netbird.ts';

export const summary = `mint NB_IDP_MGMT_TOKEN again, re-render netbird/config.yaml, recreate netbird-server
when the config changed`;

export const command = netbirdCommand('token', {
  description: `Mints netbird-mgmt-token again, even though the host's .secrets.env holds NB_IDP_MGMT_TOKEN: runs
\`docker exec -i authentik-server ak shell\` with the script on stdin, then replaces the NB_IDP_MGMT_TOKEN
line with the new token (one line, atomic, 0600), re-renders netbird/config.yaml and recreates
netbird-server only if its config changed. Nothing on the host changes before the engine's pre-flight
passes, and the old line stays until the new token is minted: a failure before that leaves .secrets.env as
it was. Use it after Authentik's database was restored or the token was deleted in Authentik. Takes the
host lock.`,
  footer: 'just: bifrost-token HOST',
  exits: { failed: 'a step failed (a token not yet minted leaves the old line: run again once fixed)' },
});
