import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as dotenvParse } from 'dotenv';
import { describe, expect, it } from 'vitest';
import { parse as yamlParse } from 'yaml';
import { parseEnvFile } from '../../scripts/lib/bifrost/env-file.ts';
import { renderBifrostEnvFiles } from '../../scripts/lib/bifrost/render-env.ts';
import { tempDir } from '../helpers/temp.ts';
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

  it('reads back exactly with the engine parser and with dotenv (the grammar compose v2 follows)', () => {
    expect(Object.fromEntries(parseEnvFile(secretsEnv))).toEqual(expectedSecretsEnv);
    expect(Object.fromEntries(parseEnvFile(dotEnv))).toEqual(expectedDotEnv);
    expect(dotenvParse(secretsEnv)).toEqual(expectedSecretsEnv);
    expect(dotenvParse(dotEnv)).toEqual(expectedDotEnv);
  });

  it('single-quotes a value with `$` even without a space: bare or double-quoted, compose v2 interpolates it', () => {
    for (const v of ['pa$$word', '$HOME', 'a$b', 'x$', '$']) {
      const { secretsEnv: text } = renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: v });
      const line = text.split('\n').find((l) => l.startsWith('NB_RELAY_SECRET='));
      expect(line, v).toBe(`NB_RELAY_SECRET='${v}'`);
      expect(dotenvParse(text).NB_RELAY_SECRET, v).toBe(v);
    }
  });

  it('refuses a value no env file can carry, naming the key and never the value', () => {
    expect(() => renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: 'two\nlines' })).toThrow(
      /^NB_RELAY_SECRET contains a line break/,
    );
    expect(() => renderBifrostEnvFiles({ ...values, NB_RELAY_SECRET: 'a ${B}' })).toThrow(
      /^NB_RELAY_SECRET contains "\$\{"/,
    );
    try {
      renderBifrostEnvFiles({ ...values, NB_PROXY_TOKEN: "it's $x" });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^NB_PROXY_TOKEN mixes a single quote/);
      expect((err as Error).message).not.toContain("it's $x");
    }
  });

  const compose = requireTool('docker-compose', "the env files read back through Debian's docker-compose");
  it.skipIf(!compose)("reads back exactly through Debian's docker-compose config (env_file and .env)", () => {
    const dir = tempDir('sf-dc-');
    writeFileSync(join(dir, '.secrets.env'), secretsEnv);
    writeFileSync(join(dir, '.env'), dotEnv);
    const interpolated = Object.keys(expectedDotEnv).map((k) => `      I_${k}: \${${k}}`);
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      `services:\n  s:\n    image: busybox\n    env_file: [.secrets.env]\n    environment:\n${interpolated.join('\n')}\n`,
    );
    const out = execFileSync(compose as string, ['config'], { cwd: dir, encoding: 'utf8' });
    // compose escapes a literal $ as $$ in the config it prints.
    const env = Object.fromEntries(
      Object.entries(yamlParse(out).services.s.environment as Record<string, string>).map(([k, v]) => [
        k,
        String(v).replaceAll('$$', '$'),
      ]),
    );
    for (const [k, v] of Object.entries(expectedSecretsEnv)) expect(env[k], k).toBe(v);
    for (const [k, v] of Object.entries(expectedDotEnv)) expect(env[`I_${k}`], k).toBe(v);
  });
});
