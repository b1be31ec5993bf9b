/**
 * `runtime.ts setup`, the one-time OpenBao setup, against a stand-in for the cluster side: a fake
 * `kubectl exec` (scripts/lib/sandbox/fake-kubectl-exec) that runs the step's `sh -c` with a real
 * shell (dash, and busybox sh as in the OpenBao image when installed) and a fake `bao`
 * (scripts/lib/sandbox/fake-bao.mjs) keeping OpenBao's state in a JSON file. The token and the generated
 * values must reach bao through stdin only: never argv, kubectl's environment, a file or the output.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAppsTable } from '../scripts/lib/runtime/apps.ts';
import { ALREADY_DONE, openBaoSetupPlan, planJson } from '../scripts/lib/runtime/openbao-plan.ts';
import { TOKEN_SCRIPT } from '../scripts/lib/runtime/openbao-setup.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { generateValue } from '../scripts/lib/secrets/generate.ts';
import {
  type BootstrapFixture,
  findLeaks,
  kubectlEnv,
  makeBootstrapFixture,
} from './helpers/bootstrap-fixture.ts';
import { alive, eventually } from './helpers/process.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { scriptArgv } from './helpers/script-bundles.ts';
import { requireTool } from './helpers/tiers.ts';

const APPS = resolve(PROJECT_ROOT, 'cloud/runtime/apps.yaml');
const FAKE_KUBECTL = resolve(PROJECT_ROOT, 'scripts/lib/sandbox/fake-kubectl-exec');
const FAKE_BAO = resolve(PROJECT_ROOT, 'scripts/lib/sandbox/fake-bao.mjs');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface LogLine {
  argv: string[];
  stdin: { bytes: number; sha256?: string; text?: string };
  envHoldsToken?: boolean;
  pid?: number;
}

interface BaoState {
  auth: Record<
    string,
    { type: string; config: Record<string, string>; roles: Record<string, Record<string, string>> }
  >;
  mounts: Record<string, { type: string }>;
  policies: Record<string, string>;
  kv: Record<string, Record<string, { versions: { data: Record<string, string> }[] }>>;
}

interface Sandbox {
  f: BootstrapFixture;
  token: string;
  env: Record<string, string>;
  state: string;
  baoLog: string;
  kubectlLog: string;
  setup(args?: string[], extra?: Record<string, string | undefined>): ReturnType<typeof runScript>;
  readState(): BaoState;
  log(which: 'bao' | 'kubectl'): LogLine[];
}

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function sandbox(shell = '/bin/sh'): Promise<Sandbox> {
  const f = await makeBootstrapFixture();
  made.push(f.dir);
  // The pod's binaries: bao (the fake) and the node it runs on; nothing else of this machine's PATH.
  const pod = join(f.dir, 'pod-bin');
  mkdirSync(pod);
  symlinkSync(FAKE_BAO, join(pod, 'bao'));
  symlinkSync(process.execPath, join(pod, 'node'));
  const token = `s.CANARYtoken${randomBytes(12).toString('hex')}`;
  const state = join(f.dir, 'bao-state.json');
  const baoLog = join(f.dir, 'bao.log');
  const kubectlLog = join(f.dir, 'kubectl.log');
  const env = {
    ...kubectlEnv(f, FAKE_KUBECTL),
    BAO_TOKEN: token,
    FAKE_BAO_STATE: state,
    FAKE_BAO_LOG: baoLog,
    FAKE_KUBECTL_LOG: kubectlLog,
    FAKE_BAO_BIN: pod,
    FAKE_BAO_TOKEN_SHA256: sha256(token),
    FAKE_POD_SH: shell,
  };
  const readLog = (file: string): LogLine[] => {
    try {
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogLine);
    } catch {
      return [];
    }
  };
  return {
    f,
    token,
    env,
    state,
    baoLog,
    kubectlLog,
    setup: (args = [], extra = {}) => {
      const merged: Record<string, string> = { ...env };
      for (const [k, v] of Object.entries(extra)) {
        if (v === undefined) delete merged[k];
        else merged[k] = v;
      }
      return runScript(
        'runtime.ts',
        ['setup', '--apps', APPS, '--secrets-file', f.secretsFile, ...args],
        merged,
      );
    },
    readState: () => JSON.parse(readFileSync(state, 'utf8')) as BaoState,
    log: (which) => readLog(which === 'bao' ? baoLog : kubectlLog),
  };
}

/** Every value the fake holds in KV, by key name: what the setup generated (or an operator set). */
function storedValues(state: BaoState): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [mount, secrets] of Object.entries(state.kv))
    for (const [path, secret] of Object.entries(secrets))
      for (const [key, value] of Object.entries(secret.versions.at(-1)?.data ?? {}))
        out[`${mount}/${path}:${key}`] = value;
  return out;
}

