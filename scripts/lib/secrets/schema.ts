/**
 * The one table of every bootstrap secret (secrets/bootstrap.sops.yaml).
 *
 * Validation, generation (`secrets init`), the Kubernetes manifests, the Bifrost env files and the
 * "What Lives Where" docs all derive from SECRET_SCHEMA and CONSUMERS below; nothing else lists keys.
 */

import { withholdFromChildren } from '../core/child-env.ts';
import { closest } from '../core/closest.ts';
import type { BackendId } from './backend-id.ts';
import { BCRYPT, BCRYPT_MAX_BYTES, type PasswordHash } from './password-hash.ts';

/**
 * Everything that reads a bootstrap secret, and where it lives. A Kubernetes Secret belongs to the
 * runtime backends that read it (`backends`): create-bootstrap-secrets and `secrets status` serve only
 * the cluster's backend's Secrets, in this order.
 */
export const CONSUMERS = {
  'infisical-secrets': {
    kind: 'k8s-secret',
    namespace: 'infisical',
    backends: ['infisical', 'infisical-v1alpha1'],
    title: 'k8s Secret infisical-secrets (ns infisical)',
  },
  'cloudflare-api-token': {
    kind: 'k8s-secret',
    namespace: 'cert-manager',
    // cert-manager's DNS-01 solver reads it whatever syncs the apps' secrets.
    backends: ['infisical', 'infisical-v1alpha1', 'openbao'],
    title: 'k8s Secret cloudflare-api-token (ns cert-manager)',
  },
  'infisical-service-token': {
    kind: 'k8s-secret',
    namespace: 'infisical',
    // v1alpha1 InfisicalSecrets authenticate with a service token (serviceTokenSecretReference).
    backends: ['infisical-v1alpha1'],
    title: 'k8s Secret infisical-service-token (ns infisical)',
  },
  'infisical-machine-identity': {
    kind: 'k8s-secret',
    namespace: 'infisical',
    // The v1beta1 InfisicalAuth's identityIdRef: {name: infisical-machine-identity, namespace: infisical, key: identityId}.
    backends: ['infisical'],
    title: 'k8s Secret infisical-machine-identity (ns infisical)',
  },
  'openbao-unseal-key': {
    kind: 'k8s-secret',
    namespace: 'openbao',
    // The unseal sidecar's env OPENBAO_UNSEAL_KEY, from this Secret's key unseal-key.
    backends: ['openbao'],
    title: 'k8s Secret openbao-unseal-key (ns openbao)',
  },
  'bifrost-secrets-env': { kind: 'env-file', path: '.secrets.env', title: 'Bifrost .secrets.env' },
  'bifrost-dot-env': { kind: 'env-file', path: '.env', title: 'Bifrost .env (compose interpolation)' },
  provisioning: { kind: 'operator', title: 'operator provisioning (Hetzner, Proxmox, Authentik stacks)' },
  'secrets-flow': { kind: 'suite', title: 'secrets-flow itself (keys the fingerprints it shows and stores)' },
} as const satisfies Record<string, ConsumerInfo>;

export type ConsumerId = keyof typeof CONSUMERS;

export type ConsumerInfo =
  | { kind: 'k8s-secret'; namespace: string; backends: readonly BackendId[]; title: string }
  | { kind: 'env-file'; path: string; title: string }
  | { kind: 'operator'; title: string }
  | { kind: 'suite'; title: string };

/** One place a secret is read: the consumer, the name it has there, and whether the consumer needs it. */
export interface SecretUse {
  consumer: ConsumerId;
  as: string;
  required: boolean;
  /** A value derived from the secret rather than the secret itself (e.g. a connection string). */
  derive?: (value: string) => string;
  /**
   * The consumer receives a salted one-way hash of the secret, never the secret. It is a value of its own
   * there (a name the consumer requires like any other), kept while it still verifies (`deliveredValue`).
   */
  hash?: PasswordHash;
}

/**
 * The value one use delivers: the secret, its derived form, or its hash. For a hash, `held` (what the
 * place holds now) is kept while it verifies against the secret, else the secret is hashed anew.
 */
export function deliveredValue(use: SecretUse, value: string, held?: string): string {
  if (use.hash) return held !== undefined && use.hash.matches(value, held) ? held : use.hash.hash(value);
  return use.derive ? use.derive(value) : value;
}

