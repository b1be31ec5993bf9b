/** bifrost render: re-render NetBird's config, recreate netbird-server if it changed. */
import { netbirdCommand } from './netbird.ts';

export const summary =
  're-render netbird/config.yaml from .secrets.env; recreate netbird-server when it changed';

export const command = netbirdCommand('render', {
  description: `Renders netbird/config.yaml again from the host's .secrets.env and its template, and recreates
netbird-server only when the rendered config changed (after a hand edit of NB_RELAY_SECRET, for example).
Takes the host lock.`,
  footer: 'just: bifrost-render HOST',
  exits: {
    failed: 'a step failed',
    badInput: 'bad input (the template names NB_IDP_MGMT_TOKEN, and there is none yet: run token first)',
  },
});