/** Every regular file under `dir` but `except`, with its text. */
function filesUnder(dir: string, except: string[]): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(e.parentPath, e.name);
    if (e.isFile() && !except.includes(path)) out.push({ path, text: readFileSync(path, 'latin1') });
  }
  return out;
}

/** What follows `kubectl exec [-i]` for every setup step: the OpenBao pod's container, the token script. */
const POD_EXEC = ['-n', 'openbao', 'openbao-0', '-c', 'openbao', '--', 'sh', '-c', TOKEN_SCRIPT];

describe('the OpenBao setup plan for the shipped table', () => {
  it('puts flags before the path, data on stdin only, and uses current role fields', async () => {
    const table = await loadAppsTable(APPS);
    const generated: string[] = [];
    const steps = openBaoSetupPlan(table, (_app, key) => {
      const v = generateValue(key.generate);
      if (v) generated.push(v);
      return v;
    });
    const plan = JSON.parse(planJson(steps)) as { argv: string[]; stdin: string | null }[];
    expect(plan).toHaveLength(steps.length);
    const puts = plan.filter((s) => s.argv[1] === 'kv' && s.argv[2] === 'put');
    expect(puts.map((s) => s.argv[5])).toEqual(['grafana', 'harbor', 'n8n', 'rancher']);
    for (const s of puts) {
      // Go's flag package stops at the first positional: every flag must come before the path.
      const args = s.argv.slice(3);
      const firstPositional = args.findIndex((a) => a === '-' || !a.startsWith('-'));
      expect(args.slice(0, firstPositional)).toEqual(['-mount=secret', '-cas=0']);
      expect(args.slice(firstPositional + 1)).toEqual(['-']);
      expect(s.stdin).toBeTruthy();
      expect(Object.keys(JSON.parse(s.stdin as string)).length).toBeGreaterThan(0);
    }
    for (const s of plan) {
      expect(s.argv[0]).toBe('bao');
      expect(s.argv).not.toContain('@-');
      // Data arguments of kv writes are always `-`: never KEY=value, never KEY=-.
      if (s.argv[1] === 'kv')
        expect(s.argv.filter((a) => a.includes('='))).toEqual(['-mount=secret', '-cas=0']);
      if (s.argv[1] === 'policy' || s.argv[1] === 'kv') expect(s.stdin?.trim()).toBeTruthy();
      for (const v of generated) expect(s.argv.join(' ')).not.toContain(v);
    }
    const enables = plan.filter((s) => s.argv[2] === 'enable');
    expect(enables.map((s) => s.argv[1])).toEqual(['auth', 'secrets']);
    for (const s of enables)
      expect(ALREADY_DONE[s.argv[1] === 'auth' ? 'enable-auth' : 'enable-kv']).toBeDefined();
    for (const app of table.apps) {
      const role = plan.find((s) => s.argv[2] === `auth/kubernetes/role/${app.id}`);
      expect(role?.argv.slice(3)).toEqual([
        `bound_service_account_names=${app.serviceAccount}`,
        `bound_service_account_namespaces=${app.namespace}`,
        `token_policies=${app.id}-read`,
        'token_ttl=1h',
      ]);
      expect(role?.argv.some((a) => /^(policies|ttl)=/.test(a))).toBe(false);
      const policy = plan.find((s) => s.argv[1] === 'policy' && s.argv[3] === `${app.id}-read`);
      expect(policy?.argv.at(-1)).toBe('-');
      expect(policy?.stdin).toContain(`path "secret/data/${app.path.slice(1)}"`);
    }
    const n8n = puts.find((s) => s.argv[5] === 'n8n');
    expect(Object.keys(JSON.parse(n8n?.stdin ?? '{}'))).toEqual(['DB_PASSWORD', 'N8N_ENCRYPTION_KEY']);
    // NETBIRD_SETUP_KEY is made by hand: no write for it, in any step.
    for (const s of plan) {
      if (s.argv[1] === 'kv') expect(s.argv).not.toContain('netbird');
      expect(s.stdin ?? '').not.toContain('NETBIRD_SETUP_KEY');
    }
  });
});