/** How `secrets init` makes a value; `manual` ones come from elsewhere (a provider console, NetBird's UI). */
export type Generator =
  | { kind: 'hex'; bytes: number }
  | { kind: 'base64'; bytes: number }
  | { kind: 'random-chars'; length: number }
  | { kind: 'manual'; howTo: string };

export interface FormatCheck {
  test: (value: string) => boolean;
  /** What a valid value looks like, shown when the check fails. Never includes the value. */
  expected: string;
}

export type Rotation =
  /** `effect`: what a new value does, when it is more than taking the place of the old one. */
  | { kind: 'free'; effect?: string }
  | { kind: 'disruptive'; effect: string }
  | { kind: 'never'; reason: string };

export interface SecretSpec {
  key: string;
  description: string;
  uses: SecretUse[];
  generate: Generator;
  format?: FormatCheck;
  rotation: Rotation;
  /** The deployment phase in which the operator sets it (design page "What Lives Where"). */
  setDuring: string;
}

/** `openssl rand -hex N` and friends; the generator itself lives with `secrets init`. */
export function describeGenerator(g: Generator): string {
  switch (g.kind) {
    case 'hex':
      return `openssl rand -hex ${g.bytes}`;
    case 'base64':
      return `openssl rand -base64 ${g.bytes}`;
    case 'random-chars':
      return `${g.length} random characters`;
    case 'manual':
      return `set by hand: ${g.howTo}`;
  }
}

const hexOf = (bytes: number): FormatCheck => ({
  test: (v) => new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(v),
  expected: `${bytes * 2} hex characters (openssl rand -hex ${bytes})`,
});

const base64Of = (bytes: number): FormatCheck => ({
  test: (v) => /^[A-Za-z0-9+/]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === bytes,
  expected: `base64 of exactly ${bytes} bytes (openssl rand -base64 ${bytes})`,
});

const atLeast = (n: number, what = 'characters'): FormatCheck => ({
  test: (v) => [...v].length >= n,
  expected: `at least ${n} ${what}`,
});

/** The URL a derived Infisical DB connection uses; the password is URL-encoded (the original was not). */
function infisicalDbConnectionUri(password: string): string {
  return `postgresql://infisical:${encodeURIComponent(password)}@postgresql:5432/infisical`;
}

const PHASE_0 = 'Phase 0';
const ownerPasswordFormat: FormatCheck = {
  test: (v) => [...v].length >= 16 && Buffer.byteLength(v) <= BCRYPT_MAX_BYTES,
  expected: `16 characters to ${BCRYPT_MAX_BYTES} bytes (bcrypt ignores every byte after the ${BCRYPT_MAX_BYTES}th)`,
};
const UUID = /^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$/;
const AFTER_NETBIRD_LOGIN = 'After first NetBird login';
/** A key the bootstrap makes on the VPS when the SOPS file has none; set it only to use your own. */
const OPTIONAL_MINTED = 'Optional (minted on the VPS if unset)';

