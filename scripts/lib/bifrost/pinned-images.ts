/**
 * What the Bifrost bundle relies on in each image docker-compose.yml pins, read at the upstream source of
 * that tag. Images cannot be pulled on these machines, so these tables are the only evidence the bundle
 * fits its images; `check-bundle` (check-bundle.ts) reads the bundle against them. To bump an image:
 * change the tag, read the cited files at the new tag, update the rows (and the date), run check-bundle.
 *
 * Every row cites `owner/repo@ref:path`. `verified: false` marks a row taken from
 * /work/shared/reference/bifrost-upstream.md (or common knowledge of the base image) without reading the
 * source here; the check trusts it all the same, so a human should confirm it before relying on it.
 */

/** The day every `verified: true` row below was read at its source. */
export const CHECKED_ON = '2026-11-29';

const REFERENCE = 'secrets-flow /work/shared/reference/bifrost-upstream.md';

export interface Fact {
  source: string;
  verified: boolean;
}

/** A program a healthcheck may run in the image (`present: false`: known to be absent). */
export interface ImageProgram extends Fact {
  name: string;
  present: boolean;
  note?: string;
  /**
   * For commands whose flags the bundle uses: `subcommand` → every flag it accepts at the pinned tag
   * (its own and the root's persistent flags). A flag outside the list is one that version lacks.
   */
  flags?: Record<string, readonly string[]>;
  /** A later release that added a flag the bundle might reach for: named in the fix. */
  addedLater?: Record<string, string>;
  /** A key the service's own static config must have for this program's healthcheck to answer. */
  needsStaticKey?: string;
  /** Where the program is, when its directory is not on the image's PATH: `docker exec` needs this path. */
  notOnPath?: string;
}

export interface PinnedImage {
  /** As compose names it, without the tag. */
  image: string;
  tag: string;
  checked: string;
  /** Why the bundle cares about this image (one line). */
  role: string;
  programs: readonly ImageProgram[];
}

const NB = 'netbirdio/netbird@v0.66.0';
const DISTROLESS = 'GoogleContainerTools/distroless@cd080764af3103b2f49fb5eb23297c72c945e77a';

/** `netbird` client flags at v0.66.0: `status`'s own, plus the root command's persistent flags. */
const NETBIRD_ROOT_FLAGS = [
  '--daemon-addr',
  '--management-url',
  '-m',
  '--admin-url',
  '--log-level',
  '-l',
  '--log-file',
  '--setup-key',
  '-k',
  '--setup-key-file',
  '--preshared-key',
  '--hostname',
  '-n',
  '--anonymize',
  '-A',
  '--config',
  '-c',
];
const NETBIRD_STATUS_FLAGS = [
  '--detail',
  '-d',
  '--json',
  '--yaml',
  '--ipv4',
  '--filter-by-ips',
  '--filter-by-names',
  '--filter-by-status',
  '--filter-by-connection-type',
];

