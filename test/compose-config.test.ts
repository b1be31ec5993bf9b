/**
 * Compose's own parser agrees with the Bifrost bundle: sample secrets are rendered into a copy of
 * cloud/bifrost/ the way provisioning and the bootstrap engine render them (.secrets.env and .env, each
 * service's env/<file>.env, netbird/config.yaml from its template), then Debian's docker-compose 1.29 (the
 * compose v1 of the real-engine tier) reads the copy with `config`. No daemon is needed.
 *
 * Skips with a reason without docker-compose; fails instead where SECRETS_FLOW_REQUIRE_TIERS is set.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDocument, parse as parseYaml } from 'yaml';
import { formatEnvFile, parseEnvFile, upsertEnvLine } from '../scripts/lib/bifrost/env-file.ts';
import { NETBIRD_CLIENT_STATUS } from '../scripts/lib/bifrost/pinned-images.ts';
import { BIFROST_PLAN, CONFIG_PLACEHOLDERS, SERVICE_SECRET_FILES } from '../scripts/lib/bifrost/plan.ts';
import { renderBifrostEnvFiles } from '../scripts/lib/bifrost/render-env.ts';
import { renderYamlTemplate } from '../scripts/lib/bifrost/template.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { prepareBundleCopy } from './harness/bifrost-bundle.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTool } from './helpers/tiers.ts';

const compose = requireTool('docker-compose', "the bundle's docker-compose config check");

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/**
 * A copy of the bundle with every generated file in place, as on the host after a bootstrap run. The two
 * secret files are the product's own rendering (renderBifrostEnvFiles); the env/ files and the NetBird
 * config follow the engine (engine.ts renderServiceEnvFiles and renderConfig), including the management
 * token it appends to .secrets.env.
 */
async function renderedCopy(): Promise<string> {
  const parent = tempDir('sf-compose-config-');
  dirs.push(parent);
  const dir = join(parent, 'bifrost');
  const rendered = renderBifrostEnvFiles(sampleSecrets());
  const secretsText = upsertEnvLine(rendered.secretsEnv, 'NB_IDP_MGMT_TOKEN', 'sample-idp-mgmt-token');
  await prepareBundleCopy(dir, {
    secretsEnv: Object.fromEntries(parseEnvFile(secretsText)),
    dotEnv: Object.fromEntries(parseEnvFile(rendered.dotEnv)),
  });
  // The product's text verbatim (its quoting), over the harness's plain rendering of the same values.
  await writeFile(join(dir, '.secrets.env'), secretsText, { mode: 0o600 });
  await writeFile(join(dir, '.env'), rendered.dotEnv, { mode: 0o600 });

  const secrets = parseEnvFile(secretsText);
  for (const f of SERVICE_SECRET_FILES) {
    const entries = f.entries.flatMap((e) => {
      const value = secrets.get(e.from);
      return value ? [{ name: e.name, value }] : [];
    });
    expect(entries, `${f.file}: every entry has a sample value`).toHaveLength(f.entries.length);
    const header = `Rendered by bifrost-bootstrap from .secrets.env for ${f.services.join(', ')}; do not edit.`;
    await writeFile(join(dir, f.file), formatEnvFile(entries, header), { mode: 0o600 });
  }
  const values = Object.fromEntries(CONFIG_PLACEHOLDERS.map((k) => [k, secrets.get(k)]));
  const renders = BIFROST_PLAN.flatMap((s) => (s.kind === 'render' ? [s] : []));
  expect(renders.map((s) => s.output)).toContain('netbird/config.yaml');
  for (const step of renders) {
    const text = await readFile(join(dir, step.template), 'utf8');
    const out = renderYamlTemplate(text, values, { allowed: CONFIG_PLACEHOLDERS, file: step.template });
    await writeFile(join(dir, step.output), out, { mode: 0o600 });
  }
  const config = await readFile(join(dir, 'netbird', 'config.yaml'), 'utf8');
  expect(config).toContain(JSON.stringify(secrets.get('NB_RELAY_SECRET')));
  expect(config).toContain(JSON.stringify(secrets.get('NB_DATA_STORE_KEY')));
  return dir;
}