export const SECRET_SCHEMA = [
  {
    key: 'HCLOUD_TOKEN',
    description: 'Hetzner Cloud API token (creates the Bifrost VPS)',
    uses: [{ consumer: 'provisioning', as: 'HCLOUD_TOKEN', required: true }],
    generate: { kind: 'manual', howTo: 'Hetzner Cloud console → Security → API tokens (read & write)' },
    format: {
      test: (v) => /^[A-Za-z0-9]{64}$/.test(v),
      expected: '64 letters and digits (a Hetzner Cloud API token)',
    },
    rotation: { kind: 'free' },
    setDuring: PHASE_0,
  },
  {
    key: 'PROXMOX_PASSWORD',
    description: 'Proxmox root password (provisions the cluster VMs)',
    uses: [{ consumer: 'provisioning', as: 'PROXMOX_PASSWORD', required: true }],
    generate: { kind: 'manual', howTo: 'the root password of the Proxmox host' },
    rotation: { kind: 'free' },
    setDuring: PHASE_0,
  },
  {
    key: 'CLOUDFLARE_API_TOKEN',
    description: 'Cloudflare zone-edit API token (ACME DNS challenges)',
    uses: [
      { consumer: 'cloudflare-api-token', as: 'CLOUDFLARE_API_TOKEN', required: true },
      // Traefik's Cloudflare DNS provider reads this name.
      { consumer: 'bifrost-secrets-env', as: 'CF_DNS_API_TOKEN', required: true },
      { consumer: 'provisioning', as: 'CLOUDFLARE_API_TOKEN', required: true },
    ],
    generate: { kind: 'manual', howTo: 'Cloudflare dashboard → My Profile → API Tokens (Zone:DNS:Edit)' },
    format: {
      test: (v) => /^[A-Za-z0-9_-]{32,}$/.test(v),
      expected: 'at least 32 letters, digits, "-" or "_" (a Cloudflare API token)',
    },
    rotation: { kind: 'free' },
    setDuring: PHASE_0,
  },
  {
    key: 'AUTHENTIK_TOKEN',
    description: 'Authentik bootstrap API token (also minted as netbird-mgmt-token)',
    uses: [
      // Authentik reads AUTHENTIK_BOOTSTRAP_TOKEN on the worker, which creates akadmin's token.
      { consumer: 'bifrost-secrets-env', as: 'AUTHENTIK_BOOTSTRAP_TOKEN', required: true },
      { consumer: 'provisioning', as: 'AUTHENTIK_TOKEN', required: true },
    ],
    generate: { kind: 'random-chars', length: 60 },
    format: {
      test: (v) => /^[A-Za-z0-9]{32,255}$/.test(v),
      expected: '32 to 255 letters and digits (60 random characters)',
    },
    rotation: { kind: 'free' },
    setDuring: PHASE_0,
  },
  {
    key: 'AUTHENTIK_SECRET_KEY',
    description: 'Authentik (Django) secret key',
    uses: [{ consumer: 'bifrost-dot-env', as: 'AUTHENTIK_SECRET_KEY', required: true }],
    generate: { kind: 'base64', bytes: 48 },
    // Django warns about secret keys shorter than 50 characters.
    format: atLeast(50),
    rotation: { kind: 'disruptive', effect: 'signs every Authentik user out' },
    setDuring: PHASE_0,
  },
  {
    key: 'AUTHENTIK_POSTGRESQL_PASSWORD',
    description: "Password of Authentik's PostgreSQL database",
    uses: [{ consumer: 'bifrost-dot-env', as: 'AUTHENTIK_POSTGRESQL_PASSWORD', required: true }],
    generate: { kind: 'hex', bytes: 16 },
    format: atLeast(16),
    rotation: { kind: 'disruptive', effect: 'the database role password must be changed to match first' },
    setDuring: PHASE_0,
  },
  {
    key: 'AUTHENTIK_GITHUB_SECRET',
    description: 'GitHub OAuth app client secret (Authentik GitHub source)',
    uses: [{ consumer: 'provisioning', as: 'AUTHENTIK_GITHUB_SECRET', required: true }],
    generate: {
      kind: 'manual',
      howTo: 'GitHub → Settings → Developer settings → OAuth Apps → client secret',
    },
    format: hexOf(20),
    rotation: { kind: 'free' },
    setDuring: PHASE_0,
  },
  {
    key: 'NB_DATA_STORE_KEY',
    description: "NetBird store encryption key (encrypts NetBird's SQLite database)",
    uses: [{ consumer: 'bifrost-secrets-env', as: 'NB_DATA_STORE_KEY', required: true }],
    generate: { kind: 'base64', bytes: 32 },
    format: base64Of(32),
    rotation: {
      kind: 'never',
      reason: 'the NetBird database is encrypted with it; a new key loses every peer',
    },
    setDuring: PHASE_0,
  },
  {
    key: 'NB_RELAY_SECRET',
    description: 'NetBird relay shared secret',
    uses: [{ consumer: 'bifrost-secrets-env', as: 'NB_RELAY_SECRET', required: true }],
    generate: { kind: 'base64', bytes: 32 },
    format: atLeast(32),
    rotation: { kind: 'disruptive', effect: 'every NetBird peer disconnects and reconnects' },
    setDuring: PHASE_0,
  },
  {
    key: 'NB_OWNER_PASSWORD',
    description:
      "Password of NetBird's first admin (server.auth.owner; the email is the bundle's netbird/config.yaml.tmpl): seeded at the first start, so NetBird never offers /setup",
    uses: [
      // Only the bcrypt hash leaves the operator's machine: computed there, rendered into .secrets.env,
      // filled into netbird/config.yaml. A plain password there is stored as the hash and never logs in
      // (netbirdio/netbird#7169).
      { consumer: 'bifrost-secrets-env', as: 'NB_OWNER_PASSWORD_HASH', required: true, hash: BCRYPT },
    ],
    generate: { kind: 'random-chars', length: 32 },
    format: ownerPasswordFormat,
    // netbirdio/netbird@v0.66.0:idp/dex/provider.go ensureStaticPasswords, at every netbird-server start:
    // an owner email not yet stored is created with a new user id (management/server/idp/embedded.go);
    // a stored one whose hash differs gets the new hash, its user id unchanged.
    rotation: {
      kind: 'free',
      effect:
        "provisioning recreates netbird-server, which replaces the owner's stored password at its start: the old password stops working, the owner keeps its user and admin role; a password changed in the NetBird UI is replaced the same way at every netbird-server start",
    },
    setDuring: PHASE_0,
  },
  {
    key: 'NB_PROXY_TOKEN',
    description:
      'NetBird proxy access token (nbx_) for netbird-proxy, not a personal access token; optional: without it the bootstrap mints one on the VPS',
    uses: [{ consumer: 'bifrost-secrets-env', as: 'NB_PROXY_TOKEN', required: false }],
    generate: {
      kind: 'manual',
      // The image has the binary at /go/bin/netbird-server, not on PATH (netbirdio/netbird@v0.66.0:
      // combined/Dockerfile); token.go prints the token on a "Token: nbx_…" line.
      howTo:
        'optional: bifrost-up mints one itself once netbird-server is healthy; to use your own, on the VPS: docker exec netbird-server /go/bin/netbird-server token create --name bifrost-proxy --config /etc/netbird/config.yaml (prints "Token: nbx_…")',
    },
    // netbirdio/netbird@v0.66.0:management/server/types/proxy_access_token.go: "nbx_", 30 base62
    // characters and a 6-character checksum, 40 in all (ProxyTokenLength).
    format: {
      test: (v) => /^nbx_[A-Za-z0-9]{36}$/.test(v),
      expected: '"nbx_" followed by 36 letters and digits (a NetBird proxy access token, 40 characters)',
    },
    rotation: { kind: 'free' },
    setDuring: OPTIONAL_MINTED,
  },
  {
    key: 'NB_BIFROST_SETUP_KEY',
    description: "NetBird setup key for Bifrost's own agent",
    uses: [
      { consumer: 'bifrost-secrets-env', as: 'NB_BIFROST_SETUP_KEY', required: false },
      // Compose interpolates ${NB_BIFROST_SETUP_KEY} from .env; optional because it exists only after
      // the first NetBird login (the original made it required and broke first deploys).
      { consumer: 'bifrost-dot-env', as: 'NB_BIFROST_SETUP_KEY', required: false },
    ],
    generate: { kind: 'manual', howTo: 'NetBird UI → Setup Keys (after the first login)' },
    format: {
      test: (v) => UUID.test(v),
      expected: 'a UUID such as 1B2C3D4E-0000-4000-8000-000000000000 (a NetBird setup key)',
    },
    rotation: { kind: 'free' },
    setDuring: AFTER_NETBIRD_LOGIN,
  },
  {
    key: 'INFISICAL_DB_PASSWORD',
    description: "Password of Infisical's PostgreSQL database",
    uses: [
      { consumer: 'infisical-secrets', as: 'DB_PASSWORD', required: true },
      {
        consumer: 'infisical-secrets',
        as: 'DB_CONNECTION_URI',
        required: true,
        derive: infisicalDbConnectionUri,
      },
    ],
    generate: { kind: 'hex', bytes: 16 },
    format: atLeast(16),
    rotation: { kind: 'disruptive', effect: 'the database role password must be changed to match first' },
    setDuring: PHASE_0,
  },
  {
    key: 'INFISICAL_ENCRYPTION_KEY',
    description: 'Infisical encryption key (encrypts stored secrets)',
    uses: [{ consumer: 'infisical-secrets', as: 'ENCRYPTION_KEY', required: true }],
    generate: { kind: 'hex', bytes: 16 },
    // Infisical requires a 16-byte key written as 32 hex characters.
    format: hexOf(16),
    rotation: { kind: 'never', reason: "Infisical's stored secrets are encrypted with it" },
    setDuring: PHASE_0,
  },
  {
    key: 'INFISICAL_AUTH_SECRET',
    description: 'Infisical session signing secret',
    uses: [{ consumer: 'infisical-secrets', as: 'AUTH_SECRET', required: true }],
    generate: { kind: 'hex', bytes: 24 },
    format: atLeast(32),
    rotation: { kind: 'disruptive', effect: 'signs every Infisical user out' },
    setDuring: PHASE_0,
  },
  {
    key: 'REDIS_PASSWORD',
    description: "Password of Infisical's Redis",
    uses: [{ consumer: 'infisical-secrets', as: 'REDIS_PASSWORD', required: true }],
    generate: { kind: 'hex', bytes: 16 },
    format: atLeast(16),
    rotation: { kind: 'free' },
    setDuring: PHASE_0,
  },
  {
    key: 'INFISICAL_SERVICE_TOKEN',
    description: 'Infisical service token that every InfisicalSecret references',
    uses: [{ consumer: 'infisical-service-token', as: 'infisicalToken', required: false }],
    generate: {
      kind: 'manual',
      howTo: 'Infisical UI → project homelab-prod → Access Control → Service Tokens',
    },
    format: {
      test: (v) => /^st\.[A-Za-z0-9._-]+$/.test(v),
      expected: 'an Infisical service token starting with "st."',
    },
    rotation: { kind: 'free' },
    setDuring: 'Phase 2 (after Infisical is up)',
  },
  {
    key: 'INFISICAL_IDENTITY_ID',
    description:
      "Id of the Infisical machine identity the v1beta1 operator logs in as (InfisicalAuth's identityIdRef)",
    uses: [{ consumer: 'infisical-machine-identity', as: 'identityId', required: false }],
    generate: {
      kind: 'manual',
      howTo:
        'Infisical UI → Organization → Access Control → Identities → the identity with Kubernetes Auth → its ID',
    },
    format: {
      test: (v) => UUID.test(v),
      expected: 'a UUID such as 1b2c3d4e-0000-4000-8000-000000000000 (an Infisical identity id)',
    },
    rotation: { kind: 'free' },
    setDuring: 'Phase 2 (after Infisical is up)',
  },
  {
    key: 'OPENBAO_UNSEAL_KEY',
    description: "OpenBao's unseal key (the unseal sidecar reads it as OPENBAO_UNSEAL_KEY)",
    uses: [{ consumer: 'openbao-unseal-key', as: 'unseal-key', required: false }],
    generate: {
      kind: 'manual',
      howTo:
        'printed once as "Unseal Key 1" by kubectl exec -it -n openbao openbao-0 -- bao operator init -key-shares=1 -key-threshold=1',
    },
    format: {
      test: (v) => /^[A-Za-z0-9+/]+={0,2}$/.test(v) && [32, 33].includes(Buffer.from(v, 'base64').length),
      expected: 'base64 of 32 or 33 bytes (an OpenBao unseal key share)',
    },
    rotation: {
      kind: 'disruptive',
      effect:
        'rekey OpenBao first (bao operator rekey), then set the new key and re-run create-secrets; a pod restarting in between cannot unseal',
    },
    setDuring: 'Phase 2 (after OpenBao is initialised)',
  },
  {
    key: 'FINGERPRINT_KEY',
    description:
      'Key of the fingerprints the suite shows and stores (HMAC-SHA-256): no plain hash of a secret leaves the process',
    uses: [{ consumer: 'secrets-flow', as: 'FINGERPRINT_KEY', required: true }],
    generate: { kind: 'base64', bytes: 32 },
    format: base64Of(32),
    rotation: {
      kind: 'disruptive',
      effect:
        "every fingerprint changes; each host's deploy record was keyed with the old key, so its next provision needs --allow-rotate FINGERPRINT_KEY",
    },
    setDuring: PHASE_0,
  },
] as const satisfies readonly SecretSpec[];

