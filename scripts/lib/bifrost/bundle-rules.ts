/**
 * The rules a bundle's files must meet, written once: the engine applies them on the host as it runs,
 * the local pre-flight (bundle-preflight.ts) and `bifrost check-bundle` apply them before any connection.
 * Functions over the files' text (and the engine's Bundle reader for the compose file); they report
 * file, key and placeholder names, never a value.
 */
import { type ConsumerId, namesFor } from '../secrets/schema.ts';
import { type Bundle, composeVariables } from './bundle.ts';
import { parseEnvFile } from './env-file.ts';
import { BIFROST_PLAN, CONFIG_PLACEHOLDERS, NB_IDP_MGMT_TOKEN, SERVICE_SECRET_FILES } from './plan.ts';
import { renderYamlTemplate } from './template.ts';
import { bundlePathProblem } from './upload.ts';

/** Written into .secrets.env by the engine on the host; a template may use them before they exist. */
export const HOST_MINTED: readonly string[] = [NB_IDP_MGMT_TOKEN];

/**
 * A rendered env file (`file`, holding `consumer`'s names) as the engine reads it: its values, and a
 * problem for the file missing or each required name unset.
 */
export function envFileInput(
  file: string,
  consumer: ConsumerId,
  text: string | undefined,
): { values: Map<string, string>; problems: string[] } {
  if (text === undefined) return { values: new Map(), problems: [`${file}: the file is missing`] };
  const values = parseEnvFile(text);
  const problems = namesFor(consumer)
    .filter(({ name, required }) => required && !values.get(name))
    .map(({ name }) => `${file}: ${name} is missing`);
  return { values, problems };
}

/** A service env file's entries: each of its names set from .secrets.env's values (unset ones left out). */
export function serviceEnvEntries(
  file: (typeof SERVICE_SECRET_FILES)[number],
  secrets: ReadonlyMap<string, string>,
): { name: string; value: string }[] {
  return file.entries.flatMap((e) => {
    const value = secrets.get(e.from);
    return value ? [{ name: e.name, value }] : [];
  });
}

/** A config template rendered with .secrets.env's values for its placeholders (throws InputError). */
export function renderConfigTemplate(
  text: string,
  template: string,
  secret: (name: string) => string | undefined,
): string {
  const values = Object.fromEntries(CONFIG_PLACEHOLDERS.map((k) => [k, secret(k)]));
  return renderYamlTemplate(text, values, { allowed: CONFIG_PLACEHOLDERS, file: template });
}

/** One finding of a shared rule: the message, and the service it concerns (for a line number). */
export interface RuleProblem {
  message: string;
  service?: string;
}

/** Each plan step that starts or runs a service compose does not define. */
export function planServiceProblems(services: Readonly<Record<string, unknown>>): RuleProblem[] {
  return BIFROST_PLAN.flatMap((step) =>
    (step.kind === 'service' || step.kind === 'run') && !Object.hasOwn(services, step.service)
      ? [{ message: `docker-compose.yml has no service ${step.service} (the ${step.id} step needs it)` }]
      : [],
  );
}

/** The files the engine writes on the host: the per-service secret env files and the rendered configs. */
export function engineRenderedFiles(): Set<string> {
  return new Set([
    ...SERVICE_SECRET_FILES.map((f) => f.file),
    ...BIFROST_PLAN.flatMap((s) => (s.kind === 'render' ? [s.output] : [])),
  ]);
}

/**
 * Every file a service reads (env_file, ./ bind mounts) is a path inside the bundle and either one of
 * `byPath` (what is uploaded) or rendered by the engine on the host.
 */
export async function serviceInputProblems(
  bundle: Bundle,
  byPath: ReadonlyMap<string, unknown>,
): Promise<RuleProblem[]> {
  const generated = engineRenderedFiles();
  const dirs = new Set([...byPath.keys()].flatMap(ancestors));
  const problems: RuleProblem[] = [];
  for (const service of Object.keys(await bundle.services())) {
    for (const input of await bundle.inputsOf(service)) {
      const rel = typeof input === 'string' ? input : '';
      const bad = bundlePathProblem(rel);
      if (bad) {
        problems.push({
          service,
          message: `service ${service} reads ${JSON.stringify(input)}, not a path inside the bundle (${bad})`,
        });
      } else if (!byPath.has(rel) && !generated.has(rel) && !dirs.has(rel)) {
        problems.push({
          service,
          message: `service ${service} reads ${rel}, which is neither in the bundle nor rendered on the host`,
        });
      }
    }
  }
  return problems;
}

/**
 * compose reads `.env` (uploaded) for `${…}` in the compose file: a required variable it lacks would stop
 * `compose up` for every service after the swap. Only parsed values count (comments are not interpolated).
 */
export function interpolationProblems(services: unknown, dotEnvText: string): string[] {
  const dotEnv = parseEnvFile(dotEnvText);
  const missing = new Set<string>();
  for (const { name, op } of composeVariables(services)) {
    if (!op.endsWith('?')) continue;
    const value = dotEnv.get(name);
    if (value === undefined || (op === ':?' && value === '')) missing.add(name);
  }
  return [...missing].map(
    (name) =>
      `docker-compose.yml requires \${${name}}, which .env does not set (compose would start nothing)`,
  );
}

function ancestors(path: string): string[] {
  const parts = path.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}
