import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeKubeTarget, resolveKubeTarget } from '../../scripts/lib/kube/target.ts';
import { tempDir } from '../helpers/temp.ts';

function kubeconfig(current: string): string {
  const dir = tempDir('kt-');
  const file = join(dir, 'config');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
current-context: ${current}
contexts:
  - name: prod
    context: { cluster: prod-cluster, user: admin }
  - name: lab
    context: { cluster: lab-cluster, user: admin }
clusters:
  - name: prod-cluster
    cluster: { server: https://10.0.0.1:6443 }
  - name: lab-cluster
    cluster: { server: https://127.0.0.1:6443 }
`,
  );
  return file;
}

describe('resolveKubeTarget', () => {
  it('reads the current context and its server, as kubectl would', () => {
    const t = resolveKubeTarget({ kubeconfig: kubeconfig('prod'), env: {} });
    expect(t.context).toBe('prod');
    expect(t.server).toBe('https://10.0.0.1:6443');
    expect(describeKubeTarget(t)).toBe('context "prod" (https://10.0.0.1:6443)');
  });

  it('lets --context win, and follows KUBECONFIG when no file is given', () => {
    const t = resolveKubeTarget({ context: 'lab', env: { KUBECONFIG: kubeconfig('prod') } });
    expect([t.context, t.server]).toEqual(['lab', 'https://127.0.0.1:6443']);
  });

  it('says so when there is no kubeconfig', () => {
    const t = resolveKubeTarget({ env: { HOME: tempDir('kt-home-') } });
    expect(t.context).toBeUndefined();
    expect(describeKubeTarget(t)).toMatch(/no current context/);
  });
});

describe('resolveKubeTarget refuses bad input before anything is decrypted', () => {
  it('a --kubeconfig that does not exist, naming the file', () => {
    const missing = join(tmpdir(), 'no-such-dir-kt', 'kubeconfig');
    expect(() => resolveKubeTarget({ kubeconfig: missing, env: {} })).toThrow(
      expect.objectContaining({
        exitCode: 2,
        message: expect.stringContaining(`--kubeconfig ${missing}: no such file`),
      }),
    );
  });

  it('a --context the kubeconfig does not have, naming the ones it has', () => {
    const file = kubeconfig('prod');
    try {
      const err = (() => {
        try {
          resolveKubeTarget({ kubeconfig: file, context: 'staging', env: {} });
        } catch (e) {
          return e as Error & { exitCode: number; hint?: string };
        }
        throw new Error('no error');
      })();
      expect(err.exitCode).toBe(2);
      expect(err.message).toContain(`--context staging: no such context in ${file}; it has: prod, lab`);
      expect(err.hint).toMatch(/kubectl config get-contexts/);
      // Every file in KUBECONFIG counts, as kubectl merges them.
      expect(() => resolveKubeTarget({ context: 'staging', env: { KUBECONFIG: file } })).toThrow(
        /it has: prod, lab/,
      );
      expect(() => resolveKubeTarget({ context: 'x', env: { HOME: '/nonexistent-kt-home' } })).toThrow(
        /no such context in any kubeconfig .*it has no contexts/,
      );
    } finally {
      rmSync(dirname(file), { recursive: true, force: true });
    }
  });

  it('leaves a kubeconfig it cannot parse to kubectl', () => {
    const dir = tempDir('kt-');
    try {
      writeFileSync(join(dir, 'config'), 'contexts: [unclosed\n');
      expect(resolveKubeTarget({ kubeconfig: join(dir, 'config'), context: 'any', env: {} }).context).toBe(
        'any',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
