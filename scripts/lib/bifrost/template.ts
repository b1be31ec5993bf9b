import { parse } from 'yaml';
import { InputError } from '../core/errors.ts';

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Renders a YAML template's `${NAME}` placeholders. Each value is written as a JSON string literal,
 * which YAML reads back exactly whatever it holds (`&`, `|`, `\`, `/`, quotes, `$`, newlines): the
 * original's sed corrupted or aborted on several. A placeholder that is a whole scalar (quoted or not)
 * is replaced by the literal; one inside a double-quoted string gets the literal's escaped body.
 * Unknown and unresolved placeholders are errors that name them; the result is parsed back and
 * compared, so a template the rules cannot render safely is refused instead of written.
 */
export function renderYamlTemplate(
  template: string,
  values: Readonly<Record<string, string | undefined>>,
  opts: { allowed: readonly string[]; file: string },
): string {
  const used = new Set(placeholdersOf(template));
  const unknown = [...used].filter((n) => !opts.allowed.includes(n));
  if (unknown.length > 0) {
    throw new InputError(
      `${opts.file} uses unknown placeholder(s) ${unknown.map((n) => `\${${n}}`).join(', ')}`,
      `the template may use only ${opts.allowed.map((n) => `\${${n}}`).join(', ')}`,
    );
  }
  const unresolved = [...used].filter((n) => !values[n]);
  if (unresolved.length > 0) {
    throw new InputError(
      `${opts.file}: no value for ${unresolved.map((n) => `\${${n}}`).join(', ')}`,
      'these come from .secrets.env on the host: run provision-bifrost (or the token step) first',
    );
  }
  const renderAll = (literal: (name: string) => string) =>
    template
      .split('\n')
      .map((line) => (isComment(line) ? line : renderLine(line, literal)))
      .join('\n');
  // Where a placeholder sits is a property of the template: probe with a value holding no placeholder.
  const left = [...withoutComments(renderAll(() => '"x"')).matchAll(PLACEHOLDER)].map((m) => m[0]);
  if (left.length > 0) {
    throw new InputError(
      `${opts.file}: ${left.join(', ')} sits where a value cannot be inserted safely (inside a single-quoted or plain string)`,
      'make the placeholder a whole value, or put it inside a double-quoted string',
    );
  }
  const rendered = renderAll((name) => JSON.stringify(values[name] as string));
  assertRoundTrip(template, rendered, values, opts.file);
  return rendered;
}

/** The `${NAME}` placeholders a template uses outside comment lines, in order, with repeats. */
export function placeholdersOf(template: string): string[] {
  return [...withoutComments(template).matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

// Comment lines are documentation: a placeholder named there is neither required nor replaced.
const isComment = (line: string) => /^\s*#/.test(line);
const withoutComments = (text: string) =>
  text
    .split('\n')
    .filter((l) => !isComment(l))
    .join('\n');

const TOKEN = /"(?:[^"\\]|\\.)*"|'[^']*'|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** One pass over a line, so that a value containing `${…}` is never substituted again. */
function renderLine(line: string, literal: (name: string) => string): string {
  return line.replace(TOKEN, (token: string, bare: string | undefined, offset: number) => {
    if (bare) {
      // Only a whole plain scalar: after "key: ", "- " or nothing, and nothing after it.
      const before = line.slice(0, offset);
      const after = line.slice(offset + token.length);
      return /(^|:\s+|-\s+)$/.test(before) && /^\s*$/.test(after) ? literal(bare) : token;
    }
    const whole = /^(["'])\$\{([A-Za-z_][A-Za-z0-9_]*)\}\1$/.exec(token);
    if (whole) return literal(whole[2] as string);
    if (token.startsWith('"'))
      return token.replace(PLACEHOLDER, (_m, name: string) => literal(name).slice(1, -1));
    return token;
  });
}

/** Every string that held placeholders must parse back to exactly the substituted text. */
function assertRoundTrip(
  template: string,
  rendered: string,
  values: Readonly<Record<string, string | undefined>>,
  file: string,
): void {
  const expected = substitute(parse(template), values);
  const actual = parse(rendered);
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new InputError(
      `${file}: rendering changed the YAML structure`,
      'check the template around its placeholders',
    );
  }
}

function substitute(node: unknown, values: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof node === 'string') return node.replace(PLACEHOLDER, (_m, name: string) => values[name] ?? '');
  if (Array.isArray(node)) return node.map((n) => substitute(n, values));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substitute(v, values)]));
  }
  return node;
}
