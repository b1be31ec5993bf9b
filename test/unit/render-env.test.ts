import { describe, expect, it } from 'vitest';
import { formatEnvFile, parseEnvFile } from '../../scripts/lib/bifrost/env-file.ts';
import { renderBifrostEnvFiles } from '../../scripts/lib/bifrost/render-env.ts';
import { InputError } from '../../scripts/lib/core/errors.ts';
import { readWithComposeV1 } from '../helpers/compose-v1-read.ts';
import { parseComposeV2Dotenv } from '../helpers/compose-v2-dotenv.ts';
import { requireTool } from '../helpers/tiers.ts';

// Characters compose would otherwise interpret: `$` interpolation, ` #` comments, quotes, spaces, `\`.
const AWKWARD = [
  'pa$$word $HOME $X',
  'a #not-a-comment',
  'dq "x" and `b`',
  'back\\slash\\n',
  "mid'quote",
  '  ',
];

const values = {
  CLOUDFLARE_API_TOKEN: 'cf-token',
  AUTHENTIK_TOKEN: `ak ${AWKWARD[0]}`,
  NB_DATA_STORE_KEY: Buffer.alloc(32, 251).toString('base64'),
  NB_RELAY_SECRET: AWKWARD[1],
  NB_PROXY_TOKEN: AWKWARD[2],
  NB_BIFROST_SETUP_KEY: AWKWARD[3],
  AUTHENTIK_SECRET_KEY: AWKWARD[4],
  AUTHENTIK_POSTGRESQL_PASSWORD: `x${AWKWARD[5]}y`,
};

const expectedSecretsEnv = {
  CF_DNS_API_TOKEN: 'cf-token',
  AUTHENTIK_BOOTSTRAP_TOKEN: values.AUTHENTIK_TOKEN,
  NB_DATA_STORE_KEY: values.NB_DATA_STORE_KEY,
  NB_RELAY_SECRET: values.NB_RELAY_SECRET,
  NB_PROXY_TOKEN: values.NB_PROXY_TOKEN,
  NB_BIFROST_SETUP_KEY: values.NB_BIFROST_SETUP_KEY,
};
const expectedDotEnv = {
  AUTHENTIK_SECRET_KEY: values.AUTHENTIK_SECRET_KEY,
  AUTHENTIK_POSTGRESQL_PASSWORD: values.AUTHENTIK_POSTGRESQL_PASSWORD,
  NB_BIFROST_SETUP_KEY: values.NB_BIFROST_SETUP_KEY,
};

describe('renderBifrostEnvFiles', () => {
  const { secretsEnv, dotEnv } = renderBifrostEnvFiles(values);

  it('uses the schema names and renames, required and optional', () => {
    expect([...parseEnvFile(secretsEnv).keys()].sort()).toEqual(Object.keys(expectedSecretsEnv).sort());
    expect([...parseEnvFile(dotEnv).keys()].sort()).toEqual(Object.keys(expectedDotEnv).sort());
    const without = renderBifrostEnvFiles({
      ...values,
      NB_PROXY_TOKEN: undefined,
      NB_BIFROST_SETUP_KEY: undefined,
    });
    expect(without.secretsEnv).not.toContain('NB_PROXY_TOKEN');
    expect(without.dotEnv).not.toContain('NB_BIFROST_SETUP_KEY');
  });

  it('reads back exactly with the engine parser and with compose v2 (a port of its parser)', () => {
    expect(Object.fromEntries(parseEnvFile(secretsEnv))).toEqual(expectedSecretsEnv);
    expect(Object.fromEntries(parseEnvFile(dotEnv))).toEqual(expectedDotEnv);
    expect(Object.fromEntries(parseComposeV2Dotenv(secretsEnv))).toEqual(expectedSecretsEnv);
    expect(Object.fromEntries(parseComposeV2Dotenv(dotEnv))).toEqual(expectedDotEnv);
  });

  it('single-quotes a `$` compose v2 would interpolate, even without a space; leaves any other `$` bare', () => {
    const line = (v: string) => {
      const { secretsEnv: text } = renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: v });
      expect(parseComposeV2Dotenv(text).get('NB_RELAY_SECRET'), v).toBe(v);
      return text.split('\n').find((l) => l.startsWith('NB_RELAY_SECRET='));
    };
    for (const v of ['pa$$word', '$HOME', 'a$b', '${x', '$_', 'x$\u212a'])
      expect(line(v), v).toBe(`NB_RELAY_SECRET='${v}'`);
    for (const v of ['x$', '$', '$5', 'a$-b', '1$\\']) expect(line(v), v).toBe(`NB_RELAY_SECRET=${v}`);
  });

  it('refuses a value no env file can carry, naming the key and never the value', () => {
    expect(() => renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: 'a\0b' })).toThrow(
      /^NB_RELAY_SECRET contains a NUL/,
    );
    expect(() => renderBifrostEnvFiles({ ...values, CLOUDFLARE_API_TOKEN: '$x\\' })).toThrow(
      /^CF_DNS_API_TOKEN \(the SOPS file's CLOUDFLARE_API_TOKEN\) holds "\$"/,
    );
    expect(() => renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: 'a ${B}' })).toThrow(
      /^NB_RELAY_SECRET contains "\$\{…\}"/,
    );
    const clashes: [string, RegExp][] = [
      ['$x\\\\y', /"\$" .* together with a doubled backslash/],
      ["$x\\'y", /"\$" .* together with a backslash before a single quote/],
      ['$x\ny', /"\$" .* together with a line break/],
      [' lead\\', /a trailing backslash .* together with leading white space/],
      ["'q\\", /a trailing backslash .* together with a leading quote/],
      ['a #b\\', /a trailing backslash .* together with white space before "#"/],
      ['a\nb\\', /a trailing backslash .* together with a line break/],
    ];
    for (const [value, why] of clashes) {
      expect(() => renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: value }), value).toThrow(why);
    }
    try {
      renderBifrostEnvFiles({ ...values, NB_PROXY_TOKEN: "it's $x\\" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).exitCode).toBe(2);
      expect((err as Error).message).toMatch(
        /^NB_PROXY_TOKEN holds "\$" .* together with a trailing backslash/,
      );
      expect((err as Error).message).not.toContain("it's $x");
    }
  });

  const compose = requireTool('docker-compose', "the env files read back through Debian's docker-compose");
  it.skipIf(!compose)("reads back exactly through Debian's docker-compose config (env_file and .env)", () => {
    const read = readWithComposeV1(compose as string, {
      envFiles: { s: secretsEnv },
      dotEnv: { text: dotEnv, names: Object.keys(expectedDotEnv) },
    });
    expect(read.env.s).toEqual(expectedSecretsEnv);
    for (const [k, v] of Object.entries(expectedDotEnv)) expect(read.env.dotenv?.[`I_${k}`], k).toBe(v);
  });
});

