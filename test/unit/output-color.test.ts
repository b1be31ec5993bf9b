import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { colorLevel, createOutput } from '../../scripts/lib/core/output.ts';

/** A stream that says it is a terminal, and what was written to it. */
function tty(isTTY: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY });
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { stream, text: () => chunks.join('') };
}

const ESC = '\u001b[';

describe('colour', () => {
  it('follows no-color.org: NO_COLOR set and not empty turns it off; an empty NO_COLOR does not', () => {
    expect(colorLevel({ NO_COLOR: '1' }, true)).toBe(0);
    expect(colorLevel({ NO_COLOR: 'anything' }, true)).toBe(0);
    expect(colorLevel({ NO_COLOR: '' }, true)).toBe(1);
    expect(colorLevel({}, true)).toBe(1);
    expect(colorLevel({}, false)).toBe(0);
    expect(colorLevel({ TERM: 'dumb' }, true)).toBe(0);
  });

  it("follows chalk's FORCE_COLOR rules, which win over NO_COLOR and a missing TTY", () => {
    expect(colorLevel({ FORCE_COLOR: '' }, false)).toBe(1);
    expect(colorLevel({ FORCE_COLOR: 'true' }, false)).toBe(1);
    expect(colorLevel({ FORCE_COLOR: '1', NO_COLOR: '1' }, false)).toBe(1);
    expect(colorLevel({ FORCE_COLOR: '3' }, false)).toBe(3);
    expect(colorLevel({ FORCE_COLOR: '9' }, false)).toBe(3);
    expect(colorLevel({ FORCE_COLOR: '0' }, true)).toBe(0);
    expect(colorLevel({ FORCE_COLOR: 'false' }, true)).toBe(0);
  });

  it('reaches what a command prints', () => {
    for (const [env, isTTY, coloured] of [
      [{ NO_COLOR: '' }, true, true],
      [{ NO_COLOR: '1' }, true, false],
      [{ FORCE_COLOR: '1' }, false, true],
      [{}, false, false],
    ] as const) {
      const out = tty(isTTY);
      const err = tty(isTTY);
      const o = createOutput({ env, stdout: out.stream, stderr: err.stream });
      o.warn('careful');
      expect(err.text().includes(ESC), JSON.stringify({ env, isTTY })).toBe(coloured);
      expect(err.text()).toContain('warning: careful');
    }
  });
});

describe('control characters from files and hosts', () => {
  const foreign = 'title \u001b]0;pwned\u0007 clear \u001b[2J csi \u009b31m cr\r bidi \u202e end';
  const shown = 'title \\x1b]0;pwned\\x07 clear \\x1b[2J csi \\u009b31m cr\\x0d bidi \\u202e end';

  it('are shown escaped in every line, inside our own colours, which stay escapes', () => {
    const out = tty(true);
    const err = tty(true);
    const o = createOutput({ stdout: out.stream, stderr: err.stream, env: { FORCE_COLOR: '1' } });
    o.info(o.color.green(`host said ${foreign} and ${o.color.bold('bold')}`));
    o.data(`line one\n${foreign}\tkept tab`);
    o.error(`key ${foreign}`, `hint ${foreign}`);
    o.warn(foreign);
    expect(out.text()).toBe(
      `${ESC}32mhost said ${shown} and ${ESC}1mbold${ESC}22m${ESC}39m\nline one\n${shown}\tkept tab\n`,
    );
    expect(err.text()).toBe(
      `${ESC}31merror: key ${shown}${ESC}39m\nhint: hint ${shown}\n${ESC}33mwarning: ${shown}${ESC}39m\n`,
    );
  });

  it('leave a --json result valid JSON that reads back as it was', () => {
    const out = tty(false);
    const o = createOutput({ stdout: out.stream, stderr: tty(false).stream, json: true, env: {} });
    o.result({ error: foreign });
    for (const c of ['\u001b', '\u0007', '\r', '\u009b', '\u202e']) expect(out.text()).not.toContain(c);
    expect(JSON.parse(out.text()).error).toBe(foreign);
  });
});
