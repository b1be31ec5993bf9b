/** The pure parts of the live comparison: parsing the go-template output, the per-key statuses, the modes. */
import { afterEach, describe, expect, it } from 'vitest';
import { setFingerprintKey } from '../../scripts/lib/core/redact.ts';
import { beginRun } from '../../scripts/lib/core/run-context.ts';
import { runMode } from '../../scripts/lib/kube/bootstrap-report.ts';
import { type LiveSecret, liveStubs, parseLiveOutput } from '../../scripts/lib/kube/live-secrets.ts';
import type { PlannedSecret } from '../../scripts/lib/kube/manifests.ts';
import { describeKeyDiff, diffSecrets, secretChanges } from '../../scripts/lib/kube/secret-diff.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('parseLiveOutput', () => {
  it('reads data (decoded) and owners per Secret, manager names Go-quoted', () => {
    const out = [
      'secret infisical infisical-secrets',
      `data A ${b64('alpha')}`,
      `data B ${b64('bé\nta')}`,
      'owner Apply f:A "secrets-flow"',
      'owner Update f:B "kubectl edit \\"x\\""',
      'secret cert-manager cf',
      'owner Update "no-data-keys"',
      '',
    ].join('\n');
    const parsed = parseLiveOutput(out);
    expect([...parsed.keys()]).toEqual(['infisical/infisical-secrets', 'cert-manager/cf']);
    expect(parsed.get('infisical/infisical-secrets')).toEqual({
      data: { A: 'alpha', B: 'bé\nta' },
      owners: [
        { manager: 'secrets-flow', operation: 'Apply', keys: ['A'] },
        { manager: 'kubectl edit "x"', operation: 'Update', keys: ['B'] },
      ],
    });
    expect(parsed.get('cert-manager/cf')).toEqual({
      data: {},
      owners: [{ manager: 'no-data-keys', operation: 'Update', keys: [] }],
    });
  });

  it('nothing printed means no Secret exists; an unknown line is an error', () => {
    expect(parseLiveOutput('').size).toBe(0);
    expect(() => parseLiveOutput('Secret infisical x\n')).toThrow(/unexpected line/);
  });

  it('the stubs kubectl reads name the Secrets and hold no data', () => {
    expect(liveStubs([{ namespace: 'n', name: 's' }])).toBe(
      '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: n\n',
    );
  });
});

describe('diffSecrets', () => {
  afterEach(() => void beginRun());
  const planned: PlannedSecret[] = [
    {
      namespace: 'ns',
      name: 's',
      entries: [
        { name: 'SAME', key: 'SAME_SRC', value: 'same-value' },
        { name: 'NEW', key: 'NEW', value: 'new-value' },
        { name: 'DIFF', key: 'DIFF', value: 'after' },
      ],
    },
    { namespace: 'ns', name: 'absent', entries: [{ name: 'K', key: 'K', value: 'v-value' }] },
  ];
  const live = new Map<string, LiveSecret | undefined>([
    [
      'ns/s',
      {
        data: { SAME: 'same-value', DIFF: 'before', OURS: 'old', SHARED: 'x', THEIRS: 'y', NOBODY: 'z' },
        owners: [
          { manager: 'secrets-flow', operation: 'Apply', keys: ['SAME', 'DIFF', 'OURS', 'SHARED'] },
          { manager: 'helm', operation: 'Update', keys: ['SHARED', 'THEIRS'] },
          // Another tool's Update entry under our name does not make a key ours to remove.
          { manager: 'secrets-flow', operation: 'Update', keys: ['NOBODY'] },
        ],
      },
    ],
    ['ns/absent', undefined],
  ]);

  it('added / changed / unchanged by value; removed only when only our apply owns it, else kept', () => {
    const [s, absent] = diffSecrets(planned, live);
    expect(s?.keys.map((k) => [k.name, k.status, k.ownedBy])).toEqual([
      ['SAME', 'unchanged', undefined],
      ['NEW', 'added', undefined],
      ['DIFF', 'changed', undefined],
      ['NOBODY', 'kept', ['secrets-flow']],
      ['OURS', 'removed', undefined],
      ['SHARED', 'kept', ['helm']],
      ['THEIRS', 'kept', ['helm']],
    ]);
    expect(s?.exists).toBe(true);
    expect(absent).toMatchObject({ exists: false, keys: [{ name: 'K', status: 'added' }] });
    expect(secretChanges(absent as never)).toBe(true);
  });

  it('a Secret whose keys are all unchanged (kept keys aside) does not change', () => {
    const [d] = diffSecrets(
      [{ namespace: 'ns', name: 's', entries: [{ name: 'SAME', key: 'SAME', value: 'same-value' }] }],
      new Map([['ns/s', { data: { SAME: 'same-value', T: 't' }, owners: [] }]]),
    );
    expect(d?.keys.map((k) => k.status)).toEqual(['unchanged', 'kept']);
    expect(secretChanges(d as never)).toBe(false);
  });

  it('shows lengths, and fingerprints only under a key; never the value', () => {
    const [s] = diffSecrets(planned, live);
    const changed = s?.keys.find((k) => k.name === 'DIFF');
    expect(describeKeyDiff(changed as never)).toBe('DIFF (5 chars): changed (was 6 chars)');
    setFingerprintKey('fp-key-for-tests');
    const [t] = diffSecrets(planned, live);
    const line = describeKeyDiff(t?.keys.find((k) => k.name === 'SAME') as never);
    expect(line).toMatch(/^SAME \(10 chars, hmac:[0-9a-f]{8}\) from SAME_SRC: unchanged$/);
    expect(line).not.toContain('same-value');
  });
});

describe('runMode', () => {
  it('maps --dry-run, --dry-run=client|server and --diff; refuses the rest with exit 2', () => {
    expect(runMode(undefined, false)).toBe('apply');
    expect(runMode('client', false)).toBe('offline');
    expect(runMode('server', false)).toBe('server');
    expect(runMode(undefined, true)).toBe('diff');
    expect(() => runMode('', false)).toThrow(/--dry-run= is not a dry-run mode/);
    expect(() => runMode('server', true)).toThrow(/--diff and --dry-run/);
  });
});
