/**
 * A wrong --kubeconfig or --context is bad input found before anything is decrypted: exit 2 at once,
 * naming the file or the context (and the contexts there are), no kubectl run, nothing decrypted.
 * The proof of "before decryption": the runs have no age key, so a run that decrypted first would fail
 * on the key instead.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type BootstrapFixture, findLeaks, makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';

const SCRIPT = 'create-bootstrap-secrets.ts';
const fixtures: BootstrapFixture[] = [];

afterEach(() => {
  for (const f of fixtures.splice(0)) rmSync(f.dir, { recursive: true, force: true });
});

async function fixture(): Promise<BootstrapFixture> {
  const f = await makeBootstrapFixture();
  fixtures.push(f);
  return f;
}

function env(f: BootstrapFixture): Record<string, string> {
  // No SOPS_AGE_KEY_FILE, and an empty HOME: nothing could be decrypted.
  return {
    PATH: f.binDir,
    HOME: f.home,
    TMPDIR: f.tmp,
    KUBECTL: resolve(PROJECT_ROOT, 'scripts/lib/sandbox/fake-kubectl'),
    FAKE_KUBECTL_LOG: join(f.dir, 'kubectl-log'),
    NO_COLOR: '1',
  };
}

describe('create-bootstrap-secrets checks the kube target first', () => {
  it('--kubeconfig naming a missing file: exit 2 naming it, not "kubectl will use its default"', async () => {
    const f = await fixture();
    const missing = join(f.dir, 'no-such-kubeconfig');
    for (const extra of [[], ['--dry-run']]) {
      const run = await runScript(
        SCRIPT,
        ['--secrets-file', f.secretsFile, '--kubeconfig', missing, ...extra],
        env(f),
      );
      expect(run.exitCode, run.stderr).toBe(2);
      expect(run.stderr).toContain(`error: --kubeconfig ${missing}: no such file`);
      expect(`${run.stdout}${run.stderr}`).not.toMatch(/kubectl will use its default|SOPS_AGE|age key/i);
    }
    expect(existsSync(join(f.dir, 'kubectl-log'))).toBe(false);
  });

  it('--context the kubeconfig lacks: exit 2 naming it and the contexts there are, before decryption', async () => {
    const f = await fixture();
    const kubeconfig = join(f.dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      'current-context: lab\ncontexts: [{name: lab, context: {cluster: c}}, {name: prod, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: "https://lab:6443"}}]\n',
    );
    const run = await runScript(
      SCRIPT,
      ['--secrets-file', f.secretsFile, '--kubeconfig', kubeconfig, '--context', 'prdo'],
      env(f),
    );
    expect(run.exitCode, run.stderr).toBe(2);
    expect(run.stderr).toContain(
      `error: --context prdo: no such context in ${kubeconfig}; it has: lab, prod`,
    );
    expect(run.stderr).toMatch(/hint: .*kubectl config get-contexts/);
    expect(run.stderr).not.toMatch(/SOPS_AGE|age key|identity/i);
    expect(existsSync(join(f.dir, 'kubectl-log'))).toBe(false);
    expect(findLeaks(`${run.stdout}${run.stderr}`, f.values)).toEqual([]);
  });
});
