/**
 * The Bifrost service plan as data: every step of the bootstrap, what it waits for, its deadline, the
 * optional secret that gates it, and which secrets each service receives. The engine walks this table;
 * nothing else encodes the order.
 */

/** Keys of .secrets.env that are not in the SOPS file: the engine itself writes them on the host. */
export const NB_IDP_MGMT_TOKEN = 'NB_IDP_MGMT_TOKEN';

/**
 * The reverse proxy's token: from the SOPS file when it holds one, else minted on the host by the
 * netbird-proxy-token step and kept in .secrets.env (host-state.ts carries it over on later provisions).
 */
export const NB_PROXY_TOKEN = 'NB_PROXY_TOKEN';

export interface Gate {
  /** A .secrets.env key; without a value the step is skipped (and the run still succeeds). */
  key: string;
  /** One-time setup guidance shown when skipped (design page / original bootstrap.sh). */
  guidance: string[];
}

interface StepBase {
  id: string;
  /** Step ids that must be done first. */
  after: string[];
  /** Wall-clock deadline for the step (health, command, or retries), in seconds. */
  deadlineSec: number;
  gate?: Gate;
}

export type PlanStep =
  /** `COMPOSE up -d --no-deps SERVICE`, then wait until healthy. */
  | (StepBase & { kind: 'service'; service: string })
  /**
   * `COMPOSE run --rm --no-deps SERVICE ARGS…`: a one-off command that must exit 0. Not run when every
   * service of `currentWith` is up to date (same definition and inputs as recorded, running and healthy):
   * migrations for the image that runs have been applied.
   */
  | (StepBase & { kind: 'run'; service: string; args: string[]; currentWith?: string[] })
  /** Mint netbird-mgmt-token with `ak shell` and store it as NB_IDP_MGMT_TOKEN. */
  | (StepBase & { kind: 'token'; container: string })
  /** Render netbird/config.yaml from its template. */
  | (StepBase & { kind: 'render'; template: string; output: string })
  /**
   * `docker exec CONTAINER COMMAND…`, which prints the token on a `Token: …` line of stdout, stored as `key`
   * in .secrets.env. Not run when .secrets.env already holds `key` (from the SOPS file, or minted before).
   */
  | (StepBase & { kind: 'proxy-token'; container: string; command: string[]; key: string });

/**
 * How NetBird's own setup mints the proxy's token once the server is up (netbirdio/netbird@v0.66.0:
 * infrastructure_files/getting-started.sh, "Phase 2"): the image has the binary at /go/bin/netbird-server
 * and /go/bin is not on PATH (combined/Dockerfile), and `token create` prints `Token: nbx_…` on stdout
 * (management/cmd/token/token.go). The proxy accepts only such nbx_ proxy access tokens, not personal
 * access tokens (management/internals/shared/grpc/proxy_auth.go).
 */
export const PROXY_TOKEN_COMMAND: readonly string[] = [
  '/go/bin/netbird-server',
  'token',
  'create',
  '--name',
  'bifrost-proxy',
  '--config',
  '/etc/netbird/config.yaml',
];

/** What an operator does when the proxy token step fails, or to use a token of their own. */
export const PROXY_TOKEN_GUIDANCE = [
  'netbird-proxy needs a NetBird proxy access token (nbx_…); the bootstrap mints one itself once netbird-server is healthy:',
  `  docker exec netbird-server ${PROXY_TOKEN_COMMAND.join(' ')}  (prints "Token: nbx_…")`,
  '  a new one on request: just bifrost-proxy-token HOST',
  '  your own instead: node --import tsx scripts/secrets.ts set NB_PROXY_TOKEN (just secrets-set NB_PROXY_TOKEN); the SOPS value wins',
];

const AGENT_GUIDANCE = [
  "netbird-agent needs a setup key; until it runs, the cluster's services are unreachable from the internet (one-time setup):",
  '  1. log in to the NetBird UI',
  '  2. Setup Keys → create a reusable setup key for bifrost',
  '  3. add it as NB_BIFROST_SETUP_KEY: node --import tsx scripts/secrets.ts set NB_BIFROST_SETUP_KEY (just secrets-set NB_BIFROST_SETUP_KEY)',
  '  4. run again: just bifrost-up',
];

