/**
 * The host's own state of the two rendered env files. The upload diffs against its manifest (what it
 * sent), so a file edited or trimmed on the host is invisible to it; provision and `bifrost verify` read
 * the files themselves to see such drift. .secrets.env also holds a line provision never renders, the
 * engine's NB_IDP_MGMT_TOKEN: the rules for that line live here. Values stay in memory: only key names
 * and verdicts come out.
 */
import type { Executor } from '../exec/executor.ts';
import { redactor } from '../redact.ts';
import { parseEnvFile } from './env-file.ts';
import { NB_IDP_MGMT_TOKEN } from './plan.ts';
import { TOKEN_MINTED_FROM } from './token.ts';

export const SECRETS_ENV = '.secrets.env';
export const DOT_ENV = '.env';
export const RENDERED_ENV_FILES: readonly string[] = [SECRETS_ENV, DOT_ENV];

/** The engine's line in .secrets.env, in any form an env file allows (`export`, blanks). */
const TOKEN_LINE = new RegExp(`^\\s*(?:export\\s+)?${NB_IDP_MGMT_TOKEN}\\s*=`);

/**
 * The part of a bundle file provisioning owns, which its upload manifest records: all of it, except the
 * NB_IDP_MGMT_TOKEN lines of .secrets.env, which the engine writes and replaces on the host. A token minted
 * or minted again therefore never reads as a change of the file, nor as an edit on the host.
 */
export function provisionedText(path: string, text: string): string {
  if (path !== SECRETS_ENV) return text;
  return text
    .split('\n')
    .filter((l) => !TOKEN_LINE.test(l))
    .join('\n');
}

/**
 * The .secrets.env to upload: the rendered one, with the host's NB_IDP_MGMT_TOKEN line carried over as it
 * stands. The token is minted in Authentik once; without this, every change of another key would upload a
 * file without it and the bootstrap would mint it again. Not carried when the key it is minted from
 * (TOKEN_MINTED_FROM) changes: the token step then mints it under the new key. `bifrost token` is what
 * asks for a new token otherwise.
 */
export function carryToken(rendered: string, host: string | undefined): string {
  if (host === undefined) return rendered;
  const hostValues = parseEnvFile(host);
  if (!hasToken(hostValues)) return rendered;
  if (hostValues.get(TOKEN_MINTED_FROM) !== parseEnvFile(rendered).get(TOKEN_MINTED_FROM)) return rendered;
  // The last line wins, as in compose.
  const line = host
    .split('\n')
    .filter((l) => TOKEN_LINE.test(l))
    .pop();
  if (line === undefined) return rendered;
  const sep = rendered === '' || rendered.endsWith('\n') ? '' : '\n';
  return `${rendered}${sep}${line.replace(/\r$/, '')}\n`;
}

export function hasToken(env: Map<string, string>): boolean {
  return Boolean(env.get(NB_IDP_MGMT_TOKEN));
}

export interface HostEnvState {
  /** Each rendered env file's text on the host, by name; undefined when it is not there. */
  texts: Record<string, string | undefined>;
  /** .secrets.env is there but holds no NB_IDP_MGMT_TOKEN (a failed bootstrap, a hand edit). */
  tokenMissing: boolean;
}

/** Reads the host's .secrets.env and .env under `dir`, every value registered with the redactor. */
export async function readHostEnvState(executor: Executor, dir: string): Promise<HostEnvState> {
  const texts = await readEnvTexts(executor, dir);
  const secretsEnv = texts[SECRETS_ENV];
  return {
    texts,
    tokenMissing: secretsEnv !== undefined && !hasToken(parseEnvFile(secretsEnv)),
  };
}

/**
 * Reads the host's .secrets.env and .env and registers every value with the redactor, so that nothing
 * printed afterwards (logs, health-check output, errors) can carry one. `found`: the files that exist.
 */
export async function registerHostSecrets(
  executor: Executor,
  dir: string,
): Promise<{ secrets: Map<string, string>; dotEnv: Map<string, string>; found: string[] }> {
  const texts = await readEnvTexts(executor, dir);
  return {
    secrets: parseEnvFile(texts[SECRETS_ENV] ?? ''),
    dotEnv: parseEnvFile(texts[DOT_ENV] ?? ''),
    found: RENDERED_ENV_FILES.filter((f) => texts[f] !== undefined),
  };
}

async function readEnvTexts(executor: Executor, dir: string): Promise<Record<string, string | undefined>> {
  const read = await Promise.all(RENDERED_ENV_FILES.map((f) => executor.files.readFile(`${dir}/${f}`)));
  const texts = Object.fromEntries(RENDERED_ENV_FILES.map((f, i) => [f, read[i]]));
  for (const text of read) for (const [k, v] of parseEnvFile(text ?? '')) redactor.register(v, k);
  return texts;
}
