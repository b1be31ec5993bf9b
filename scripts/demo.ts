/**
 * The sandbox demo (`npm run demo`): the bootstrap flow on this machine with nothing but Node, in a
 * temporary directory removed afterwards. A new age key, a SOPS file encrypted to it, the built-in fake
 * Kubernetes API server, and create-bootstrap-secrets run against it twice (the second run changes nothing).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { COMMON_OPTIONS, parseCli, runMain } from './lib/cli.ts';
import { EXIT } from './lib/errors.ts';
import { findOnPath } from './lib/exec/which.ts';
import { planBootstrapSecrets } from './lib/kube/manifests.ts';
import type { Output } from './lib/output.ts';
import { describeSecret, redactor } from './lib/redact.ts';
import { startFakeKubeApiServer } from './lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from './lib/sandbox/kubeconfig.ts';
import { sampleSecrets } from './lib/sandbox/sample-secrets.ts';
import { encryptSops } from './lib/secrets/sops/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const HELP = `Usage: node --import tsx scripts/demo.ts [--keep] [--json]

Runs the bootstrap flow on a built-in sandbox: a new age key, a SOPS file encrypted to it, the fake
Kubernetes API server on 127.0.0.1, and create-bootstrap-secrets against it with the real kubectl (a dry
run against the fake kubectl when kubectl is not installed), twice. Nothing outside a temporary
directory is touched; --keep leaves that directory in place for a look.`;

/** Runs a project script as an operator would, its output indented under the current step. */
function runStep(out: Output, script: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', script), ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const indent = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) out.info(`      ${line}`);
    };
    child.stdout.on('data', indent);
    child.stderr.on('data', indent);
    child.on('close', (code) => done(code ?? 1));
  });
}

async function main(argv: string[], out: Output): Promise<number> {
  const { values: flags } = parseCli(
    argv,
    { ...COMMON_OPTIONS, keep: { type: 'boolean' } },
    'scripts/demo.ts',
  );
  if (flags.help) {
    out.data(HELP);
    return EXIT.ok;
  }
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'secrets-flow-demo-'));
  const server = await startFakeKubeApiServer();
  const c = out.color;
  const step = (n: number, title: string) => out.info(c.bold(`[${n}/5] ${title}`));
  const timed = () => {
    const t0 = performance.now();
    return () => c.dim(`(${Math.round(performance.now() - t0)} ms)`);
  };
  try {
    out.info(c.bold(`secrets-flow sandbox in ${dir}${flags.keep ? '' : ' (removed afterwards)'}`));

    let t = timed();
    step(1, 'a new age key');
    const identity = await generateIdentity();
    const recipient = await identityToRecipient(identity);
    const keyFile = join(dir, 'keys.txt');
    writeFileSync(keyFile, `# sandbox age key\n${identity}\n`, { mode: 0o600 });
    out.info(`      recipient ${recipient} ${t()}`);

    t = timed();
    step(2, 'secrets/bootstrap.sops.yaml, encrypted to it');
    const values = sampleSecrets();
    redactor.registerAll(values);
    const secretsFile = join(dir, 'bootstrap.sops.yaml');
    writeFileSync(secretsFile, await encryptSops(values, { recipients: [recipient], format: 'yaml' }));
    out.info(`      ${Object.keys(values).length} keys, values encrypted, key names in plaintext ${t()}`);

    t = timed();
    step(3, 'the fake Kubernetes API server');
    const kubeconfig = await writeKubeconfig({ dir, server: server.url, name: 'sandbox' });
    const kubectl = findOnPath('kubectl');
    out.info(
      `      ${server.url}, ${kubectl ? `real kubectl ${kubectl}` : 'no kubectl installed: dry runs against the fake kubectl'} ${t()}`,
    );

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SOPS_AGE_KEY_FILE: keyFile,
      KUBECONFIG: kubeconfig,
      KUBECACHEDIR: join(dir, 'kube-cache'),
      KUBECTL: kubectl ?? join(ROOT, 'test/fakes/kubectl'),
    };
    // Only the sandbox key may decrypt; an operator's own keys must not change what the sandbox shows.
    delete env.SOPS_AGE_KEY;
    delete env.SOPS_AGE_KEY_CMD;
    const args = ['--secrets-file', secretsFile, ...(kubectl ? [] : ['--dry-run'])];

    t = timed();
    step(4, 'create-bootstrap-secrets');
    if ((await runStep(out, 'create-bootstrap-secrets.ts', args, env)) !== 0) return EXIT.failed;
    out.info(`      ${t()}`);

    t = timed();
    step(5, 'create-bootstrap-secrets again: a re-run changes nothing');
    const writesBefore = [...server.writes.values()].reduce((a, b) => a + b, 0);
    if ((await runStep(out, 'create-bootstrap-secrets.ts', args, env)) !== 0) return EXIT.failed;
    const writesAfter = [...server.writes.values()].reduce((a, b) => a + b, 0);
    out.info(`      objects changed by the second run: ${writesAfter - writesBefore} ${t()}`);

    out.info(c.bold('\nwhich secret went where'));
    for (const secret of planBootstrapSecrets(values)) {
      const stored = server.get('Secret', secret.name, secret.namespace);
      out.info(`  ${secret.namespace}/${secret.name}${stored ? '' : ' (dry run: not stored)'}`);
      for (const e of secret.entries) out.info(`    ${describeSecret(e.name, e.value)} <- ${e.key}`);
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
    await server.close();
    if (!flags.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await runMain((out) => main(process.argv.slice(2), out));