export const BIFROST_PLAN: readonly PlanStep[] = [
  { id: 'traefik', kind: 'service', service: 'traefik', after: [], deadlineSec: 60 },
  { id: 'authentik-postgres', kind: 'service', service: 'authentik-postgres', after: [], deadlineSec: 120 },
  {
    id: 'authentik-migrate',
    kind: 'run',
    service: 'authentik-server',
    args: ['migrate'],
    currentWith: ['authentik-server', 'authentik-worker'],
    after: ['authentik-postgres'],
    deadlineSec: 600,
  },
  {
    id: 'authentik-server',
    kind: 'service',
    service: 'authentik-server',
    after: ['authentik-migrate'],
    deadlineSec: 300,
  },
  {
    id: 'authentik-worker',
    kind: 'service',
    service: 'authentik-worker',
    after: ['authentik-migrate'],
    deadlineSec: 300,
  },
  // The worker creates akadmin from its blueprints: waiting for the server alone raced it (original §2).
  // Minted beside NetBird, not in front of it: no file NetBird reads names NB_IDP_MGMT_TOKEN (the pinned
  // server has no IdP token, netbirdio/netbird@v0.66.0:combined/cmd/config.go), so an Authentik that fails
  // to mint does not keep the VPN down. A render step whose template names it waits for it (check-bundle).
  {
    id: 'netbird-mgmt-token',
    kind: 'token',
    container: 'authentik-server',
    after: ['authentik-server', 'authentik-worker'],
    deadlineSec: 180,
  },
  {
    id: 'netbird-config',
    kind: 'render',
    template: 'netbird/config.yaml.tmpl',
    output: 'netbird/config.yaml',
    after: [],
    deadlineSec: 30,
  },
  {
    id: 'netbird-server',
    kind: 'service',
    service: 'netbird-server',
    after: ['netbird-config'],
    deadlineSec: 120,
  },
  {
    id: 'netbird-dashboard',
    kind: 'service',
    service: 'netbird-dashboard',
    after: ['netbird-server'],
    deadlineSec: 60,
  },
  {
    id: 'netbird-proxy-token',
    kind: 'proxy-token',
    container: 'netbird-server',
    command: [...PROXY_TOKEN_COMMAND],
    key: NB_PROXY_TOKEN,
    after: ['netbird-server'],
    deadlineSec: 60,
  },
  {
    id: 'netbird-proxy',
    kind: 'service',
    service: 'netbird-proxy',
    after: ['netbird-proxy-token'],
    deadlineSec: 60,
  },
  {
    id: 'netbird-agent',
    kind: 'service',
    service: 'netbird-agent',
    after: ['netbird-server'],
    deadlineSec: 60,
    gate: { key: 'NB_BIFROST_SETUP_KEY', guidance: AGENT_GUIDANCE },
  },
];

/**
 * Compose services no plan step starts, each with who starts it instead (by hand, or another service).
 * The original lost a service this way ("bad gateway after redeploy"): `check-bundle` refuses any other
 * compose service the plan never starts. Empty today: the plan starts every service.
 */
export const NOT_STARTED_BY_PLAN: readonly { service: string; startedBy: string }[] = [];

/**
 * Which .secrets.env values each service receives, and under which name, rendered into env/<file>.env.
 * A service sees only what it reads, so changing one secret recreates only the services that use it.
 */
export const SERVICE_SECRET_FILES: readonly {
  file: string;
  services: string[];
  entries: { name: string; from: string }[];
}[] = [
  {
    file: 'env/traefik.env',
    services: ['traefik'],
    entries: [{ name: 'CF_DNS_API_TOKEN', from: 'CF_DNS_API_TOKEN' }],
  },
  {
    file: 'env/authentik.env',
    services: ['authentik-server', 'authentik-worker'],
    entries: [{ name: 'AUTHENTIK_BOOTSTRAP_TOKEN', from: 'AUTHENTIK_BOOTSTRAP_TOKEN' }],
  },
  {
    file: 'env/netbird-proxy.env',
    services: ['netbird-proxy'],
    entries: [{ name: NB_PROXY_TOKEN, from: NB_PROXY_TOKEN }],
  },
  {
    file: 'env/netbird-agent.env',
    services: ['netbird-agent'],
    entries: [{ name: 'NB_SETUP_KEY', from: 'NB_BIFROST_SETUP_KEY' }],
  },
];

/** Placeholders the NetBird template may use, all read from .secrets.env. */
export const CONFIG_PLACEHOLDERS = [
  'NB_RELAY_SECRET',
  'NB_DATA_STORE_KEY',
  'NB_OWNER_PASSWORD_HASH',
  NB_IDP_MGMT_TOKEN,
] as const;

export function stepById(id: string): PlanStep | undefined {
  return BIFROST_PLAN.find((s) => s.id === id);
}

/** The plan's services, in plan order, with the optional secret that gates each. */
export function planServices(plan: readonly PlanStep[] = BIFROST_PLAN): { service: string; gate?: string }[] {
  return plan.flatMap((s) => (s.kind === 'service' ? [{ service: s.service, gate: s.gate?.key }] : []));
}

/** The plan cut down to `ids`, each step waiting only for chosen steps (the others are done already). */
export function restrictPlan(ids: readonly string[], plan: readonly PlanStep[] = BIFROST_PLAN): PlanStep[] {
  return plan
    .filter((s) => ids.includes(s.id))
    .map((s) => ({ ...s, after: s.after.filter((a) => ids.includes(a)) }));
}
