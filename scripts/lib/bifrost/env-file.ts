import { InputError } from '../core/errors.ts';

/**
 * Env files as docker compose reads them (`env_file:` and the project `.env`), written in the one form that
 * both compose flavours read back as the exact value:
 * - compose v1 (Debian's docker-compose 1.29.2-3) reads them with python-dotenv 0.21.0 (python3-dotenv
 *   0.21.0-1, dotenv/parser.py, variables.py): a bare value is taken to the line's end, cut at white space
 *   before `#`; quoted values are matched by a greedy `(?:\\'|[^'])*`, so a backslash just before the closing
 *   quote runs the value on into the next lines; single quotes decode `\\` and `\'`, double quotes `\\`,
 *   `\"`, `\n` and the other C escapes; `${NAME}` is expanded in every form, and nothing escapes a `$`.
 * - compose v2 reads them with compose-go (compose-spec/compose-go@v2.13.0:dotenv/parser.go, the same value
 *   rules since v2.0.0): a bare value is cut at ` #` and interpolated (`$X`, `${X}`, `$$`); single quotes are
 *   raw, except that a backslash escapes the next character from ending the value (`\'` reads `'`, `\\`
 *   reads `\\`); double quotes read `\\`, `\"`, `\n`… and are interpolated.
 * So a value is written bare when it can be (any backslash is fine there), else in single quotes (`$NAME`,
 * ` #`, spaces, quotes; `'` as `\'`) unless a backslash there would read differently, else in double quotes
 * (a trailing backslash or a line break, without `$NAME`). The rest is refused, naming what cannot go together.
 * Read back through the real docker-compose 1.29 and a port of compose-go's parser in
 * test/unit/render-env.test.ts (tricky values) and test/unit/env-file.test.ts (seeded hostile ones).
 */
// White space to either reader: JavaScript's \s, Python's str.isspace (adds \x1c-\x1f, \x85), Go's unicode.IsSpace.
const WS = '[\\s\\x1c-\\x1f\\x85]';
const EDGE_OR_COMMENT = new RegExp(`^${WS}|${WS}$|${WS}#`, 'u');
/** What python-dotenv 0.21 expands (`${NAME}`, `${NAME:-default}`) in any quoting, widened to any `${…}`. */
const V1_VARIABLE = /\$\{[^}]*\}/;
/** Backslashes compose v1 and v2 read differently inside single quotes: `\\`, `\'`, one before the closing quote. */
const SINGLE_QUOTE_BACKSLASH = /\\[\\']|\\$/;
const LINE_BREAK = /[\n\r]/;
/**
 * A `$` compose v2 interpolates in bare and double-quoted values (template.go: `$$`, `$NAME`, `${…}`; its
 * `(?i)` folds U+017F and U+212A onto `s` and `k`); any other `$` is a plain character to v1 and v2 alike.
 */
const V2_TEMPLATE = /\$[$_a-zA-Z{\u017f\u212a]/;

function isBare(value: string): boolean {
  return !V2_TEMPLATE.test(value) && !/[\n\r]|^['"]/.test(value) && !EDGE_OR_COMMENT.test(value);
}

export function quoteEnvValue(key: string, value: string): string {
  if (/[\0\p{Cs}]/u.test(value)) {
    throw new InputError(
      `${key} contains a NUL or a broken UTF-16 character, which an env file cannot carry`,
      'remove it from the value in the SOPS file',
    );
  }
  if (V1_VARIABLE.test(value)) {
    throw new InputError(
      `${key} contains "\${…}", which docker-compose v1 expands as a variable in any quoting`,
      'change the value in the SOPS file: no "${" before a "}" (generated values never have it)',
    );
  }
  if (isBare(value)) return value;
  if (!SINGLE_QUOTE_BACKSLASH.test(value) && !LINE_BREAK.test(value))
    return `'${value.replaceAll("'", "\\'")}'`;
  if (!V2_TEMPLATE.test(value) && !value.endsWith('\\')) {
    const escaped = value.replace(/[\\"]/g, '\\$&').replaceAll('\n', '\\n').replaceAll('\r', '\\r');
    return `"${escaped}"`;
  }
  throw new InputError(
    `${key} holds ${clash(value)}, which no env-file quoting carries for both docker-compose v1 and compose v2`,
    'change the value in the SOPS file (generated values never hold these characters)',
  );
}

/**
 * Why a value that is not bare has no form: `$NAME` needs single quotes (bare and double-quoted values are
 * interpolated by compose v2), where a backslash pair, `\'` or a trailing backslash reads differently and a
 * line break would stand raw across lines (this tool reads env files line by line); a trailing backslash
 * needs the bare form (a quoted one runs on into the next lines in compose v1).
 */
function clash(value: string): string {
  const inSingleQuotes = /\\\\/.test(value)
    ? 'a doubled backslash "\\\\" (compose v1 reads one backslash there)'
    : /\\'/.test(value)
      ? `a backslash before a single quote "\\'" (compose v1 and v2 read it differently there)`
      : value.endsWith('\\')
        ? 'a trailing backslash (it would escape the closing quote)'
        : 'a line break (it would stand raw there, across lines)';
  if (V2_TEMPLATE.test(value)) {
    return `"$" before a name, "{" or "$" (kept only in single quotes) together with ${inSingleQuotes}`;
  }
  const needsQuotes = LINE_BREAK.test(value)
    ? 'a line break'
    : /^['"]/.test(value)
      ? 'a leading quote'
      : new RegExp(`^${WS}`, 'u').test(value)
        ? 'leading white space'
        : 'white space before "#"';
  return `a trailing backslash (kept only bare) together with ${needsQuotes} (which needs quotes)`;
}

/** `label`: how a refusal names the entry (by default its name), e.g. with the SOPS key it comes from. */
export function formatEnvFile(
  entries: readonly { name: string; value: string; label?: string }[],
  header?: string,
): string {
  const lines = header ? header.split('\n').map((l) => `# ${l}`) : [];
  for (const { name, value, label } of entries) lines.push(`${name}=${quoteEnvValue(label ?? name, value)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Reads what formatEnvFile writes, plus what operators write by hand: comments, blank lines, `export`,
 * bare, single-quoted and double-quoted values, one line each, as compose v2 reads them (without
 * interpolation): in single quotes a backslash only keeps the next character from ending the value (`\'`
 * reads `'`); in double quotes `\\`, `\"`, `\n`, `\r`, `\t` are escapes and any other backslash stays.
 * Later keys win, as in compose.
 */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^\s*(#|$)/.test(line)) continue;
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=(.*)$/s.exec(line);
    if (!m) continue;
    const key = m[1] as string;
    const rest = m[2] as string;
    out.set(key, parseValue(rest));
  }
  return out;
}

const DOUBLE_QUOTE_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\',
  '"': '"',
  n: '\n',
  r: '\r',
  t: '\t',
};

function parseValue(rest: string): string {
  const v = rest.replace(/^\s+/, '');
  const quote = v[0];
  if (quote === "'" || quote === '"') {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const ch = v[i] as string;
      if (ch === quote) break;
      if (ch === '\\' && i + 1 < v.length) {
        const next = v[++i] as string;
        if (next === quote) out += next;
        else if (quote === '"') out += DOUBLE_QUOTE_ESCAPES[next] ?? `\\${next}`;
        else out += `\\${next}`;
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
