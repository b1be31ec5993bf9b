import { InputError } from '../errors.ts';

/**
 * Env files as docker compose reads them (`env_file:` and the project `.env`). A value is written bare
 * when compose v1 and v2 both read it back unchanged, single-quoted when it holds characters compose v2
 * would otherwise interpret (`$` interpolation, ` #` comments, quotes, spaces); a value no quoting can
 * carry (a newline, `${` which compose v1 expands even in quotes, or a single quote next to those
 * characters) is refused. Checked against Debian's docker-compose 1.29 in test/unit/render-env.test.ts.
 */
const BARE = /^(?!')[^\s#$"'\\`]*(?:'[^\s#$"'\\`]*)*$/;

export function quoteEnvValue(key: string, value: string): string {
  if (BARE.test(value)) return value;
  if (/[\n\r\0]/.test(value)) {
    throw new InputError(
      `${key} contains a line break or NUL, which an env file cannot carry`,
      'remove it from the value in the SOPS file',
    );
  }
  if (value.includes('${')) {
    throw new InputError(
      `${key} contains "\${", which docker-compose v1 expands even inside quotes`,
      'choose a value without "${" (generated values never have it)',
    );
  }
  if (!value.includes("'")) return `'${value}'`;
  throw new InputError(
    `${key} mixes a single quote with spaces, "$", "#" or quotes; compose cannot read such a value back intact`,
    'choose a value without single quotes (generated values never have them)',
  );
}

export function formatEnvFile(entries: readonly { name: string; value: string }[], header?: string): string {
  const lines = header ? header.split('\n').map((l) => `# ${l}`) : [];
  for (const { name, value } of entries) lines.push(`${name}=${quoteEnvValue(name, value)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Reads what formatEnvFile writes, plus what operators write by hand: comments, blank lines, `export`,
 * bare, single-quoted (literal) and double-quoted (with \n, \", \\ escapes) values. Later keys win, as in compose.
 */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^\s*(#|$)/.test(line)) continue;
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1] as string;
    const rest = m[2] as string;
    out.set(key, parseValue(rest));
  }
  return out;
}

function parseValue(rest: string): string {
  const v = rest.replace(/^\s+/, '');
  if (v.startsWith("'")) {
    const end = v.indexOf("'", 1);
    return end === -1 ? v.slice(1) : v.slice(1, end);
  }
  if (v.startsWith('"')) {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const ch = v[i];
      if (ch === '"') break;
      if (ch === '\\' && i + 1 < v.length) {
        const next = v[++i];
        out += next === 'n' ? '\n' : next === 'r' ? '\r' : next === 't' ? '\t' : next;
        continue;
      }
      out += ch;
    }
    return out;
  }
  // Unquoted: an inline comment starts at " #"; trailing blanks are dropped.
  const hash = v.search(/\s#/);
  return (hash === -1 ? v : v.slice(0, hash)).replace(/\s+$/, '');
}

/** A line that sets `name`, in any form an env file allows (`export`, blanks). */
export function envLineFor(name: string): RegExp {
  return new RegExp(`^\\s*(?:export\\s+)?${name}\\s*=`);
}

/** Replaces or appends one key, leaving every other line as it was: exactly one line for the key. */
export function upsertEnvLine(text: string, name: string, value: string): string {
  const line = `${name}=${quoteEnvValue(name, value)}`;
  const setsName = envLineFor(name);
  const kept = text.split('\n').filter((l) => !setsName.test(l));
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  return `${[...kept, line].join('\n')}\n`;
}
