/**
 * The sandbox demo's run (scripts/demo.ts): the bootstrap flow on this machine with nothing but Node, in a
 * temporary directory removed afterwards, each step a project script started as an operator starts it.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { parseEnvFile } from '../bifrost/env-file.ts';
import { DOT_ENV, SECRETS_ENV } from '../bifrost/host-state.ts';
import { BIFROST_PLAN, NB_IDP_MGMT_TOKEN, SERVICE_SECRET_FILES } from '../bifrost/plan.ts';
import { renderBifrostEnvFiles } from '../bifrost/render-env.ts';
import { placeholdersOf } from '../bifrost/template.ts';
import { EXIT } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { describeSecret } from '../core/redact.ts';
import { findOnPath } from '../exec/which.ts';
import { planBootstrapSecrets } from '../kube/manifests.ts';
import { BACKEND_IDS, DEFAULT_BACKEND } from '../secrets/backend-id.ts';
import { registerSecrets } from '../secrets/registry.ts';
import { decryptSopsFile, encryptSops } from '../secrets/sops/index.ts';
import { type DockerSimServer, serveDockerSimulator, writeDockerSimWrapper } from './docker-sim-server.ts';
import { DockerSimulator, SANDBOX_TIME_SCALE, SANDBOX_TIMELINE } from './docker-simulator.ts';
import { startFakeKubeApiServer } from './kube-apiserver.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { sampleSecrets } from './sample-secrets.ts';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
/** How every recipe starts a command (its bundle while current, else tsx), by path: any working directory. */
const LAUNCHER = join(ROOT, 'bin', 'run.mjs');
/** Runs a project script as an operator would, its output indented under the current step. */
function runStep(
  out: Output,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: { quiet?: boolean } = {},
): Promise<number> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [LAUNCHER, join(ROOT, 'scripts', script), ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const indent = (chunk: Buffer) => {
      if (opts.quiet) return;
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) out.info(`      ${line}`);
    };
    child.stdout.on('data', indent);
    child.stderr.on('data', indent);
    child.on('close', (code) => done(code ?? 1));
  });
}

