/**
 * The bootstrap engine's checks on the bundle's content, run locally on exactly the files a provision is
 * about to upload, before any connection: so nothing goes live (the staging directory never replaces the
 * live one, no service is started) with a template, env file or compose file the engine would refuse
 * halfway through. Every rule is the engine's own (bundle-rules.ts, which the engine calls too); only
 * values the host alone has (the token the engine mints) are stood in for.
 */
import { parse } from 'yaml';
import { InputError } from '../core/errors.ts';
import type { FileOps } from '../exec/executor.ts';
import { Bundle } from './bundle.ts';
import {
  envFileInput,
  HOST_MINTED,
  interpolationProblems,
  planServiceProblems,
  renderConfigTemplate,
  serviceEnvEntries,
  serviceInputProblems,
} from './bundle-rules.ts';
import { formatEnvFile } from './env-file.ts';
import { DOT_ENV, RENDERED_ENV_CONSUMERS, SECRETS_ENV } from './host-state.ts';
import { BIFROST_PLAN, SERVICE_SECRET_FILES } from './plan.ts';
import { type BundleFile, checkBundleFiles } from './upload.ts';

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
    const input = envFileInput(file, consumer, byPath.get(file));
    problems.push(...input.problems);
    if (file === SECRETS_ENV) secrets = input.values;
  }
  return secrets;
}

/** Each service's env file, formatted as the engine formats it (the quoting rules may refuse a value). */
function checkServiceEnvFiles(secrets: Map<string, string>, problems: string[]): void {
  for (const f of SERVICE_SECRET_FILES) {
    try {
      formatEnvFile(serviceEnvEntries(f, secrets));
    } catch (err) {
      problems.push(`${f.file}: ${(err as Error).message}`);
    }
  }
}

/** Every render step of the plan, rendered in memory and thrown away. */
function checkTemplates(byPath: Map<string, string>, secrets: Map<string, string>, problems: string[]) {
  const secret = (k: string) => secrets.get(k) || (HOST_MINTED.includes(k) ? STAND_IN : undefined);
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
      renderConfigTemplate(text, step.template, secret);
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
  problems.push(...interpolationProblems(services, byPath.get(DOT_ENV) ?? ''));
  problems.push(...(await serviceInputProblems(bundle, byPath)).map((p) => p.message));
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