/**
 * Values compose reads in its own ways: a backslash at the end, doubled or before a quote (v1 decodes `\\` and
 * `\'` inside quotes, v2 only `\'` in single quotes; a quoted value ending in `\` runs on in v1), `$` (v2
 * interpolates bare and double-quoted values, v1 has no escape for it), ` #` comments, quotes, spaces.
 */
const TRICKY: readonly string[] = [
  'ends\\',
  'C:\\dir\\',
  'a\\\\b',
  'a\\\\',
  '\\\\\\',
  "x\\'y",
  "\\'",
  "'",
  "it's",
  "'lead",
  "trail'",
  '"',
  'a"b',
  '"dq"',
  '$',
  '$$',
  'pa$$word',
  '$HOME $X',
  'a$b\\c',
  "it's $5",
  "it's $x",
  '1$\\',
  'a${b',
  'a}${',
  '#x',
  'a #x',
  ' #x',
  'a\t#x',
  'a\u00a0#x',
  'sp ace',
  '  lead',
  'trail  ',
  '  both  ',
  'a=b==',
  '=',
  'back`tick`',
  'literal\\n and \\t',
  'two\nlines',
  'cr\rhere',
  'two\nlines\\ and "q"',
  " lead\\ and \\\\ and 'q' #c",
  'ünïcødé ✓ 😀',
  '\u2028sep',
  '0o17',
  '',
  Buffer.alloc(33, 0xfb).toString('base64'),
];

describe('env files compose v1 and v2 read back', () => {
  // Each value between two other keys: a value misread into the next line takes that key with it.
  const entries = TRICKY.flatMap((value, i) => [
    { name: `V${i}`, value },
    { name: `N${i}`, value: `next-${i}` },
  ]);
  const expected = Object.fromEntries(entries.map((e) => [e.name, e.value]));
  const rendered = () => formatEnvFile(entries, 'header');

  it('writes each value bare when it can, quoted only for what compose would interpret', () => {
    const line = (v: string) => formatEnvFile([{ name: 'K', value: v }]).slice(2, -1);
    expect(line('ends\\')).toBe('ends\\');
    expect(line('a\\\\b')).toBe('a\\\\b');
    expect(line(Buffer.alloc(33, 0xfb).toString('base64'))).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(line('pa$$word')).toBe("'pa$$word'");
    expect(line("it's $x")).toBe("'it\\'s $x'");
    expect(line("it's $5")).toBe("it's $5");
    expect(line('two\nlines\\ "q"')).toBe('"two\\nlines\\\\ \\"q\\""');
  });

  it('reads back exactly with the port of compose-go (v2) and with parseEnvFile', () => {
    const text = rendered();
    expect(Object.fromEntries(parseComposeV2Dotenv(text))).toEqual(expected);
    expect(Object.fromEntries(parseEnvFile(text))).toEqual(expected);
  });

  const compose = requireTool('docker-compose', "the env files read back through Debian's docker-compose");
  it.skipIf(!compose)("reads back exactly with Debian's docker-compose 1.29, as env_file and as .env", () => {
    const text = rendered();
    const read = readWithComposeV1(compose as string, {
      envFiles: { svc: text },
      dotEnv: { text, names: Object.keys(expected) },
    });
    expect(read.stderr).not.toMatch(/could not parse/i);
    expect(read.env.svc).toEqual(expected);
    expect(read.env.dotenv).toEqual(Object.fromEntries(entries.map((e) => [`I_${e.name}`, e.value])));
  });
});
