/**
 * What a child process receives from the environment: never a secret. The runs hold every schema key
 * in their environment (as `--from-env` and `sops exec-env` have them), a secret's value copied under
 * another name, and the age key itself; each child (the real kubectl and the credential plugin it
 * runs, docker, SOPS_AGE_KEY_CMD, the sops binary) dumps the environment it got, and the dump is
 * searched for every name and every encoded form of every value. The editor of `secrets edit` is
 * covered in secrets-edit.test.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { AGE_KEY_VARIABLES } from '../scripts/lib/core/child-env.ts';
import { redactor } from '../scripts/lib/core/redact.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { type FakeKubeApiServer, startFakeKubeApiServer } from '../scripts/lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { SECRET_KEYS } from '../scripts/lib/secrets/schema.ts';
import { loadSecrets } from '../scripts/lib/secrets/source.ts';
import { bifrostSecrets, makeBundle } from './helpers/bifrost-fixture.ts';
import {
  type BootstrapFixture,
  findLeaks,
  kubectlEnv,
  makeBootstrapFixture,
} from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';
import { requireTool } from './helpers/tiers.ts';

const kubectl = requireTool('kubectl', 'the real kubectl and its credential plugin as children');

let fx: BootstrapFixture;
beforeAll(async () => {
  fx = await makeBootstrapFixture();
});

const ageKey = () => readFileSync(fx.keyFile, 'utf8').match(/AGE-SECRET-KEY-1\S+/)?.[0] as string;

/**
 * The environment every run starts from: the schema's keys, the age key, a plain variable, and (for a
 * command that loads the values before its children run) a value copied under another name.
 */
function secretsInEnv(copied = true): Record<string, string> {
  return {
    ...fx.values,
    ...(copied ? { COPY_OF_A_TOKEN: `Bearer ${fx.values.AUTHENTIK_TOKEN}` } : {}),
    SOPS_AGE_KEY: ageKey(),
    ORDINARY_VARIABLE: 'kept',
  };
}

/** A script that writes the environment it was started with (NUL-separated, as /proc has it) to `dump`. */
function envDumper(name: string, then = ''): { path: string; dump: string } {
  const path = join(fx.dir, name);
  const dump = `${path}.env`;
  writeFileSync(path, `#!/bin/sh\n/bin/cat /proc/$$/environ > '${dump}'\n${then}`, { mode: 0o755 });
  return { path, dump };
}

/** The child's environment holds no secret, and (a control) did come through: the plain variable is there. */
function expectNoSecret(dump: string, opts: { ageSources?: 'withheld' | 'passed' } = {}) {
  const text = readFileSync(dump, 'utf8');
  const names = text.split('\0').map((entry) => entry.slice(0, entry.indexOf('=')));
  expect(names).toContain('ORDINARY_VARIABLE');
  for (const name of SECRET_KEYS) expect(names, `${dump}: ${name}`).not.toContain(name);
  expect(names, dump).not.toContain('COPY_OF_A_TOKEN');
  if (opts.ageSources === 'passed')
    expect(names).toEqual(expect.arrayContaining(['SOPS_AGE_KEY', 'SOPS_AGE_KEY_FILE']));
  else {
    for (const name of AGE_KEY_VARIABLES) expect(names, `${dump}: ${name}`).not.toContain(name);
    expect(text.includes(ageKey()), `${dump}: the age key`).toBe(false);
  }
  expect(findLeaks(text, fx.values), dump).toEqual([]);
}