const busybox = requireTool('busybox', "setup through busybox sh, the OpenBao image's shell");
const shells = [['dash (/bin/sh)', '/bin/sh'], ...(busybox ? [['busybox sh', `${busybox} sh`]] : [])];

describe('runtime setup against the stand-in', { timeout: 120_000 }, () => {
  it.each(shells)(
    'configures everything on the first run, through %s, leaking nothing',
    async (_name, shell) => {
      const s = await sandbox(shell);
      const run = await s.setup();
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^auth kubernetes +enabled$/m);
      expect(run.stdout).toMatch(/^auth kubernetes\/config +written$/m);
      expect(run.stdout).toMatch(/^kv secret +enabled$/m);
      expect(run.stdout).toMatch(/^policy grafana-read +written$/m);
      expect(run.stdout).toMatch(/^role netbird-peer +written$/m);
      expect(run.stdout).toMatch(
        /^values n8n +DB_PASSWORD \(32 chars, hmac:[0-9a-f]{8}\), N8N_ENCRYPTION_KEY \(64 chars, hmac:[0-9a-f]{8}\) written$/m,
      );
      expect(run.stdout).not.toMatch(/^values netbird/m);
      expect(run.stderr).toMatch(/names backend infisical .*setup configures OpenBao/);
      // The manual key: its command, value and token on stdin.
      expect(run.stdout).toContain('NETBIRD_SETUP_KEY at secret/netbird');
      expect(run.stdout).toContain(
        `{ printf '%s\\n' "$BAO_TOKEN"; printf %s "$NETBIRD_SETUP_KEY"; } | ${FAKE_KUBECTL} exec -i -n openbao openbao-0 -c openbao -- sh -c '${TOKEN_SCRIPT}' bao kv put -mount=secret -cas=0 netbird NETBIRD_SETUP_KEY=-`,
      );

      const state = s.readState();
      expect(state.auth.kubernetes?.config).toEqual({ kubernetes_host: 'https://kubernetes.default.svc' });
      expect(state.auth.kubernetes?.roles.harbor).toEqual({
        bound_service_account_names: 'secret-sync',
        bound_service_account_namespaces: 'harbor',
        token_policies: 'harbor-read',
        token_ttl: '1h',
      });
      expect(state.mounts.secret).toEqual({ type: 'kv-v2' });
      expect(Object.keys(state.policies).sort()).toEqual(
        ['grafana-read', 'harbor-read', 'n8n-read', 'netbird-peer-read', 'rancher-read'].sort(),
      );
      const kv = state.kv.secret ?? {};
      expect(Object.keys(kv).sort()).toEqual(['grafana', 'harbor', 'n8n', 'rancher']);
      expect(kv.grafana?.versions.at(-1)?.data.ADMIN_PASSWORD).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(kv.harbor?.versions.at(-1)?.data.HARBOR_ADMIN_PASSWORD).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(kv.rancher?.versions.at(-1)?.data.BOOTSTRAP_PASSWORD).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(Object.keys(kv.n8n?.versions.at(-1)?.data ?? {})).toEqual(['DB_PASSWORD', 'N8N_ENCRYPTION_KEY']);
      expect(kv.n8n?.versions.at(-1)?.data.DB_PASSWORD).toMatch(/^[0-9a-f]{32}$/);
      expect(kv.n8n?.versions.at(-1)?.data.N8N_ENCRYPTION_KEY).toMatch(/^[0-9a-f]{64}$/);

      // Every step went through kubectl exec with the token script; the token never in argv or env.
      const secrets = { BAO_TOKEN: s.token, ...storedValues(state) };
      const kubectlCalls = s.log('kubectl');
      expect(kubectlCalls).toHaveLength(17);
      for (const call of kubectlCalls) {
        expect(call.argv.slice(0, 12)).toEqual(['kubectl', 'exec', '-i', ...POD_EXEC]);
        expect(call.envHoldsToken).toBe(false);
        expect(call.stdin.bytes).toBeGreaterThan(s.token.length);
      }
      const baoCalls = s.log('bao');
      expect(baoCalls.map((c) => c.argv.slice(0, 3).join(' '))).toEqual([
        'bao auth enable',
        'bao write auth/kubernetes/config',
        'bao secrets enable',
        ...['grafana', 'harbor', 'n8n', 'rancher', 'netbird-peer'].flatMap((app) => [
          'bao policy write',
          `bao write auth/kubernetes/role/${app}`,
        ]),
        'bao kv put',
        'bao kv put',
        'bao kv put',
        'bao kv put',
      ]);
      // bao got its stdin without the token line: a policy's HCL exactly.
      expect(baoCalls[3]?.stdin.text).toBe('path "secret/data/grafana" {\n  capabilities = ["read"]\n}\n');
      for (const call of [...kubectlCalls, ...baoCalls])
        expect(findLeaks(call.argv.join('\n'), secrets)).toEqual([]);
      expect(findLeaks(run.stdout + run.stderr, secrets)).toEqual([]);
      const files = filesUnder(s.f.dir, [s.state]);
      expect(files.length, 'the files searched').toBeGreaterThan(0);
      for (const file of files) expect([file.path, findLeaks(file.text, secrets)]).toEqual([file.path, []]);
    },
  );

  it('changes nothing on a second run, and never overwrites a value an operator set', async () => {
    const s = await sandbox();
    expect((await s.setup()).exitCode).toBe(0);
    const before = readFileSync(s.state, 'utf8');
    const second = await s.setup(['--json']);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(readFileSync(s.state, 'utf8')).toBe(before);
    const result = JSON.parse(second.stdout) as {
      ok: boolean;
      steps: { kind: string; app?: string; outcome: string; said: string }[];
    };
    expect(result.ok).toBe(true);
    const outcome = (kind: string) => result.steps.filter((x) => x.kind === kind).map((x) => x.outcome);
    expect(outcome('enable-auth')).toEqual(['already']);
    expect(outcome('enable-kv')).toEqual(['already']);
    expect(outcome('initial-values')).toEqual(['already', 'already', 'already', 'already']);
    expect(result.steps.find((x) => x.app === 'n8n' && x.kind === 'initial-values')?.said).toBe(
      'already set, kept',
    );
    expect(second.stderr).toMatch(/^values grafana +already set, kept$/m);
    expect(second.stdout).not.toMatch(/CANARY/);

    // An operator sets grafana's real password (a new version, as `kv put` makes).
    const operatorValue = `CANARY-operator-${randomBytes(8).toString('hex')}`;
    const state = s.readState();
    state.kv.secret?.grafana?.versions.push({ data: { ADMIN_PASSWORD: operatorValue } });
    writeFileSync(s.state, JSON.stringify(state), { mode: 0o600 });
    const third = await s.setup();
    expect(third.exitCode, third.stderr).toBe(0);
    expect(third.stdout).toMatch(/^values grafana +already set, kept$/m);
    expect(s.readState().kv.secret?.grafana?.versions.at(-1)?.data).toEqual({
      ADMIN_PASSWORD: operatorValue,
    });
    expect(s.readState().kv.secret?.grafana?.versions).toHaveLength(2);
    expect(third.stdout + third.stderr).not.toContain(operatorValue);
  });

  it('stand-in: a -cas=0 after the path is data, so that write overwrites (Go flag rule)', async () => {
    const s = await sandbox();
    const bao = (args: string[], input: string, interactive = true) =>
      execa(FAKE_KUBECTL, ['exec', ...(interactive ? ['-i'] : []), ...POD_EXEC, 'bao', ...args], {
        env: s.env,
        extendEnv: false,
        reject: false,
        input: `${s.token}\n${input}`,
      });
    // What a first setup leaves for grafana (the first-run tests prove the setup does), made directly.
    expect((await bao(['secrets', 'enable', '-path=secret', 'kv-v2'], '')).exitCode).toBe(0);
    const seeded = await bao(
      ['kv', 'put', '-mount=secret', '-cas=0', 'grafana', '-'],
      '{"ADMIN_PASSWORD":"old"}',
    );
    expect(seeded.exitCode, seeded.stderr).toBe(0);
    const original = s.readState().kv.secret?.grafana?.versions.at(-1)?.data;
    expect(original).toEqual({ ADMIN_PASSWORD: 'old' });
    const right = await bao(
      ['kv', 'put', '-mount=secret', '-cas=0', 'grafana', '-'],
      '{"ADMIN_PASSWORD":"new"}',
    );
    expect(right.exitCode).toBe(2);
    expect(right.stderr).toMatch(ALREADY_DONE['initial-values'] as RegExp);
    expect(s.readState().kv.secret?.grafana?.versions.at(-1)?.data).toEqual(original);

    const wrong = await bao(
      ['kv', 'put', '-mount=secret', 'grafana', '-cas=0', '-'],
      '{"ADMIN_PASSWORD":"new"}',
    );
    expect(wrong.exitCode, wrong.stderr).toBe(0);
    expect(s.readState().kv.secret?.grafana?.versions.at(-1)?.data).toEqual({
      '-cas': '0',
      ADMIN_PASSWORD: 'new',
    });

    // `@-` is a file named "-", not stdin; `KEY=-` is stdin verbatim, newline included.
    const at = await bao(['kv', 'put', '-mount=secret', 'other', '@-'], '{"A":"b"}');
    expect(at.exitCode).not.toBe(0);
    expect(at.stderr).toMatch(/open -: no such file or directory/);
    expect((await bao(['kv', 'put', '-mount=secret', 'other', 'K=-'], 'line\n')).exitCode).toBe(0);
    expect(s.readState().kv.secret?.other?.versions.at(-1)?.data).toEqual({ K: 'line\n' });
    // Without -i kubectl forwards no stdin: the token line never arrives and bao never runs.
    const before = s.log('bao').length;
    expect((await bao(['kv', 'get', '-mount=secret', 'other'], '', false)).exitCode).not.toBe(0);
    expect(s.log('bao')).toHaveLength(before);
  });

  it('refuses without a token (exit 2, with the fix) and takes ~/.vault-token as bao does', async () => {
    const s = await sandbox();
    const none = await s.setup([], { BAO_TOKEN: undefined });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(
      /^error: no OpenBao token: BAO_TOKEN and VAULT_TOKEN are unset and ~\/\.vault-token does not exist/m,
    );
    expect(none.stderr).toMatch(/^hint: .*read -rs BAO_TOKEN && export BAO_TOKEN.*bao login/m);
    expect(s.log('kubectl')).toEqual([]);

    writeFileSync(join(s.f.home, '.vault-token'), s.token, { mode: 0o600 });
    const helper = await s.setup([], { BAO_TOKEN: undefined });
    expect(helper.exitCode, helper.stderr).toBe(0);
    expect(helper.stdout).toMatch(/^token +from ~\/\.vault-token/m);
    expect(helper.stdout + helper.stderr).not.toContain(s.token);
  });

  it('says a refused token is the problem, and stops at the first step (exit 1)', async () => {
    const s = await sandbox();
    const run = await s.setup([], { FAKE_BAO_TOKEN_SHA256: sha256('another token') });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/^error: step 1 of 17, auth kubernetes \(enable-auth\) failed \(exit 2\)/m);
    expect(run.stderr).toMatch(/permission denied/);
    expect(run.stderr).toMatch(/^hint: the token was refused.*re-running is safe/m);
    expect(s.log('bao')).toHaveLength(1);
  });

  it('exits 2 when the pod does not exist, running nothing', async () => {
    const s = await sandbox();
    const run = await s.setup([], { FAKE_BAO_POD: 'openbao-1' });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(
      /^error: pod openbao\/openbao-0 not found in the current context; nothing was run$/m,
    );
    expect(run.stderr).toMatch(/^hint: check that OpenBao is installed there/m);
    expect(s.log('bao')).toEqual([]);
  });

  it('stops at a failing step (exit 1), names it, runs nothing after it, and redacts its message', async () => {
    const s = await sandbox();
    const run = await s.setup([], { FAKE_BAO_FAIL: 'policy write' });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(
      /^error: step 4 of 17, policy grafana-read \(policy, app grafana\) failed \(exit 2\); the steps after it were not run:$/m,
    );
    expect(run.stderr).toMatch(/^ {2}\| \* internal error \(FAKE_BAO_FAIL\)/m);
    expect(run.stderr).toMatch(/^hint: re-running is safe/m);
    expect(s.log('bao').map((c) => c.argv[1])).toEqual(['auth', 'write', 'secrets', 'policy']);

    // A failing value write whose error quotes the values back: redacted, and the run stops there.
    const t = await sandbox();
    const values = await t.setup([], { FAKE_BAO_FAIL: 'kv put' });
    expect(values.exitCode).toBe(1);
    expect(values.stderr).toMatch(
      /^error: step 14 of 17, values grafana \(initial-values, app grafana\) failed/m,
    );
    expect(values.stderr).toMatch(/\[REDACTED:ADMIN_PASSWORD\]/);
    expect(values.stderr).not.toMatch(/"ADMIN_PASSWORD":"[A-Za-z0-9]{32}"/);
    expect(t.log('bao').filter((c) => c.argv[1] === 'kv')).toHaveLength(1);
  });

  it('a dry run prints each kubectl command and runs nothing, without a token', async () => {
    const s = await sandbox();
    const kubeconfig = await writeKubeconfig({
      dir: s.f.dir,
      server: 'https://127.0.0.1:1',
      name: 'sandbox',
    });
    const run = await s.setup(['--dry-run', '--kubeconfig', kubeconfig, '--context', 'sandbox'], {
      BAO_TOKEN: undefined,
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      `${FAKE_KUBECTL} --kubeconfig ${kubeconfig} --context sandbox exec -i -n openbao openbao-0 -c openbao -- sh -c '${TOKEN_SCRIPT}' bao kv put -mount=secret -cas=0 n8n -`,
    );
    expect(run.stdout).toMatch(/stdin: token line, then DB_PASSWORD, N8N_ENCRYPTION_KEY as one JSON object/);
    expect(run.stdout).toMatch(/^dry run: 17 step\(s\); nothing run/m);
    expect(s.log('kubectl')).toEqual([]);
    expect(s.log('bao')).toEqual([]);

    const unknown = await s.setup(['--kubeconfig', kubeconfig, '--context', 'nope']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/--context nope: no such context/);
    expect(s.log('kubectl')).toEqual([]);
  });

  it('a step that never answers: the timeout names it; Ctrl-C stops it and names it', async () => {
    const s = await sandbox();
    // The limit applies to every step: 5 s leaves the steps that do answer room on a loaded machine (at
    // 1 s, step 3 once ran past it under a load of 15), while the hung one never answers at all.
    const timed = await s.setup(['--timeout', '5'], { FAKE_BAO_HANG: 'policy write' });
    expect(timed.exitCode).toBe(1);
    expect(timed.stderr).toMatch(
      /^error: step 4 of 17, policy grafana-read \(policy, app grafana\) did not finish within 5 s/m,
    );
    const hung = s.log('bao').at(-1)?.pid as number;
    expect(await eventually(() => !alive(hung))).toBe(true);

    const t = await sandbox();
    const child = execa(
      process.execPath,
      [...scriptArgv('runtime.ts', 'tsx'), 'setup', '--apps', APPS, '--secrets-file', t.f.secretsFile],
      {
        env: { ...t.env, FAKE_BAO_HANG: 'policy write' },
        extendEnv: false,
        reject: false,
        cwd: PROJECT_ROOT,
      },
    );
    try {
      expect(await eventually(() => t.log('bao').some((c) => c.argv[1] === 'policy'), 30_000)).toBe(true);
      child.kill('SIGINT');
      const done = await child;
      expect(done.exitCode).toBe(130);
      expect(String(done.stderr)).toMatch(
        /interrupted by SIGINT during step 4 of 17, policy grafana-read \(policy\)/,
      );
      const pid = t.log('bao').at(-1)?.pid as number;
      expect(await eventually(() => !alive(pid))).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