/** `docker-compose -f DIR/docker-compose.yml config ARGS`, with no compose settings from the caller's env. */
function composeConfig(dir: string, ...args: string[]) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('COMPOSE_') && !k.startsWith('DOCKER_')),
  );
  return execa(compose as string, ['-f', join(dir, 'docker-compose.yml'), 'config', ...args], {
    env,
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
}

/** Edits the copy's compose file through the YAML Document API (comments and anchors stay). */
async function editCompose(dir: string, edit: (doc: ReturnType<typeof parseDocument>) => void) {
  const file = join(dir, 'docker-compose.yml');
  const doc = parseDocument(await readFile(file, 'utf8'));
  edit(doc);
  await writeFile(file, doc.toString({ lineWidth: 0 }));
}

describe.skipIf(!compose)('docker-compose (v1) reads the rendered Bifrost bundle', () => {
  it('config -q accepts the bundle with every generated file rendered', async () => {
    const dir = await renderedCopy();
    const r = await composeConfig(dir, '-q');
    expect(r.exitCode, `docker-compose config -q: ${r.stderr}`).toBe(0);
    expect(String(r.stderr)).not.toMatch(/warning|error/i);
  }, 60_000);

  it("parses the netbird-server and netbird-proxy healthchecks as the CMD arrays the images run, and the agent's sh line", async () => {
    const dir = await renderedCopy();
    const r = await composeConfig(dir);
    expect(r.exitCode, `docker-compose config: ${r.stderr}`).toBe(0);
    const resolved = parseYaml(String(r.stdout)) as {
      services: Record<
        string,
        { healthcheck?: { test?: unknown }; environment?: Record<string, unknown>; image?: string }
      >;
    };
    expect(resolved.services['netbird-server']?.healthcheck?.test).toEqual([
      'CMD',
      'bash',
      '-c',
      'exec 3<>/dev/tcp/127.0.0.1/9090',
    ]);
    expect(resolved.services['netbird-proxy']?.healthcheck?.test).toEqual([
      'CMD',
      '/busybox/wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:8080/healthz/ready',
    ]);
    // The agent's: one sh line, read by compose as the facts write it (check-bundle runs that line).
    expect(resolved.services['netbird-agent']?.healthcheck?.test).toEqual([
      'CMD-SHELL',
      NETBIRD_CLIENT_STATUS.healthcheck,
    ]);
    // compose v1 inlines env_file: the proxy got both its settings file and its token file.
    const proxyEnv = Object.keys(resolved.services['netbird-proxy']?.environment ?? {});
    expect(proxyEnv).toEqual(expect.arrayContaining(['NB_PROXY_MANAGEMENT_ADDRESS', 'NB_PROXY_TOKEN']));
    expect(resolved.services['netbird-dashboard']?.image).toBe('netbirdio/dashboard:v2.33.0');
  }, 60_000);

  it('fails when a service env file is missing', async () => {
    const dir = await renderedCopy();
    await rm(join(dir, 'env', 'netbird-proxy.env'));
    const r = await composeConfig(dir, '-q');
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toContain('netbird-proxy.env');
  }, 60_000);

  it('fails on a key compose does not know in a service', async () => {
    const dir = await renderedCopy();
    await editCompose(dir, (doc) =>
      doc.setIn(['services', 'netbird-proxy', 'healthchek'], { test: ['NONE'] }),
    );
    const r = await composeConfig(dir, '-q');
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toContain('healthchek');
  }, 60_000);

  it('fails on a compose file that is not valid YAML', async () => {
    const dir = await renderedCopy();
    const file = join(dir, 'docker-compose.yml');
    await writeFile(file, `${await readFile(file, 'utf8')}\n  broken: [unclosed\n`);
    const r = await composeConfig(dir, '-q');
    expect(r.exitCode).not.toBe(0);
  }, 60_000);

  it('fails when .env lacks a ${VAR:?} the compose file requires', async () => {
    const dir = await renderedCopy();
    const dotEnv = parseEnvFile(await readFile(join(dir, '.env'), 'utf8'));
    dotEnv.delete('AUTHENTIK_SECRET_KEY');
    await writeFile(join(dir, '.env'), formatEnvFile([...dotEnv].map(([name, value]) => ({ name, value }))));
    const r = await composeConfig(dir, '-q');
    expect(r.exitCode).not.toBe(0);
    expect(String(r.stderr)).toContain('AUTHENTIK_SECRET_KEY');
  }, 60_000);
});
