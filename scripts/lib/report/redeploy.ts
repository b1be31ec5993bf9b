/**
 * What must be redeployed after keys change, from the schema's consumers: which Kubernetes Secret (and
 * which of its keys), which host file (under which name), and which Bifrost services read it, found in
 * the bundle's compose file (env files rendered from .secrets.env, `${VAR}` interpolation from .env, the
 * rendered NetBird config's bind mount).
 */
import { Bundle, bundleMountsOf, type ComposeService } from '../bifrost/bundle.ts';
import { BIFROST_PLAN, CONFIG_PLACEHOLDERS, SERVICE_SECRET_FILES } from '../bifrost/plan.ts';
import { localFiles } from '../exec/local.ts';
import { CONSUMERS, type SecretUse, specOf } from '../secrets/schema.ts';

export const DEFAULT_BUNDLE = 'cloud/bifrost';

export interface RedeployPlace {
  /** `k8s Secret infisical/infisical-secrets`, `Bifrost .secrets.env`, `operator provisioning`. */
  consumer: string;
  kind: 'k8s-secret' | 'env-file' | 'operator' | 'suite';
  /** The name the value has there (a Secret's key, an env file's variable). */
  as: string;
  /** Bifrost services that read it (empty when unknown or not a host file). */
  services: string[];
}

export interface Redeploy {
  key: string;
  places: RedeployPlace[];
}

type Compose = Record<string, ComposeService & Record<string, unknown>>;

/** The bundle's compose services, read as the engine reads them; none when it is missing or broken. */
async function readCompose(bundleDir: string): Promise<Compose> {
  try {
    return (await new Bundle(localFiles, bundleDir).services()) as Compose;
  } catch {
    // A missing or broken compose file is check-bundle's to report; here the services are just unknown.
    return {};
  }
}

/** Services that interpolate `${NAME}` (compose reads .env for that). */
function interpolating(compose: Compose, name: string): string[] {
  const pattern = new RegExp(`\\$\\{${name}(?:[:?}-])`);
  return Object.entries(compose)
    .filter(([, def]) => pattern.test(JSON.stringify(def)))
    .map(([service]) => service);
}

/** Services that read NAME from .secrets.env: through their rendered env file or the NetBird config. */
function readingSecretsEnv(compose: Compose, name: string): string[] {
  const services = SERVICE_SECRET_FILES.filter((f) => f.entries.some((e) => e.from === name)).flatMap(
    (f) => f.services,
  );
  if ((CONFIG_PLACEHOLDERS as readonly string[]).includes(name)) {
    const rendered = BIFROST_PLAN.flatMap((s) => (s.kind === 'render' ? [s.output] : []));
    services.push(
      ...Object.entries(compose)
        .filter(([, def]) => bundleMountsOf(def).some((m) => rendered.includes(m.source)))
        .map(([service]) => service),
    );
  }
  return [...new Set(services)];
}

export async function redeployFor(keys: readonly string[], bundleDir = DEFAULT_BUNDLE): Promise<Redeploy[]> {
  const compose = await readCompose(bundleDir);
  return keys.map((key) => {
    const uses = (specOf(key)?.uses ?? []) as readonly SecretUse[];
    const places = uses.map((use): RedeployPlace => {
      const info = CONSUMERS[use.consumer];
      switch (info.kind) {
        case 'k8s-secret':
          return {
            consumer: `k8s Secret ${info.namespace}/${use.consumer}`,
            kind: info.kind,
            as: use.as,
            services: [],
          };
        case 'env-file':
          return {
            consumer: `Bifrost ${info.path}`,
            kind: info.kind,
            as: use.as,
            services:
              use.consumer === 'bifrost-secrets-env'
                ? readingSecretsEnv(compose, use.as)
                : interpolating(compose, use.as),
          };
        default:
          return { consumer: info.title, kind: info.kind, as: use.as, services: [] };
      }
    });
    return { key, places };
  });
}

/** People's lines: one per key and place, then what to run. */
export function formatRedeploy(plan: readonly Redeploy[], secretsFile: string): string[] {
  const lines = ['redeploy:'];
  for (const { key, places } of plan) {
    for (const p of places) {
      const services = p.services.length ? `; restarts ${p.services.join(', ')}` : '';
      lines.push(`  ${key.padEnd(28)} → ${p.consumer} as ${p.as}${services}`);
    }
  }
  const kinds = new Set(plan.flatMap((r) => r.places.map((p) => p.kind)));
  const file = `--secrets-file ${secretsFile}`;
  if (kinds.has('k8s-secret'))
    lines.push(
      `  cluster: node --import tsx scripts/create-bootstrap-secrets.ts ${file} (just create-secrets), then restart the pods that read those Secrets`,
    );
  if (kinds.has('env-file'))
    lines.push(
      `  host:    node --import tsx scripts/provision-bifrost.ts --host HOST ${file} (just bifrost-up HOST): re-renders the files and restarts the services whose inputs changed`,
    );
  if (kinds.has('operator'))
    lines.push('  operator: update the value where provisioning uses it (the provider stacks)');
  return lines;
}