/** Healthcheck programs per pinned image: a healthcheck that runs what the image lacks never passes. */
export const PINNED_IMAGES: readonly PinnedImage[] = [
  {
    image: 'netbirdio/netbird-server',
    tag: '0.66.0',
    checked: CHECKED_ON,
    role: 'the combined management/signal/relay server; reads netbird/config.yaml',
    programs: [
      {
        name: 'netbird-server',
        present: true,
        note: 'the entrypoint (/go/bin/netbird-server); the image is ubuntu:24.04 plus ca-certificates only',
        source: `${NB}:combined/Dockerfile`,
        verified: true,
        // COPY to /go/bin with no ENV PATH: `docker exec netbird-server netbird-server …` is "not found".
        notOnPath: '/go/bin/netbird-server',
      },
      ...['wget', 'curl'].map((name) => ({
        name,
        present: false,
        note: 'ubuntu:24.04 plus ca-certificates only: no HTTP client',
        source: `${NB}:combined/Dockerfile`,
        verified: true,
      })),
      {
        name: 'bash',
        present: true,
        note: 'ubuntu:24.04 ships bash (an Essential package); the healthcheck uses its /dev/tcp to connect to the metrics port, which listens once management has started (combined/cmd/root.go execute)',
        source: `${NB}:combined/Dockerfile names the base, ${NB}:combined/cmd/root.go the start order; the base's bash not read here (unverified)`,
        verified: false,
      },
      {
        name: 'sh',
        present: true,
        note: "ubuntu:24.04's /bin/sh (dash)",
        source: `${NB}:combined/Dockerfile names the base; its /bin/sh not read here (unverified)`,
        verified: false,
      },
    ],
  },
  {
    image: 'netbirdio/reverse-proxy',
    tag: '0.66.0',
    checked: CHECKED_ON,
    role: 'the NetBird reverse proxy (TCP passthrough target)',
    programs: [
      {
        name: 'sh',
        present: false,
        note: 'gcr.io/distroless/base:debug has /busybox/sh only (no /bin/sh, which CMD-SHELL runs): use CMD with /busybox/wget',
        source: `${NB}:proxy/Dockerfile; ${DISTROLESS}:static/static.bzl, experimental/busybox/commands.bzl (the base tag floats: read at that commit)`,
        verified: true,
      },
      {
        name: '/busybox/wget',
        present: true,
        note: 'busybox applet; /busybox is on PATH, so `wget` in CMD form works too',
        source: `${DISTROLESS}:experimental/busybox/commands.bzl, static/static.bzl`,
        verified: true,
      },
      {
        name: 'wget',
        present: true,
        note: 'via PATH=$PATH:/busybox (CMD form only: there is no /bin/sh)',
        source: `${DISTROLESS}:static/static.bzl`,
        verified: true,
      },
    ],
  },
  {
    image: 'netbirdio/netbird',
    tag: '0.66.0',
    checked: CHECKED_ON,
    role: 'the netbird-agent client on the VPS',
    programs: [
      {
        name: 'netbird',
        present: true,
        flags: { status: [...NETBIRD_STATUS_FLAGS, ...NETBIRD_ROOT_FLAGS] },
        addedLater: { '--check': 'v0.67.0 (PR #5650; netbirdio/netbird@v0.67.0:client/cmd/status.go)' },
        note: 'plain `netbird status` exits 0 whenever the daemon answers',
        source: `${NB}:client/cmd/status.go, client/cmd/root.go, client/Dockerfile`,
        verified: true,
      },
      {
        name: 'sh',
        present: true,
        note: 'alpine:3.23.2 (busybox) base with bash added',
        source: `${NB}:client/Dockerfile`,
        verified: true,
      },
      {
        name: 'grep',
        present: true,
        note: "busybox applet of the alpine:3.23.2 base: reads `netbird status --json` in the agent's healthcheck",
        source: `${NB}:client/Dockerfile names the base; its busybox applets not read here (unverified)`,
        verified: false,
      },
    ],
  },
  {
    image: 'netbirdio/dashboard',
    // The release of the server's day: both 2026-02-24 (NetBird's setup runs dashboard:latest).
    tag: 'v2.33.0',
    checked: CHECKED_ON,
    role: 'the NetBird web UI (nginx)',
    programs: [
      {
        name: 'curl',
        present: true,
        note: '`apk add ... curl` on alpine:3.14',
        source: 'netbirdio/dashboard@v2.33.0:docker/Dockerfile',
        verified: true,
      },
      ...['sh', 'wget'].map((name) => ({
        name,
        present: true,
        note: 'busybox applet of the alpine:3.14 base (the Dockerfile adds bash and curl)',
        source:
          'netbirdio/dashboard@v2.33.0:docker/Dockerfile names the base; its busybox applets not read here (unverified)',
        verified: false,
      })),
    ],
  },
  {
    image: 'traefik',
    tag: 'v3.3',
    checked: CHECKED_ON,
    role: 'the edge router; reads traefik/traefik.yml and traefik/dynamic.yml (a floating tag: read at v3.3.0 and v3.3.7)',
    programs: [
      {
        name: 'traefik',
        present: true,
        needsStaticKey: 'ping',
        note: '`traefik healthcheck --ping` calls /ping: "please enable `ping` to use health check"',
        source: 'traefik/traefik@v3.3.7:cmd/healthcheck/healthcheck.go',
        verified: true,
      },
    ],
  },
  {
    image: 'ghcr.io/goauthentik/server',
    tag: '2025.10.4',
    checked: CHECKED_ON,
    role: 'authentik server and worker (one image, `command: server` / `worker`)',
    programs: [
      {
        name: 'ak',
        present: true,
        note: '`ak healthcheck` runs `authentik healthcheck <mode>` (mode from $TMPDIR/authentik-mode)',
        source: `goauthentik/authentik:lifecycle/ak (tag unverified); ${REFERENCE} §3`,
        verified: false,
      },
    ],
  },
  {
    image: 'postgres',
    tag: '16.6-alpine',
    checked: CHECKED_ON,
    role: "authentik's database",
    programs: [
      ...['pg_isready', 'sh'].map((name) => ({
        name,
        present: true,
        note: 'postgres client tools on alpine',
        source: `docker-library/postgres@16.6-alpine:Dockerfile (not fetched); ${REFERENCE} §1`,
        verified: false,
      })),
    ],
  },
];