export type SecretKey = (typeof SECRET_SCHEMA)[number]['key'];

export const SECRET_KEYS: readonly SecretKey[] = SECRET_SCHEMA.map((s) => s.key);

// No child process inherits a schema key from this environment (under --from-env they hold the values):
// registered here, with the table, so every command that can hold them withholds them (child-env.ts).
withholdFromChildren(SECRET_KEYS);

const byKey = new Map<string, SecretSpec>(SECRET_SCHEMA.map((s) => [s.key, s]));

export function specOf(key: string): SecretSpec | undefined {
  return byKey.get(key);
}

/** The schema key `typed` most likely meant (a typo, or the wrong case), if any is close enough. */
export function suggestKey(typed: string): string | undefined {
  return closest(typed, SECRET_KEYS, { ignoreCase: true });
}

/** The one wording of "not a key the schema knows", with a did-you-mean when a key is close. */
export function unknownKeyProblem(key: string): string {
  const guess = suggestKey(key);
  return `${key} is not in the schema${guess ? `; did you mean ${guess}?` : ''}`;
}

/** The keys a set of consumers reads, split into required and optional. */
export function keysFor(consumers: readonly ConsumerId[]): { required: SecretKey[]; optional: SecretKey[] } {
  const required: SecretKey[] = [];
  const optional: SecretKey[] = [];
  for (const spec of SECRET_SCHEMA) {
    const uses = (spec.uses as readonly SecretUse[]).filter((u) => consumers.includes(u.consumer));
    if (uses.length === 0) continue;
    (uses.some((u) => u.required) ? required : optional).push(spec.key);
  }
  return { required, optional };
}

