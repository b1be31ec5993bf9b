/**
 * Every byte a command prints passes through one Redactor. Secret values are registered before any
 * external command runs, together with the encodings they travel in (base64 in Secret manifests,
 * URL-encoding in connection strings, JSON escaping in --json output, a repr in a Python traceback:
 * `encodedForms`), so that none of those forms
 * can leak through stdout, stderr, an error message or a log line. Values derived from a secret (a
 * connection string) are secrets of their own: `registerSecrets` in secrets/registry.ts registers them.
 */
export class Redactor {
  /** Each form registered, with the label that replaces it (that of the first name it came under). */
  private readonly labels = new Map<string, string>();
  /**
   * The forms longest first, so that a secret containing another secret is replaced whole. Sorted once,
   * before the first redaction that follows a registration, not at each registration: a command
   * registers dozens of forms per value, thousands in all, before it prints.
   */
  private sorted: { text: string; label: string }[] | undefined;

  /** Values shorter than this are not secrets worth hiding and would shred ordinary text. */
  static readonly minLength = 4;

  register(value: string, name = 'secret'): void {
    for (const form of encodedForms(value)) {
      if (form.length < Redactor.minLength || this.labels.has(form)) continue;
      this.labels.set(form, `[REDACTED:${name}]`);
      this.sorted = undefined;
    }
  }

  redact(text: string): string {
    let out = text;
    for (const { text: secret, label } of this.longestFirst()) {
      if (out.includes(secret)) out = out.split(secret).join(label);
    }
    return out;
  }

  /** Whether `text` holds a registered value in any of its forms (so it must not be handed on). */
  holds(text: string): boolean {
    for (const form of this.labels.keys()) if (text.includes(form)) return true;
    return false;
  }

  private longestFirst(): readonly { text: string; label: string }[] {
    this.sorted ??= [...this.labels]
      .map(([text, label]) => ({ text, label }))
      .sort((a, b) => b.text.length - a.text.length);
    return this.sorted;
  }
}

/**
 * Every form a value travels in: raw, each of its lines, base64 (standard and URL-safe, at every
 * alignment), hex, every percent-encoding below, and its backslash-escaped forms. The leak tests search
 * for exactly these forms, so what is hidden and what is checked cannot drift apart.
 */
export function encodedForms(value: string): string[] {
  const forms = new Set<string>([value]);
  const bytes = Buffer.from(value, 'utf8');
  for (const core of base64Cores(bytes)) {
    forms.add(core);
    forms.add(core.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
  }
  forms.add(bytes.toString('hex'));
  forms.add(bytes.toString('hex').toUpperCase());
  for (const encoding of PERCENT_ENCODINGS) {
    const encoded = percentEncode(bytes, encoding);
    forms.add(encoded);
    // Upper-case hex is what these encoders write; a decoder accepts (and some writers use) lower case.
    forms.add(encoded.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
  }
  for (const escaped of backslashEscapes(value)) forms.add(escaped);
  // A value that spans lines can leak one line at a time.
  for (const line of value.split('\n')) forms.add(line);
  return [...forms];
}

/**
 * The percent-encoders a value may pass through on its way into a URL, a form body or a connection
 * string, each by what it leaves as it is besides ASCII letters and digits (every other byte of the
 * UTF-8 becomes %XX), and whether a space becomes `+`.
 */
const PERCENT_ENCODINGS: readonly { safe: string; plus?: boolean }[] = [
  // JavaScript's encodeURIComponent and encodeURI (ECMA-262, uriUnreserved; uriReserved and # kept by encodeURI).
  { safe: "-_.!~*'()" },
  { safe: "-_.!~*'();/?:@&=+$,#" },
  // Python's urllib.parse.quote (always safe: _.-~) with its default safe='/', and with safe='' (/ encoded).
  { safe: '-_.~/' },
  { safe: '-_.~' },
  // Python's quote_plus and Go's url.QueryEscape: nothing kept but the unreserved, a space as +.
  { safe: '-_.~', plus: true },
  // WHATWG application/x-www-form-urlencoded (URLSearchParams): * kept, ~ encoded, a space as +.
  { safe: '-_.*', plus: true },
  // Go's url.UserPassword, as userinfo is written (golang/go@0118299:src/net/url/url.go, shouldEscape with
  // encodeUserPassword): the reserved $ & + , ; = stay, @ / ? : are escaped, and so is everything else.
  { safe: '-_.~$&+,;=' },
  // Go's url.PathEscape (encodePathSegment): : @ & = + $ stay, / ; , ? are escaped.
  { safe: '-_.~:@&=+$' },
];

function percentEncode(bytes: Buffer, { safe, plus }: { safe: string; plus?: boolean }): string {
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    if (/[A-Za-z0-9]/.test(char) || (byte < 0x80 && safe.includes(char))) out += char;
    else if (plus && byte === 0x20) out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The value inside a quoted string of a language that escapes with backslashes: JSON (as JSON.stringify
 * writes it, and ASCII-only), JSON inside JSON (a JSON log line carrying a JSON document: every backslash doubled again),
 * and Python's repr (CPython's unicode_repr: backslash, the quote it chose, \t \n \r and other
 * characters it does not print as \xNN; it quotes with ' unless the value holds ' and no ").
 */
function backslashEscapes(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  let repr = '';
  for (const c of value) {
    const code = c.charCodeAt(0);
    if (c === '\\' || c === quote) repr += `\\${c}`;
    else if (c === '\t') repr += '\\t';
    else if (c === '\n') repr += '\\n';
    else if (c === '\r') repr += '\\r';
    // What Python does not count as printable below U+0100: C0, DEL, C1, no-break space, soft hyphen.
    else if (code < 0x20 || (code >= 0x7f && code <= 0xa0) || code === 0xad)
      repr += `\\x${code.toString(16).padStart(2, '0')}`;
    else repr += c;
  }
  // Python's json.dumps (ensure_ascii: its ESCAPE_ASCII) and other ASCII-only writers: all but printable ASCII as \uXXXX.
  const asciiJson = json.replace(/[^ -~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return [json, asciiJson, JSON.stringify(json).slice(1, -1), repr];
}

/**
 * The base64 of a value embedded in a longer text (a whole env file or manifest base64-encoded) depends
 * on where the value starts modulo 3. For each of the three alignments, the characters that encode only
 * the value's own bytes appear verbatim in the larger encoding; those are the forms to hide. The first
 * whole base64 of the value, with its padding, is one more.
 */
function base64Cores(bytes: Buffer): string[] {
  const cores = [bytes.toString('base64')];
  for (const shift of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    // Skip the group that mixes the filler bytes in, and the last one, which mixes in what follows.
    const end = Math.floor((shift + bytes.length) / 3) * 4;
    const core = encoded.slice(shift === 0 ? 0 : 4, end);
    if (core.length > 0) cores.push(core);
  }
  return cores;
}