/** The demo's seven steps, each narrated with its time; the temporary directory removed unless --keep. */
export async function demo(flags: { keep?: boolean }, out: Output): Promise<number> {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'secrets-flow-demo-'));
  const server = await startFakeKubeApiServer();
  const c = out.color;
  const TOTAL = 7;
  const step = (n: number, title: string) => out.info(c.bold(`[${n}/${TOTAL}] ${title}`));
  const timed = () => {
    const t0 = performance.now();
    return () => c.dim(`(${Math.round(performance.now() - t0)} ms)`);
  };
  let simServer: DockerSimServer | undefined;
  try {
    out.info(c.bold(`secrets-flow sandbox in ${dir}${flags.keep ? '' : ' (removed afterwards)'}`));

    let t = timed();
    step(1, 'a new age key');
    const identity = await generateIdentity();
    const recipient = await identityToRecipient(identity);
    const keyFile = join(dir, 'keys.txt');
    writeFileSync(keyFile, `# sandbox age key\n${identity}\n`, { mode: 0o600 });
    out.info(`      recipient ${recipient} ${t()}`);

    const env: NodeJS.ProcessEnv = { ...process.env, SOPS_AGE_KEY_FILE: keyFile };
    // Only the sandbox key may decrypt; an operator's own keys must not change what the sandbox shows.
    delete env.SOPS_AGE_KEY;
    delete env.SOPS_AGE_KEY_CMD;

    t = timed();
    step(2, 'secrets init: every generatable key, encrypted to it');
    const secretsFile = join(dir, 'bootstrap.sops.yaml');
    if (
      (await runStep(out, 'secrets.ts', ['init', '--recipient', recipient, '--file', secretsFile], env)) !== 0
    ) {
      return EXIT.failed;
    }
    // An operator adds the hand-made keys with `sops`; the sandbox fills them with samples.
    const generated = (await decryptSopsFile(secretsFile, { env })).documents[0] as Record<string, string>;
    // The decryptor registered the generated values; the samples are the demo's own.
    const samples = sampleSecrets();
    registerSecrets(samples);
    const values = { ...samples, ...generated };
    writeFileSync(secretsFile, await encryptSops(values, { recipients: [recipient], format: 'yaml' }));
    out.info(`      hand-made keys filled with sandbox samples ${t()}`);

    t = timed();
    step(3, 'the fake Kubernetes API server');
    const kubeconfig = await writeKubeconfig({ dir, server: server.url, name: 'sandbox' });
    const kubectl = findOnPath('kubectl');
    out.info(
      `      ${server.url}, ${kubectl ? `real kubectl ${kubectl}` : 'no kubectl installed: offline dry runs (no cluster contacted)'} ${t()}`,
    );
    const kubeEnv = {
      ...env,
      KUBECONFIG: kubeconfig,
      KUBECACHEDIR: join(dir, 'kube-cache'),
      KUBECTL: kubectl ?? join(ROOT, 'scripts/lib/sandbox/fake-kubectl'),
    };
    // The default backend, named: the repository's apps table must not change what the demo shows.
    const args = [
      '--secrets-file',
      secretsFile,
      '--backend',
      DEFAULT_BACKEND,
      ...(kubectl ? [] : ['--dry-run']),
    ];

    t = timed();
    step(4, 'create-bootstrap-secrets, twice: the second run changes nothing');
    if ((await runStep(out, 'create-bootstrap-secrets.ts', args, kubeEnv)) !== 0) return EXIT.failed;
    const writesBefore = [...server.writes.values()].reduce((a, b) => a + b, 0);
    if (
      (await runStep(out, 'create-bootstrap-secrets.ts', [...args, '--json'], kubeEnv, { quiet: true })) !== 0
    ) {
      return EXIT.failed;
    }
    const writesAfter = [...server.writes.values()].reduce((a, b) => a + b, 0);
    out.info(`      objects changed by the second run: ${writesAfter - writesBefore} ${t()}`);

    t = timed();
    step(5, 'bifrost-bootstrap on the docker simulator (timeline × 0.02)');
    const bundle = join(dir, 'bifrost');
    cpSync(join(ROOT, 'cloud/bifrost'), bundle, { recursive: true });
    const rendered = renderBifrostEnvFiles(values);
    writeFileSync(join(bundle, SECRETS_ENV), rendered.secretsEnv, { mode: 0o600 });
    writeFileSync(join(bundle, DOT_ENV), rendered.dotEnv, { mode: 0o600 });
    const sim = new DockerSimulator({ dir: bundle, ...SANDBOX_TIMELINE });
    simServer = await serveDockerSimulator(sim);
    const docker = await writeDockerSimWrapper(join(dir, 'docker'), simServer);
    const bifrostArgs = ['--local', '--dir', bundle, '--docker', docker, '--compose', `${docker} compose`];
    const scaled = { ...env, SECRETS_FLOW_TIME_SCALE: SANDBOX_TIME_SCALE };
    if ((await runStep(out, 'bifrost-bootstrap.ts', bifrostArgs, scaled)) !== 0) return EXIT.failed;
    out.info(`      ${sim.containers.size} containers healthy, ${sim.calls.length} docker calls ${t()}`);

    t = timed();
    step(6, "runtime tier: every backend's resources, and the check that no Secret manifest exists");
    const manifests = join(dir, 'runtime');
    for (const backend of BACKEND_IDS) {
      const args = ['--backend', backend, '--out', join(manifests, backend)];
      if ((await runStep(out, 'render-runtime-secrets.ts', args, env)) !== 0) return EXIT.failed;
    }
    if ((await runStep(out, 'render-runtime-secrets.ts', ['--check', manifests], env)) !== 0)
      return EXIT.failed;
    out.info(`      ${t()}`);

    step(7, 'which secret went where (fingerprints only)');
    for (const secret of planBootstrapSecrets(values, DEFAULT_BACKEND)) {
      const stored = server.get('Secret', secret.name, secret.namespace);
      out.info(`  k8s ${secret.namespace}/${secret.name}${stored ? '' : ' (dry run: not stored)'}`);
      for (const e of secret.entries) out.info(`    ${describeSecret(e.name, e.value)} <- ${e.key}`);
    }
    // What bifrost-bootstrap left in the bundle: .secrets.env now holds the minted NB_IDP_MGMT_TOKEN.
    const secretsEnv = parseEnvFile(readFileSync(join(bundle, SECRETS_ENV), 'utf8'));
    for (const f of SERVICE_SECRET_FILES) {
      out.info(`  bifrost ${f.file} (${f.services.join(', ')})`);
      for (const e of f.entries) {
        const value = secretsEnv.get(e.from);
        if (value) out.info(`    ${describeSecret(e.name, value)} <- .secrets.env ${e.from}`);
      }
    }
    out.info('  bifrost .env (compose interpolation in docker-compose.yml)');
    for (const [name, value] of parseEnvFile(readFileSync(join(bundle, DOT_ENV), 'utf8'))) {
      if (value) out.info(`    ${describeSecret(name, value)}`);
    }
    // The placeholders the shipped template really uses, not the list the engine allows.
    for (const step of BIFROST_PLAN) {
      if (step.kind !== 'render') continue;
      out.info(`  bifrost ${step.output} (netbird-server), rendered by bifrost-bootstrap`);
      for (const key of new Set(placeholdersOf(readFileSync(join(bundle, step.template), 'utf8')))) {
        const value = secretsEnv.get(key);
        if (value) out.info(`    ${describeSecret(key, value)} <- .secrets.env ${key}`);
      }
    }
    const minted = secretsEnv.get(NB_IDP_MGMT_TOKEN);
    if (minted) {
      out.info('  bifrost .secrets.env, minted on the host by bifrost-bootstrap');
      out.info(
        `    ${describeSecret(NB_IDP_MGMT_TOKEN, minted)} <- Authentik's netbird-mgmt-token (ak shell)`,
      );
    }
    if (minted !== undefined && minted === secretsEnv.get('AUTHENTIK_BOOTSTRAP_TOKEN')) {
      out.info(
        c.dim(
          `  ${NB_IDP_MGMT_TOKEN} has the same fingerprint as AUTHENTIK_BOOTSTRAP_TOKEN because it is the same value: the design\n` +
            "  page makes the token bifrost-bootstrap mints (Authentik's netbird-mgmt-token, an Authentik API token) take\n" +
            '  the bootstrap token as its key, read inside the authentik-server container. The pinned NetBird reads no\n' +
            '  IdP token, so netbird/config.yaml does not carry it (README "Design page vs pinned versions").',
        ),
      );
    }
    out.info(c.green(`\ndone in ${((performance.now() - started) / 1000).toFixed(1)} s`));
    out.result({
      ok: true,
      dir: flags.keep ? dir : undefined,
      server: server.url,
      realKubectl: Boolean(kubectl),
    });
    return EXIT.ok;
  } finally {
    await simServer?.close();
    await server.close();
    if (!flags.keep) rmSync(dir, { recursive: true, force: true });
  }
}