/** The Kubernetes Secrets a runtime backend's cluster gets, in table order. */
export function k8sConsumersFor(backend: BackendId): ConsumerId[] {
  return (Object.keys(CONSUMERS) as ConsumerId[]).filter((c) => {
    const info: ConsumerInfo = CONSUMERS[c];
    return info.kind === 'k8s-secret' && info.backends.includes(backend);
  });
}

/** Every consumer that reads bootstrap secrets in a cluster running `backend`: its Secrets, and the rest. */
export function consumersFor(backend: BackendId): ConsumerId[] {
  const k8s = new Set(k8sConsumersFor(backend));
  return (Object.keys(CONSUMERS) as ConsumerId[]).filter(
    (c) => CONSUMERS[c].kind !== 'k8s-secret' || k8s.has(c),
  );
}

/** Every Kubernetes Secret consumer, whatever the backend. */
export function allK8sConsumers(): ConsumerId[] {
  return (Object.keys(CONSUMERS) as ConsumerId[]).filter((c) => CONSUMERS[c].kind === 'k8s-secret');
}

type Delivered = { name: string; key: SecretKey; value: string };

/** Every use of a present value that `pick` selects, with derived values computed. */
function deliveries(
  values: Readonly<Record<string, string | undefined>>,
  pick: (use: SecretUse) => boolean,
  held?: ReadonlyMap<string, string>,
) {
  const out: Delivered[] = [];
  for (const spec of SECRET_SCHEMA) {
    const value = values[spec.key];
    if (value === undefined || value === '') continue;
    for (const use of spec.uses as readonly SecretUse[]) {
      if (pick(use))
        out.push({ name: use.as, key: spec.key, value: deliveredValue(use, value, held?.get(use.as)) });
    }
  }
  return out;
}

