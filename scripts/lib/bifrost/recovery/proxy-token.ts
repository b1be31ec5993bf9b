/** bifrost proxy-token: mint a new NetBird proxy access token for netbird-proxy, recreate the proxy on it. */
import { netbirdCommand } from './netbird.ts';

export const summary = `mint a new NB_PROXY_TOKEN in netbird-server (token create), recreate netbird-proxy on it`;

export const command = netbirdCommand('proxy-token', {
  description: `Mints a new NetBird proxy access token (nbx_…) even though the host's .secrets.env holds one the
bootstrap minted: runs \`docker exec netbird-server /go/bin/netbird-server token create --name bifrost-proxy
--config /etc/netbird/config.yaml\` (the token is read from its stdout, never printed), replaces the minted
NB_PROXY_TOKEN line (one line, atomic, 0600), renders env/netbird-proxy.env and recreates netbird-proxy on it.
The old line stays until the new token is minted. A NB_PROXY_TOKEN from the SOPS file wins and is not
replaced: set a new one there instead (exit 2, nothing changed). The old token stays valid in NetBird
until revoked (token list, token revoke ID). Use it when the proxy's token was revoked or leaked. Takes
the host lock.`,
  footer: 'just: bifrost-proxy-token HOST',
  exits: {
    failed: 'a step failed, or netbird-server is not running (a token not yet minted leaves the old line)',
    badInput: "bad input (the host's NB_PROXY_TOKEN comes from the SOPS file)",
  },
});
