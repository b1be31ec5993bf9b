/**
 * The host's own state of the two rendered env files. The upload diffs against its manifest (what it
 * sent), so a file edited or trimmed on the host is invisible to it; provision and `bifrost verify` read
 * the files themselves to see such drift. .secrets.env also holds lines provision never renders, the
 * engine's NB_IDP_MGMT_TOKEN and, while the SOPS file has none, the NB_PROXY_TOKEN it minted: the rules
 * for those lines live here. Values stay in memory: only key names and verdicts come out.
 */

import { redactor } from '../core/redact.ts';
import type { Executor } from '../exec/executor.ts';
import { CONSUMERS, type ConsumerId } from '../secrets/schema.ts';
import { envLineFor, parseEnvFile } from './env-file.ts';
import { NB_IDP_MGMT_TOKEN, NB_PROXY_TOKEN } from './plan.ts';
import { TOKEN_MINTED_FROM } from './token.ts';

// The file names are the schema's (its env-file consumers' paths), named once there.
export const SECRETS_ENV = CONSUMERS['bifrost-secrets-env'].path;
export const DOT_ENV = CONSUMERS['bifrost-dot-env'].path;
export const RENDERED_ENV_FILES: readonly string[] = [SECRETS_ENV, DOT_ENV];
/** Each rendered env file with the schema consumer whose names it holds. */
export const RENDERED_ENV_CONSUMERS: readonly (readonly [string, ConsumerId])[] = [
  [SECRETS_ENV, 'bifrost-secrets-env'],
  [DOT_ENV, 'bifrost-dot-env'],
];

/** The engine's line in .secrets.env. */
const TOKEN_LINE = envLineFor(NB_IDP_MGMT_TOKEN);

/**
 * Marks the NB_PROXY_TOKEN line the engine minted, on the line before it (without the key's name, so the
 * key appears once in the file). The same key may come from the
 * SOPS file (it wins), and that line provisioning owns; only a marked line is the host's own.
 */
export const MINTED_PROXY_TOKEN_MARK =
  '# The next line was minted on this host by bifrost-bootstrap (netbird-server token create); provision keeps it while the SOPS file has none';

const PROXY_TOKEN_LINE = envLineFor(NB_PROXY_TOKEN);

/** Indexes of the minted proxy-token lines: each mark with the NB_PROXY_TOKEN line right after it. */
function mintedProxyLines(lines: readonly string[]): Set<number> {
  const out = new Set<number>();
  lines.forEach((l, i) => {
    if (l.replace(/\r$/, '') !== MINTED_PROXY_TOKEN_MARK) return;
    out.add(i);
    if (PROXY_TOKEN_LINE.test(lines[i + 1] ?? '')) out.add(i + 1);
  });
  return out;
}

/** The NB_PROXY_TOKEN line compose reads (the last), or -1. */
function lastProxyLine(lines: readonly string[]): number {
  for (let i = lines.length - 1; i >= 0; i--) if (PROXY_TOKEN_LINE.test(lines[i] as string)) return i;
  return -1;
}

/**
 * .secrets.env with `line` (a formatted NB_PROXY_TOKEN line) as the minted token: every other
 * NB_PROXY_TOKEN line and mark is dropped, so the file holds the key once, marked, at its end.
 */
export function withMintedProxyToken(text: string, line: string): string {
  const kept = text
    .split('\n')
    .filter((l) => !PROXY_TOKEN_LINE.test(l) && l.replace(/\r$/, '') !== MINTED_PROXY_TOKEN_MARK);
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  return `${[...kept, MINTED_PROXY_TOKEN_MARK, line].join('\n')}\n`;
}

/** Whether .secrets.env's NB_PROXY_TOKEN is the one the engine minted (not the SOPS file's). */
export function proxyTokenMinted(text: string): boolean {
  const lines = text.split('\n');
  const minted = mintedProxyLines(lines);
  const last = lastProxyLine(lines);
  return last !== -1 && minted.has(last);
}

/**
 * The part of a bundle file provisioning owns, which its upload manifest records: all of it, except the
 * lines of .secrets.env the engine writes and replaces on the host (NB_IDP_MGMT_TOKEN, and a minted
 * NB_PROXY_TOKEN with its mark). A token minted or minted again therefore never reads as a change of the
 * file, nor as an edit on the host; a NB_PROXY_TOKEN from the SOPS file does.
 */
export function provisionedText(path: string, text: string): string {
  if (path !== SECRETS_ENV) return text;
  const lines = text.split('\n');
  const minted = mintedProxyLines(lines);
  return lines.filter((l, i) => !TOKEN_LINE.test(l) && !minted.has(i)).join('\n');
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
  return carryProxyToken(carryIdpToken(rendered, host), host);
}

function carryIdpToken(rendered: string, host: string): string {
  const hostValues = parseEnvFile(host);
  if (!hasToken(hostValues)) return rendered;
  if (hostValues.get(TOKEN_MINTED_FROM) !== parseEnvFile(rendered).get(TOKEN_MINTED_FROM)) return rendered;
  // The last line wins, as in compose.
  const line = host
    .split('\n')
    .filter((l) => TOKEN_LINE.test(l))
    .pop();
  return line === undefined ? rendered : appendLines(rendered, [line]);
}

/**
 * The host's minted NB_PROXY_TOKEN (with its mark) carried over when the SOPS file has none: the token is
 * minted in NetBird's store once, and without this every provision would upload a file without it and
 * the bootstrap would mint another. A value in the SOPS file wins and is not joined by the minted one.
 */
function carryProxyToken(rendered: string, host: string): string {
  if (parseEnvFile(rendered).get(NB_PROXY_TOKEN) || !proxyTokenMinted(host)) return rendered;
  const lines = host.split('\n');
  const at = lastProxyLine(lines);
  return appendLines(rendered, [MINTED_PROXY_TOKEN_MARK, lines[at] as string]);
}

function appendLines(text: string, lines: readonly string[]): string {
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  return `${text}${sep}${lines.map((l) => l.replace(/\r$/, '')).join('\n')}\n`;
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
