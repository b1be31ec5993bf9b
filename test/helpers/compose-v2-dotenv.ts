/**
 * How compose v2 reads an env file (`env_file:` and the project `.env`): a port of compose-go's dotenv
 * parser, compose-spec/compose-go@v2.13.0:dotenv/parser.go (the value rules are unchanged since v2.0.0),
 * with the `$` interpolation of compose-spec/compose-go@v2.13.0:template/template.go that it applies to bare
 * and double-quoted values (dotenv/godotenv.go expandVariables). compose v2 cannot be installed here (only
 * Debian's docker-compose 1.29 can), so the tests read rendered files back with this as well.
 *
 * Go works on bytes, this on UTF-16 code units: every character the parser looks at is ASCII, and neither
 * UTF-8 nor UTF-16 encodes another character with an ASCII unit, so the two read the same.
 */

// Go's unicode.IsSpace, and the parser's own isSpace (no line break).
const GO_UNICODE_SPACE = /[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const isSpace = (c: string) => ['\t', '\v', '\f', '\r', ' ', '\x85', '\xa0'].includes(c);
const trimRightUnicodeSpace = (s: string) => {
  let end = s.length;
  while (end > 0 && GO_UNICODE_SPACE.test(s[end - 1] as string)) end--;
  return s.slice(0, end);
};

/** parser.go escapeSeqRegex and expandEscapes: Go's escapes for a double-quoted value, `\$` as `$$`. */
const ESCAPE_SEQ = /\\(?:[abcfnrtv$"\\]|0\d{0,3})/g;
const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '"': '"',
  '\\': '\\',
};
function expandEscapes(s: string): string {
  return s.replace(ESCAPE_SEQ, (m) => {
    if (m === '\\$') return '$$';
    if (m.startsWith('\\0')) {
      // `\0123` is Go's octal `\123`; strconv.UnquoteChar wants exactly three digits, else the match stays.
      const digits = m.slice(2);
      return digits.length === 3 && /^[0-7]{3}$/.test(digits) && Number.parseInt(digits, 8) <= 255
        ? String.fromCharCode(Number.parseInt(digits, 8))
        : m;
    }
    if (m === '\\c') return m; // not a Go escape: UnquoteChar fails and the match stays
    return SIMPLE_ESCAPES[m[1] as string] ?? m;
  });
}

/**
 * template.go DefaultPattern and DefaultReplacementFunc for what an env file can hold: `$$` is a `$`,
 * `$NAME` and `${NAME}` (with `:-`, `-`, `:+`, `+`, `:?`, `?`) are looked up, an unset name reads empty (v2
 * warns), a `$` starting nothing valid is an "Invalid template" error.
 */
const TEMPLATE = /\$(?:(\$)|([_a-z][_a-z0-9]*)|\{(?:([_a-z][_a-z0-9]*(?::?[-+?](.*))?)\}|()))/giu; // u: Go folds U+017F and U+212A onto s and k too
function substitute(value: string, lookup: (k: string) => string | undefined): string {
  return value.replace(TEMPLATE, (_m, escaped, named, braced) => {
    if (escaped) return '$';
    if (named) return lookup(named) ?? '';
    if (!braced) throw new Error(`Invalid template: ${JSON.stringify(value)}`);
    const op = /^([_a-z][_a-z0-9]*)(?:(:?[-+?])(.*))?$/i.exec(braced as string);
    if (!op) throw new Error(`Invalid template: ${JSON.stringify(value)}`);
    const [, name, sep, arg = ''] = op as unknown as [string, string, string | undefined, string | undefined];
    const v = lookup(name);
    const empty = v === undefined || (sep?.startsWith(':') && v === '');
    if (sep?.endsWith('-')) return empty ? substitute(arg, lookup) : (v as string);
    if (sep?.endsWith('+')) return empty ? (v ?? '') : substitute(arg, lookup);
    if (sep?.endsWith('?') && empty) throw new Error(`required variable ${name} is missing a value: ${arg}`);
    return v ?? '';
  });
}

/** dotenv's Parse: the variables a file sets, in order; later ones win. Throws where compose v2 fails. */
export function parseComposeV2Dotenv(
  src: string,
  lookup: (k: string) => string | undefined = () => undefined,
): Map<string, string> {
  const out = new Map<string, string>();
  const inFile = (k: string) => lookup(k) ?? out.get(k);
  let cut = src;
  for (;;) {
    cut = statementStart(cut);
    if (cut === '') break;
    const { key, left, inherited } = locateKeyName(cut);
    if (key.includes(' ')) throw new Error('key cannot contain a space');
    if (inherited) {
      const v = lookup(key);
      if (v !== undefined) out.set(key, v);
      cut = left;
      continue;
    }
    const { value, rest } = extractVarValue(left, inFile);
    out.set(key, value);
    cut = rest;
  }
  return out;
}

function statementStart(src: string): string {
  const pos = [...src].findIndex((c) => !GO_UNICODE_SPACE.test(c));
  if (pos === -1) return '';
  const s = [...src].slice(pos).join('');
  if (s[0] !== '#') return s;
  const nl = s.indexOf('\n');
  return nl === -1 ? '' : statementStart(s.slice(nl));
}

function locateKeyName(src: string): { key: string; left: string; inherited: boolean } {
  let s = src;
  if (/^export\s+/.test(s)) s = s.slice('export'.length).replace(/^[\t\v\f\r \x85\xa0]+/, '');
  let key = '';
  let offset = 0;
  let inherited = false;
  let found = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (isSpace(c)) continue;
    if (c === '=' || c === ':' || c === '\n') {
      key = s.slice(0, i);
      offset = i + 1;
      inherited = c === '\n';
      found = true;
      break;
    }
    if ('_.-[]'.includes(c) || /[\p{L}\p{N}]/u.test(c)) continue;
    throw new Error(`unexpected character ${JSON.stringify(c)} in variable name`);
  }
  if (!found) offset = 0; // Go leaves key "" and the whole rest as the value
  key = trimRightUnicodeSpace(key);
  let left = s.slice(offset);
  while (left !== '' && isSpace(left[0] as string)) left = left.slice(1);
  return { key, left, inherited };
}

function extractVarValue(
  src: string,
  lookup: (k: string) => string | undefined,
): { value: string; rest: string } {
  const quote = src[0];
  if (quote !== "'" && quote !== '"') {
    const nl = src.indexOf('\n');
    let value = nl === -1 ? src : src.slice(0, nl);
    const rest = nl === -1 ? '' : src.slice(nl + 1);
    const hash = value.indexOf(' #');
    if (hash !== -1) value = value.slice(0, hash);
    return { value: substitute(trimRightUnicodeSpace(value), lookup), rest };
  }
  let previousCharIsEscape = false;
  let chars = '';
  for (let i = 1; i < src.length; i++) {
    const c = src[i] as string;
    if (c !== quote) {
      if (!previousCharIsEscape && c === '\\') {
        previousCharIsEscape = true;
        continue;
      }
      if (previousCharIsEscape) {
        previousCharIsEscape = false;
        chars += '\\';
      }
      chars += c;
      continue;
    }
    if (previousCharIsEscape) {
      previousCharIsEscape = false;
      chars += c;
      continue;
    }
    const value = quote === '"' ? substitute(expandEscapes(chars), lookup) : chars;
    return { value, rest: src.slice(i + 1) };
  }
  throw new Error(`unterminated quoted value ${src.split('\n')[0]}`);
}