describe.skipIf(!kubectl)('kubectl and its credential plugin under --from-env', () => {
  let server: FakeKubeApiServer;
  beforeAll(async () => {
    server = await startFakeKubeApiServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  const run = (kubeconfig: string, kubectlPath: string) =>
    runScript(
      'create-bootstrap-secrets.ts',
      ['--from-env', '--kubeconfig', kubeconfig, '--backend', 'infisical-v1alpha1'],
      { ...kubectlEnv(fx, kubectlPath), ...secretsInEnv() },
    );

  it('kubectl receives no schema key, no age key source and no secret value under any name', async () => {
    const wrapper = envDumper('kubectl-wrapper', `exec '${kubectl}' "$@"\n`);
    const kubeconfig = await writeKubeconfig({ dir: fx.dir, server: server.url, name: 'lab' });
    const r = await run(kubeconfig, wrapper.path);
    expect(r.exitCode, r.stderr).toBe(0);
    // The values did reach the cluster (on stdin), so kubectl ran with them at hand.
    expect(server.get('Secret', 'infisical-secrets', 'infisical')).toBeDefined();
    expectNoSecret(wrapper.dump);
  });

  it('nor does the credential plugin kubectl runs', async () => {
    const plugin = envDumper(
      'credential-plugin',
      `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"not-a-secret"}}'\n`,
    );
    // kubectl runs exec plugins for https servers only; nothing listens there, so the run stops after it.
    const kubeconfig = join(fx.dir, 'plugin.kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'c', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } },
        ],
        users: [
          {
            name: 'u',
            user: {
              exec: {
                apiVersion: 'client.authentication.k8s.io/v1',
                command: plugin.path,
                interactiveMode: 'Never',
              },
            },
          },
        ],
        contexts: [{ name: 'lab', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'lab',
      }),
      { mode: 0o600 },
    );
    const r = await run(kubeconfig, kubectl as string);
    expect(r.exitCode).not.toBe(0);
    expectNoSecret(plugin.dump);
  });
});

describe('docker on this machine (--local)', () => {
  it('receives no schema key and no age key source', async () => {
    const b = makeBundle(bifrostSecrets());
    // `compose version` fails: the run stops there, after the first docker child.
    const docker = envDumper('docker', 'echo "docker: unknown command: compose" >&2\nexit 1\n');
    const r = await runScript(
      'bifrost-bootstrap.ts',
      ['--local', '--dir', b.dir, '--docker', docker.path, '--compose', `${docker.path} compose`],
      { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: fx.home, NO_COLOR: '1', ...secretsInEnv(false) },
    );
    expect(r.stderr).toMatch(/docker compose is not available/);
    expectNoSecret(docker.dump);
  });
});

describe('the age key sources', () => {
  const load = (env: Record<string, string>) =>
    loadSecrets({
      secretsFile: fx.secretsFile,
      fromEnv: false,
      required: [],
      env,
      executor: new LocalExecutor(),
    });

  it('SOPS_AGE_KEY_CMD runs without the schema keys and the other key sources', async () => {
    const keyCmd = envDumper('key-cmd', `/bin/cat '${fx.keyFile}'\n`);
    // SOPS_AGE_KEY is set too: every source is loaded, and the command must not see the others.
    const loaded = await load({
      PATH: process.env.PATH ?? '',
      HOME: fx.home,
      ...secretsInEnv(false),
      SOPS_AGE_KEY_CMD: keyCmd.path,
      SOPS_AGE_KEY_FILE: join(fx.dir, 'none'),
    });
    expect(loaded.values.REDIS_PASSWORD).toBe(fx.values.REDIS_PASSWORD);
    expectNoSecret(keyCmd.dump);
  });

  it('the sops binary gets the age key sources (it needs them) and nothing else secret', async () => {
    for (const [name, value] of Object.entries(fx.values)) redactor.register(value, name);
    const sops = envDumper('sops', `echo '{"REDIS_PASSWORD": "from-the-stand-in"}'\n`);
    const saved = { ...process.env };
    // The executor's children inherit this process's environment.
    Object.assign(process.env, secretsInEnv(), { SOPS_AGE_KEY_FILE: fx.keyFile });
    try {
      const loaded = await load({
        PATH: fx.binDir,
        HOME: fx.home,
        SOPS: sops.path,
        SOPS_AGE_KEY_FILE: fx.keyFile,
      });
      expect(loaded.kind).toBe('sops-binary');
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    }
    const text = readFileSync(sops.dump, 'utf8');
    expect(text).toContain(`SOPS_AGE_KEY=${ageKey()}\0`);
    expect(text).toContain(`SOPS_AGE_KEY_FILE=${fx.keyFile}\0`);
    expectNoSecret(sops.dump, { ageSources: 'passed' });
  });
});