/**
 * Why the client-status table exists: at 0.66.0 `netbird status` exits 0 whenever the daemon answers, logged
 * out included (statusFunc prints the NeedsLogin text and returns nil), and has no `--check` (v0.67.0). What
 * tells whether the agent is connected to management is the `management.connected` field of `--json`, which
 * json.Marshal writes compact, in ManagementStateOutput's field order (url, connected, error). check-bundle
 * runs the agent's healthcheck line against these outputs of the pinned client: it must pass on the first
 * and fail on every other (checkAgentHealthcheck in check-bundle.ts); the docker-engine stand-in prints them.
 */
export const NETBIRD_CLIENT_STATUS = {
  image: 'netbirdio/netbird',
  tag: '0.66.0',
  // Read on this day, after the rest of the table.
  checked: '2026-12-07',
  verified: true,
  source: `${NB}:client/cmd/status.go statusFunc, client/status/status.go OutputOverview, JSON`,
  /** The JSON field that says the agent is connected to management. */
  field: 'management.connected',
  /** A line that fails unless that field is true (the shipped healthcheck). */
  healthcheck: `netbird status --json | grep -q '"management":{"url":"[^"]*","connected":true'`,
  /**
   * `netbird status` in each state: stdout with --json (`json`) and without (`text`), trimmed to the fields
   * around the management state; exit 1 when the daemon does not answer (getStatus).
   */
  states: [
    {
      id: 'connected',
      state: 'connected to management',
      healthy: true,
      exitCode: 0,
      json: '{"peers":{"total":1,"connected":0,"details":[]},"cliVersion":"0.66.0","daemonVersion":"0.66.0","management":{"url":"https://netbird.madhan.app:443","connected":true,"error":""},"signal":{"url":"https://netbird.madhan.app:443","connected":true,"error":""},"relays":{"total":1,"available":1,"details":[]},"netbirdIp":"100.64.0.2/16","fqdn":"bifrost-agent.netbird.selfhosted"}',
      text: 'OS: linux/amd64\nDaemon version: 0.66.0\nCLI version: 0.66.0\nProfile: default\nManagement: Connected\nSignal: Connected\nRelays: 1/1 Available\nPeers count: 0/1 Connected\n',
    },
    {
      id: 'logged-out',
      state: 'logged out (NeedsLogin: no or a refused setup key)',
      healthy: false,
      exitCode: 0,
      json: 'Daemon status: NeedsLogin\n\nRun UP command to log in with SSO (interactive login):\n\n netbird up \n',
      text: 'Daemon status: NeedsLogin\n\nRun UP command to log in with SSO (interactive login):\n\n netbird up \n',
    },
    {
      id: 'management-down',
      state: 'logged in, management unreachable (signal still up)',
      healthy: false,
      exitCode: 0,
      json: '{"peers":{"total":1,"connected":1,"details":[]},"cliVersion":"0.66.0","daemonVersion":"0.66.0","management":{"url":"https://netbird.madhan.app:443","connected":false,"error":"context deadline exceeded"},"signal":{"url":"https://netbird.madhan.app:443","connected":true,"error":""},"relays":{"total":1,"available":1,"details":[]},"netbirdIp":"100.64.0.2/16","fqdn":"bifrost-agent.netbird.selfhosted"}',
      text: 'OS: linux/amd64\nDaemon version: 0.66.0\nCLI version: 0.66.0\nProfile: default\nManagement: Disconnected, reason: context deadline exceeded\nSignal: Connected\nRelays: 1/1 Available\nPeers count: 1/1 Connected\n',
    },
    {
      id: 'daemon-down',
      state: 'down (its daemon does not answer)',
      healthy: false,
      exitCode: 1,
      json: '',
      text: '',
    },
  ],
} as const;

/**
 * Why the NetBird config table exists: the combined server's `LoadConfig` is a non-strict `yaml.Unmarshal`,
 * so a key it does not read (the `idp:` block the bundle once had) is dropped without a word. Every path below is
 * a `yaml:"…"` tag reachable from `CombinedConfig` at the pinned tag (`[]` marks a list element).
 */