/**
 * What a consumer receives: its own names, in schema order, with derived values computed and secrets
 * hashed where the consumer takes a hash (`held`: what the consumer holds now, name → value, whose hashes
 * are kept while they verify).
 */
export function valuesFor(
  consumer: ConsumerId,
  values: Readonly<Record<string, string | undefined>>,
  held?: ReadonlyMap<string, string>,
): Delivered[] {
  return deliveries(values, (use) => use.consumer === consumer, held);
}

/**
 * Every value derived from a secret (a connection string built from a password), named as its consumer
 * names it. Derived values are secrets of their own: the redactor and the leak tests need them too.
 */
export function derivedValues(values: Readonly<Record<string, string | undefined>>): Delivered[] {
  return deliveries(values, (use) => use.derive !== undefined);
}

/** The names under which `consumer` receives a hash of a secret rather than the secret. */
export function hashedNames(consumer: ConsumerId): { name: string; key: SecretKey }[] {
  return SECRET_SCHEMA.flatMap((spec) =>
    (spec.uses as readonly SecretUse[])
      .filter((u) => u.consumer === consumer && u.hash)
      .map((u) => ({ name: u.as, key: spec.key })),
  );
}

/** The names a consumer knows, with whether it requires each (e.g. .secrets.env: CF_DNS_API_TOKEN, …). */
export function namesFor(consumer: ConsumerId): { name: string; key: SecretKey; required: boolean }[] {
  const out: { name: string; key: SecretKey; required: boolean }[] = [];
  for (const spec of SECRET_SCHEMA) {
    for (const use of spec.uses as readonly SecretUse[]) {
      if (use.consumer === consumer && !use.derive)
        out.push({ name: use.as, key: spec.key, required: use.required });
    }
  }
  return out;
}
