import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeKubeTarget, resolveKubeTarget } from '../../scripts/lib/kube/target.ts';

function kubeconfig(current: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kt-'));
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
    const t = resolveKubeTarget({ env: { HOME: mkdtempSync(join(tmpdir(), 'kt-home-')) } });
    expect(t.context).toBeUndefined();
    expect(describeKubeTarget(t)).toMatch(/no current context/);
  });
});