export const NETBIRD_SERVER_CONFIG = {
  image: 'netbirdio/netbird-server',
  tag: '0.66.0',
  checked: CHECKED_ON,
  source: `${NB}:combined/cmd/config.go`,
  verified: true,
  keys: [
    ...[
      'listenAddress',
      'metricsPort',
      'healthcheckAddress',
      'logLevel',
      'logFile',
      'tls.certFile',
      'tls.keyFile',
      'tls.letsencrypt.enabled',
      'tls.letsencrypt.dataDir',
      'tls.letsencrypt.domains',
      'tls.letsencrypt.email',
      'tls.letsencrypt.awsRoute53',
      'exposedAddress',
      'stunPorts',
      'authSecret',
      'dataDir',
      'stuns[].uri',
      'stuns[].proto',
      'stuns[].username',
      'stuns[].password',
      'relays.addresses',
      'relays.credentialsTTL',
      'relays.secret',
      'signalUri',
      'disableAnonymousMetrics',
      'disableGeoliteUpdate',
      'auth.issuer',
      'auth.localAuthDisabled',
      'auth.signKeyRefreshEnabled',
      'auth.storage.type',
      'auth.storage.file',
      'auth.dashboardRedirectURIs',
      'auth.cliRedirectURIs',
      'auth.owner.email',
      'auth.owner.password',
      ...['store', 'activityStore'].flatMap((s) => [`${s}.engine`, `${s}.encryptionKey`, `${s}.dsn`]),
      'reverseProxy.trustedHTTPProxies',
      'reverseProxy.trustedHTTPProxiesCount',
      'reverseProxy.trustedPeers',
    ].map((k) => `server.${k}`),
  ] as readonly string[],
  /** `Validate`: the server refuses to start without these (authSecret unless relays.addresses is set). */
  required: ['server.exposedAddress', 'server.dataDir'] as readonly string[],
} as const;

/**
 * Why the reverse-proxy table exists: the proxy reads its settings from NB_PROXY_* variables, and one it does
 * not read is ignored like an unknown config key; three of them must agree with Traefik and compose, or
 * the proxy's domain is unreachable with no error at deploy time (see checkReverseProxy in check-bundle.ts).
 */
export const REVERSE_PROXY_SETTINGS = {
  image: 'netbirdio/reverse-proxy',
  tag: '0.66.0',
  checked: CHECKED_ON,
  verified: true,
  source: `${NB}:proxy/cmd/proxy/cmd/root.go`,
  /** Every NB_PROXY_* variable the proxy reads (root.go's envStringOrDefault/envBoolOrDefault, auth.go). */
  env: [
    'NB_PROXY_TOKEN',
    'NB_PROXY_DEBUG_LOGS',
    'NB_PROXY_MANAGEMENT_ADDRESS',
    'NB_PROXY_ADDRESS',
    'NB_PROXY_DOMAIN',
    'NB_PROXY_CERTIFICATE_DIRECTORY',
    'NB_PROXY_ACME_CERTIFICATES',
    'NB_PROXY_ACME_ADDRESS',
    'NB_PROXY_ACME_DIRECTORY',
    'NB_PROXY_ACME_CHALLENGE_TYPE',
    'NB_PROXY_DEBUG_ENDPOINT',
    'NB_PROXY_DEBUG_ENDPOINT_ADDRESS',
    'NB_PROXY_HEALTH_ADDRESS',
    'NB_PROXY_FORWARDED_PROTO',
    'NB_PROXY_TRUSTED_PROXIES',
    'NB_PROXY_CERTIFICATE_FILE',
    'NB_PROXY_CERTIFICATE_KEY_FILE',
    'NB_PROXY_CERT_LOCK_METHOD',
    'NB_PROXY_WG_PORT',
    'NB_PROXY_PROXY_PROTOCOL',
    'NB_PROXY_PRESHARED_KEY',
    'NB_PROXY_ALLOW_INSECURE',
  ] as readonly string[],
  /** Without it, a plain-HTTP management address gets no token: RequireTransportSecurity is true. */
  insecureSource: `${NB}:proxy/internal/grpc/auth.go`,
  /** PROXY headers are read only from NB_PROXY_TRUSTED_PROXIES sources; from others they are ignored. */
  proxyProtocolSource: `${NB}:proxy/server.go wrapProxyProtocol, proxyProtocolPolicy`,
} as const;

