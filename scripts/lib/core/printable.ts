import { randomBytes } from 'node:crypto';

/**
 * Text that came from a file or a host (a key name, a container's log line, a host's answer) could carry
 * terminal escapes: a title change, a cleared screen, a clipboard write (OSC 52). Everything printed
 * passes `escapeControls`, so such characters are shown, never obeyed: C0 controls other than newline
 * and tab (CR included: it would overwrite a line) as `\x1b`, DEL and the C1 range (U+009B is a CSI on
 * its own) as `\u009b`, and the bidirectional overrides that reorder what is shown as `\u202e`. The
 * `\uXXXX` form is JSON's own escape, so a `--json` result stays valid JSON after the pass.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is escaped
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x20
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * Our own colour codes must survive the pass while a file's cannot: the colouring functions write a
 * stand-in for ESC that no file or host can know (random per process, never printed), and `printable`
 * turns only that stand-in back into ESC once everything else is escaped.
 */
const OWN_ESC = `\ue000${randomBytes(12).toString('hex')}\ue000`;

/** `text` escaped (escapeControls), our own colour codes kept. */
export function printable(text: string): string {
  return text.split(OWN_ESC).map(escapeControls).join('\x1b');
}

/**
 * `styler` (a chalk instance, or any chain of functions returning styled strings) whose output marks its
 * own escapes with the stand-in, its arguments escaped first: `printable` keeps exactly these.
 */
export function markOwnEscapes<T extends object>(styler: T): T {
  // The target is a stand-in: chalk defines its styles as non-configurable properties, which a proxy of
  // chalk itself could not return wrapped.
  const standIn = () => undefined;
  return new Proxy(standIn, {
    apply: (_target, thisArg, args: unknown[]) => {
      const result = Reflect.apply(styler as (...a: unknown[]) => unknown, thisArg, args.map(keepMarked));
      return typeof result === 'string' ? result.split('\x1b').join(OWN_ESC) : mark(result);
    },
    get: (_target, prop) => mark(Reflect.get(styler, prop)),
    set: (_target, prop, value) => Reflect.set(styler, prop, value),
  }) as unknown as T;
}

function mark(value: unknown): unknown {
  return typeof value === 'function' ? markOwnEscapes(value) : value;
}

/** An argument to a colouring function: already-marked styling kept, anything else escaped. */
function keepMarked(arg: unknown): string {
  return String(arg).split(OWN_ESC).map(escapeControls).join(OWN_ESC);
}
