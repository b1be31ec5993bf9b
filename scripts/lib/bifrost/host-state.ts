/**
 * The host's own state of the two rendered env files, compared with what a provision would upload. The
 * upload diffs against its manifest (what it sent), so a file edited or trimmed on the host is invisible
 * to it; provision and `bifrost verify` read the files themselves to see such drift. Values stay in memory:
 * only key names and verdicts come out.
 */
import type { Executor } from '../exec/executor.ts';
import { redactor } from '../redact.ts';
import { parseEnvFile } from './env-file.ts';
import { NB_IDP_MGMT_TOKEN } from './plan.ts';

export const SECRETS_ENV = '.secrets.env';
export const DOT_ENV = '.env';
export const RENDERED_ENV_FILES: readonly string[] = [SECRETS_ENV, DOT_ENV];

export interface HostEnvState {
  /** Rendered files whose keys or values on the host differ from what would be uploaded. */
  edited: string[];
  /** Files that are not on the host at all. */
  missing: string[];
  /** .secrets.env is there but holds no NB_IDP_MGMT_TOKEN (a failed `bifrost token`, a hand edit). */
  tokenMissing: boolean;
}

/**
 * Same keys and values, ignoring NB_IDP_MGMT_TOKEN: the engine adds that line on the host, so it is
 * never part of what provision renders.
 */
export function sameEnv(want: Map<string, string>, host: Map<string, string>): boolean {
  const strip = (m: Map<string, string>) =>
    [...m].filter(([k]) => k !== NB_IDP_MGMT_TOKEN).sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify(strip(want)) === JSON.stringify(strip(host));
}

export function hasToken(env: Map<string, string>): boolean {
  return Boolean(env.get(NB_IDP_MGMT_TOKEN));
}

/** Reads the host's .secrets.env and .env under `dir` and compares them with the rendered ones. */
export async function readHostEnvState(
  executor: Executor,
  dir: string,
  rendered: Readonly<Record<string, string>>,
): Promise<HostEnvState> {
  const state: HostEnvState = { edited: [], missing: [], tokenMissing: false };
  const texts = await Promise.all(RENDERED_ENV_FILES.map((f) => executor.files.readFile(`${dir}/${f}`)));
  RENDERED_ENV_FILES.forEach((file, i) => {
    const text = texts[i];
    if (text === undefined) {
      state.missing.push(file);
      return;
    }
    const host = parseEnvFile(text);
    if (!sameEnv(parseEnvFile(rendered[file] ?? ''), host)) state.edited.push(file);
    if (file === SECRETS_ENV && !hasToken(host)) state.tokenMissing = true;
  });
  return state;
}

/**
 * Reads the host's .secrets.env and .env and registers every value with the redactor, so that nothing
 * printed afterwards (logs, health-check output, errors) can carry one. `found`: the files that exist.
 */
export async function registerHostSecrets(
  executor: Executor,
  dir: string,
): Promise<{ secrets: Map<string, string>; dotEnv: Map<string, string>; found: string[] }> {
  const [secretsText, dotEnvText] = await Promise.all([
    executor.files.readFile(`${dir}/${SECRETS_ENV}`),
    executor.files.readFile(`${dir}/${DOT_ENV}`),
  ]);
  const secrets = parseEnvFile(secretsText ?? '');
  const dotEnv = parseEnvFile(dotEnvText ?? '');
  for (const values of [secrets, dotEnv]) for (const [k, v] of values) redactor.register(v, k);
  const found = [
    ...(secretsText === undefined ? [] : [SECRETS_ENV]),
    ...(dotEnvText === undefined ? [] : [DOT_ENV]),
  ];
  return { secrets, dotEnv, found };
}