/**
 * Why the ACME table exists: a certificate resolver without `email` gets a new ACME account at every start
 * (initAccount makes one whenever the stored account has no email), and the account registrations per
 * address are rate-limited; Let's Encrypt refuses a contact address at example.com/.net/.org and one whose
 * domain is not public. dnsChallenge.delayBeforeCheck and disablePropagationCheck are deprecated since v3.3
 * (converted with a warning at every start) for the `propagation` block.
 */
export const TRAEFIK_ACME = {
  tag: 'v3.3',
  // Read on this day, after the rest of the table.
  checked: '2026-12-07',
  verified: true,
  emailSource: 'traefik/traefik@v3.3.7:pkg/provider/acme/provider.go initAccount, Configuration.Email',
  refusedDomainsSource:
    "letsencrypt/boulder:policy/pa.go ValidEmail, forbiddenMailDomains (Let's Encrypt's CA; tag unverified)",
  /** Domains Let's Encrypt refuses in a contact address (RFC 2606 §3), and reserved top-level names (not public). */
  refusedDomains: ['example.com', 'example.net', 'example.org'] as readonly string[],
  reservedTlds: ['example', 'invalid', 'localhost', 'local', 'test'] as readonly string[],
  deprecationSource:
    'traefik/traefik@v3.3.7:pkg/config/static/static_config.go SetEffectiveConfiguration, pkg/provider/acme/provider.go DNSChallenge, docs/content/migration/v3.md',
  /** dnsChallenge key, lower case (compared without case: the CLI and docs/content/migration/v3.md spell them so) → its replacement. */
  deprecated: {
    delaybeforecheck: 'propagation.delayBeforeChecks',
    disablepropagationcheck: 'propagation.disableChecks',
  } as Readonly<Record<string, string>>,
  /** Every key of dnsChallenge.propagation (the Propagation struct). */
  propagationKeys: [
    'disableChecks',
    'disableANSChecks',
    'requireAllRNS',
    'delayBeforeChecks',
  ] as readonly string[],
} as const;

/**
 * Why the rule table exists: under Traefik v3's default rule syntax each matcher takes a fixed number of
 * arguments, and a rule that breaks it is an error that drops the whole router (the two-argument
 * `PathPrefix` the original used for gRPC). Counts per matcher, from `expectNParameters(fn, n...)`.
 */
export const TRAEFIK_MATCHERS = {
  tag: 'v3.3',
  checked: CHECKED_ON,
  verified: true,
  http: {
    source: 'traefik/traefik@v3.3.7:pkg/muxer/http/matcher.go (the same table at v3.3.0)',
    arity: {
      ClientIP: [1],
      Method: [1],
      Host: [1],
      HostRegexp: [1],
      Path: [1],
      PathRegexp: [1],
      PathPrefix: [1],
      Header: [2],
      HeaderRegexp: [2],
      Query: [1, 2],
      QueryRegexp: [1, 2],
    } as Readonly<Record<string, readonly number[]>>,
  },
  tcp: {
    source: 'traefik/traefik@v3.3.7:pkg/muxer/tcp/matcher.go (the same table at v3.3.0)',
    arity: { ALPN: [1], ClientIP: [1], HostSNI: [1], HostSNIRegexp: [1] } as Readonly<
      Record<string, readonly number[]>
    >,
  },
} as const;

/** The facts row for an image reference as compose writes it (`image:tag`), if the table has one. */
export function pinnedImage(ref: string): PinnedImage | undefined {
  const at = ref.lastIndexOf(':');
  const slash = ref.lastIndexOf('/');
  const [image, tag] = at > slash ? [ref.slice(0, at), ref.slice(at + 1)] : [ref, 'latest'];
  return PINNED_IMAGES.find((p) => p.image === image && p.tag === tag);
}

/**
 * How the proxy's token is made at the pinned tag: `token create` (a subcommand of the combined server,
 * combined/cmd/root.go AddCommand(newTokenCommands())) with a required `--name` and the root's `--config`,
 * printing `Token: nbx_…` on stdout (management/cmd/token/token.go runCreate). NetBird's own setup runs it
 * in the server container once the server is up (infrastructure_files/getting-started.sh, "Phase 2"). From
 * v0.75.0 the command is `netbird-server admin token create`.
 */
export const PROXY_TOKEN_FACTS = {
  image: 'netbirdio/netbird-server',
  tag: '0.66.0',
  checked: CHECKED_ON,
  verified: true,
  subcommand: ['token', 'create'],
  requiredFlags: ['--name', '--config'],
  stdoutLine: 'Token: ',
  source: `${NB}:management/cmd/token/token.go, combined/cmd/token.go, infrastructure_files/getting-started.sh`,
} as const;
