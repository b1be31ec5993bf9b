/**
 * The bootstrap engine's checks on the bundle's content, run locally on exactly the files a provision is
 * about to upload, before any connection: so nothing goes live (the staging directory never replaces the
 * live one, no service is started) with a template, env file or compose file the engine would refuse
 * halfway through. Every rule is the engine's own (its tables and functions, imported); only values the
 * host alone has (the token the engine mints) are stood in for.
 */
import { parse } from 'yaml';
import { InputError } from '../errors.ts';
import type { FileOps } from '../exec/executor.ts';
import { namesFor } from '../secrets/schema.ts';
import { Bundle, composeVariables } from './bundle.ts';
import { formatEnvFile, parseEnvFile } from './env-file.ts';
import { RENDERED_ENV_CONSUMERS } from './host-state.ts';
import { BIFROST_PLAN, CONFIG_PLACEHOLDERS, NB_IDP_MGMT_TOKEN, SERVICE_SECRET_FILES } from './plan.ts';
import { renderYamlTemplate } from './template.ts';
import { type BundleFile, bundlePathProblem, checkBundleFiles } from './upload.ts';

/** Written into .secrets.env by the engine on the host; a template may use them before they exist. */
export const HOST_MINTED: readonly string[] = [NB_IDP_MGMT_TOKEN];
const STAND_IN = 'minted-on-the-host';

/** A virtual directory for the engine's Bundle reader over the in-memory files. */
const DIR = '<bundle>';

/**
 * Throws one InputError listing every problem the engine would meet in `files` (the bundle plus the
 * rendered .secrets.env and .env). Messages name files, keys and placeholders, never a value.
 */
export async function checkBundleContent(files: readonly BundleFile[]): Promise<void> {
  // What the upload itself would refuse (a binary file, a bad path), found before connecting too.
  checkBundleFiles(files);
  const byPath = new Map(files.map((f) => [f.path, String(f.content)]));
  const problems: string[] = [];
  const secrets = checkSecretInputs(byPath, problems);
  checkServiceEnvFiles(secrets, problems);
  checkTemplates(byPath, secrets, problems);
  await checkCompose(byPath, problems);
  if (problems.length > 0) {
    throw new InputError(
      `nothing done: the bundle would fail on the host:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      'fix the bundle (cloud/bifrost or --bundle DIR), then run again: the host was not touched',
    );
  }
}

/** The engine's pre-flight: the required names of each secret file; returns .secrets.env's values. */
function checkSecretInputs(byPath: Map<string, string>, problems: string[]): Map<string, string> {
  let secrets = new Map<string, string>();
  for (const [file, consumer] of RENDERED_ENV_CONSUMERS) {
    const text = byPath.get(file);
    if (text === undefined) {
      problems.push(`${file}: the file is missing`);
      continue;
    }
    const values = parseEnvFile(text);
    if (file === '.secrets.env') secrets = values;
    for (const { name, required } of namesFor(consumer)) {
      if (required && !values.get(name)) problems.push(`${file}: ${name} is missing`);
    }
  }
  return secrets;
}

/** Each service's env file, formatted as the engine formats it (the quoting rules may refuse a value). */
function checkServiceEnvFiles(secrets: Map<string, string>, problems: string[]): void {
  for (const f of SERVICE_SECRET_FILES) {
    try {
      formatEnvFile(
        f.entries.flatMap((e) => {
          const value = secrets.get(e.from);
          return value ? [{ name: e.name, value }] : [];
        }),
      );
    } catch (err) {
      problems.push(`${f.file}: ${(err as Error).message}`);
    }
  }
}

/** Every render step of the plan, rendered in memory and thrown away. */
function checkTemplates(byPath: Map<string, string>, secrets: Map<string, string>, problems: string[]) {
  const values = Object.fromEntries(
    CONFIG_PLACEHOLDERS.map((k) => [k, secrets.get(k) || (HOST_MINTED.includes(k) ? STAND_IN : undefined)]),
  );
  for (const step of BIFROST_PLAN) {
    if (step.kind !== 'render') continue;
    const text = byPath.get(step.template);
    if (text === undefined) {
      problems.push(`${step.template} is missing from the bundle (the ${step.id} step renders it)`);
      continue;
    }
    try {
      parse(text);
    } catch (err) {
      problems.push(`${step.template} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    try {
      renderYamlTemplate(text, values, { allowed: CONFIG_PLACEHOLDERS, file: step.template });
    } catch (err) {
      // The template's own messages name placeholders only; anything else could quote rendered text.
      const hint = (err as InputError).hint;
      problems.push(
        err instanceof InputError
          ? `${err.message}${hint ? ` (${hint})` : ''}`
          : `${step.template} cannot be rendered`,
      );
    }
  }
}

/**
 * The compose file, read by the engine's own Bundle: it parses, has every service the plan starts, and
 * every file a service reads (env_file, ./ bind mounts) is inside the bundle and either uploaded or
 * rendered by the engine on the host.
 */
async function checkCompose(byPath: Map<string, string>, problems: string[]): Promise<void> {
  const bundle = memoryBundle(byPath);
  if (!byPath.has('docker-compose.yml')) {
    problems.push('docker-compose.yml is missing from the bundle');
    return;
  }
  let services: Awaited<ReturnType<Bundle['services']>>;
  try {
    services = await bundle.services();
  } catch (err) {
    problems.push(`docker-compose.yml is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    return;
  }
  problems.push(...planServiceProblems(services).map((p) => p.message));
  checkInterpolation(services, byPath, problems);
  problems.push(...(await serviceInputProblems(bundle, byPath)).map((p) => p.message));
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
function checkInterpolation(services: unknown, byPath: Map<string, string>, problems: string[]): void {
  const dotEnv = parseEnvFile(byPath.get('.env') ?? '');
  const missing = new Set<string>();
  for (const { name, op } of composeVariables(services)) {
    if (!op.endsWith('?')) continue;
    const value = dotEnv.get(name);
    if (value === undefined || (op === ':?' && value === '')) missing.add(name);
  }
  for (const name of missing) {
    problems.push(
      `docker-compose.yml requires \${${name}}, which .env does not set (compose would start nothing)`,
    );
  }
}

function ancestors(path: string): string[] {
  const parts = path.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** The engine's Bundle reader over files held in memory (the compose file parsed as the engine does). */
export function memoryBundle(byPath: ReadonlyMap<string, string>): Bundle {
  return new Bundle(memoryFiles(byPath), DIR);
}

/** Read-only file operations over the files about to be uploaded. */
function memoryFiles(byPath: ReadonlyMap<string, string>): FileOps {
  const prefix = `${DIR}/`;
  return {
    readFile: async (path) => (path.startsWith(prefix) ? byPath.get(path.slice(prefix.length)) : undefined),
    stat: async () => undefined,
    writeFileAtomic: async (path) => {
      throw new Error(`the bundle check writes nothing (${path})`);
    },
  };
}
