/**
 * The guide is a test: README's operator guide (sections 1–3 and the recovery commands of section 6) run
 * as ONE journey, in the guide's order, on ONE host, each step as the operator runs it: the real CLI
 * processes (secrets.ts, provision-bifrost.ts, bifrost.ts) in the operator's own repository, a SOPS file
 * they make with `secrets init` from an `age-keygen` key (no sops binary anywhere), provisioning over a
 * real loopback sshd to a host whose docker is the simulator.
 *
 * - day 1: init, the hand-made keys, check, the first provision (the proxy starts on the token the
 *   bootstrap mints on the host; the agent is skipped: no setup key yet);
 * - day 2, after the first NetBird login: the setup key, provision: the agent starts, nothing else is
 *   recreated, the minted proxy token is kept; then the operator's own NB_PROXY_TOKEN wins over it;
 * - day 3: a no-op provision, the recovery commands, `bifrost token` twice and once with a failing
 *   pre-flight, a rotation, a change of age recipients;
 * - Ctrl-C in each phase of a provision (upload, a bootstrap wait, the token step): exit 130 saying what
 *   was interrupted, then a plain re-run converges and the run after it changes nothing.
 *
 * After every command (harness/journey.ts): nothing it started is left on the host, and no secret value
 * the journey met is in its output. The host's deadlines run on a shortened timeline.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceTimeline } from '../scripts/lib/sandbox/docker-simulator.ts';
import { type FakeKubeApiServer, startFakeKubeApiServer } from '../scripts/lib/sandbox/kube-apiserver.ts';
import { writeKubeconfig } from '../scripts/lib/sandbox/kubeconfig.ts';
import { decryptSopsFile } from '../scripts/lib/secrets/sops/index.ts';
import { type BifrostTestHost, startBifrostTestHost } from './harness/bifrost-host.ts';
import { type DropProxy, startDropProxy } from './harness/drop-proxy.ts';
import { ageKeygen, DAY_1_KEYS, DAY_2_KEYS, Operator, SECRETS_FILE, type Step } from './harness/journey.ts';
import { findSshd } from './harness/sshd.ts';
import { canaryValues } from './helpers/bootstrap-fixture.ts';
import type { CliRun } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTool } from './helpers/tiers.ts';
import { sha256, treeHashes } from './helpers/tree.ts';
import { killWatchedRuns, signalRun } from './helpers/watched-run.ts';

const sshd = findSshd("the operator guide's journey over a loopback sshd");
const ageKeygenBin = requireTool('age-keygen', "the operator guide's journey (its age key)");
const kubectl = requireTool('kubectl', "the operator guide's journey: section 2 against the fake API server");

/** The variable names of an env file, in order. */
const envKeys = (text: string) => text.match(/^[A-Za-z_][A-Za-z0-9_]*(?==)/gm) ?? [];

const steps = (r: CliRun): Record<string, Step> =>
  Object.fromEntries(
    ((JSON.parse(r.stdout).bootstrap?.steps ?? []) as Step[]).map((s) => [s.id, s] as const),
  );

describe.skipIf(!sshd || !ageKeygenBin)('the operator guide, as one journey', () => {
  let host: BifrostTestHost;
  let op: Operator;
  let proxy: DropProxy;
  let cluster: FakeKubeApiServer | undefined;
  /** The operator's first age key; replaced on day 3 (recipients). */
  let firstKey: { file: string; recipient: string };
  /** Values typed in by hand, as the operator pastes them from each vendor's console. */
  const typed = canaryValues();
  const secretsEnv = () => join(host.remoteDir, '.secrets.env');
  const tokenLines = () => readFileSync(secretsEnv(), 'utf8').match(/^NB_IDP_MGMT_TOKEN=.*$/gm) ?? [];
  const lockDir = () => `${host.remoteDir}.lock`;
  const ok = (r: CliRun, what: string) => {
    expect(r.stderr, `${what}:\n${r.stderr}`).not.toMatch(/^error:/m);
    expect(r.exitCode, `${what}:\n${r.stderr}`).toBe(0);
  };
  /** How often each service's container was created so far (2: recreated once). */
  const creations = () => Object.fromEntries(host.sim.creations);
  /** `before` with each of `services` created once more. */
  const plusOne = (before: Record<string, number>, services: readonly string[]) => ({
    ...before,
    ...Object.fromEntries(services.map((s) => [s, (before[s] ?? 0) + 1])),
  });
  /** Whether `service`'s container runs with `name` set to `value` (a yes or no: no value in a failure message). */
  const runsWith = (service: string, name: string, value: string | undefined) =>
    value !== undefined && host.sim.containers.get(service)?.env[name] === value;
  /** Every docker call made on the host since `since` (the simulator's clock). */
  const callsSince = (since: number) =>
    host.sim.calls.filter((c) => c.startedAt >= since).map((c) => c.argv.join(' '));

  /** A provision with nothing to do: nothing sent, no bootstrap, no docker call, no file changed. */
  async function expectNoOp(what: string): Promise<void> {
    const files = treeHashes(host.remoteDir);
    const since = host.sim.now();
    const r = await op.provision();
    ok(r, what);
    const result = JSON.parse(r.stdout);
    expect(result.upload.changed, what).toEqual([]);
    expect(result.bootstrap, what).toBe('skipped');
    expect(callsSince(since), what).toEqual([]);
    expect(treeHashes(host.remoteDir), what).toEqual(files);
  }

  /** After an interrupted run: a plain re-run finishes the job, and the run after it changes nothing. */
  async function expectConverges(what: string): Promise<CliRun> {
    const again = await op.provision();
    ok(again, `${what}: the re-run`);
    expect(JSON.parse(again.stdout).bootstrap.ok, what).toBe(true);
    expect(again.stderr).not.toMatch(/took over/);
    await expectNoOp(`${what}: the run after the re-run`);
    return again;
  }

  beforeAll(async () => {
    host = await startBifrostTestHost(sshd as string, { prefix: 'sf-journey-' });
    proxy = await startDropProxy(host.server.port);
    const root = tempDir('sf-journey-operator-');
    const extraEnv: Record<string, string> = {};
    if (kubectl) {
      cluster = await startFakeKubeApiServer();
      extraEnv.KUBECTL = kubectl;
      extraEnv.KUBECONFIG = await writeKubeconfig({ dir: root, server: cluster.url, name: 'homelab' });
      extraEnv.KUBECACHEDIR = join(root, 'kube-cache');
    }
    op = new Operator(
      root,
      {
        // The operator's own known_hosts, none yet on day 1: the first provision records the host key.
        ssh: {
          host: host.server.host,
          port: host.server.port,
          user: host.server.user,
          identity: host.server.identity,
          knownHosts: join(root, 'operator-home', '.ssh', 'known_hosts'),
        },
        remoteDir: host.remoteDir,
        bundle: host.bundle,
        docker: host.docker,
        compose: `${host.docker} compose`,
        openEventStreams: () => host.sim.listening,
        dockerCommands: () => host.sim.calls.map((c) => c.argv.join(' ')),
      },
      extraEnv,
    );
  }, 60_000);

  afterEach(() => {
    killWatchedRuns();
    proxy?.setDelay(0);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.close();
    await host?.stop();
  });

  describe('section 1: the age key and the SOPS file', () => {
    it('age-keygen, secrets init, check lists the hand-made keys, set each, check passes', async () => {
      firstKey = ageKeygen(join(op.home, 'age-key.txt'));
      op.keyFile = firstKey.file;

      const init = await op.secrets(['init', '--recipient', firstKey.recipient]);
      ok(init, 'secrets init');
      expect(statSync(join(op.repo, SECRETS_FILE)).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(op.repo, '.sops.yaml'), 'utf8')).toContain(firstKey.recipient);
      for (const k of DAY_1_KEYS) expect(init.stdout + init.stderr, k).toContain(k);

      const missing = await op.secrets(['check']);
      expect(missing.exitCode, missing.stderr).toBe(2);
      for (const k of DAY_1_KEYS)
        expect(missing.stdout + missing.stderr, k).toMatch(new RegExp(`${k}.*missing`));

      for (const k of DAY_1_KEYS) {
        // As `printf '%s\n' "$TOKEN" | just secrets-set KEY`: the trailing newline is not the value's.
        ok(await op.secrets(['set', k], `${typed[k]}\n`), `secrets set ${k}`);
      }
      const values = await op.decrypt();
      for (const k of DAY_1_KEYS) expect(values[k] === typed[k], `${k} reads back as typed`).toBe(true);
      for (const k of DAY_2_KEYS) expect(values[k], k).toBeUndefined();
      ok(await op.secrets(['check']), 'secrets check');
      const where = await op.run('secrets.ts', ['where']);
      ok(where, 'secrets where');
      for (const k of DAY_2_KEYS) expect(where.stdout, k).toContain(k);
    }, 60_000);
  });

  describe.skipIf(!kubectl)('section 2: create-secrets', () => {
    it('the offline dry run contacts nothing; the apply creates the Secrets; a second changes nothing', async () => {
      const c = cluster as FakeKubeApiServer;
      const requests = c.requests.length;
      ok(
        await op.run('create-bootstrap-secrets.ts', ['--secrets-file', SECRETS_FILE, '--dry-run']),
        'dry run',
      );
      expect(c.requests.length).toBe(requests);
      const args = ['--secrets-file', SECRETS_FILE, '--context', 'homelab'];
      ok(await op.run('create-bootstrap-secrets.ts', args), 'create-secrets');
      const values = await op.decrypt();
      const cf = c.get('Secret', 'cloudflare-api-token', 'cert-manager')?.data as Record<string, string>;
      const applied = Buffer.from(cf.CLOUDFLARE_API_TOKEN ?? '', 'base64').toString();
      expect(applied === values.CLOUDFLARE_API_TOKEN, 'the cluster holds the Cloudflare token').toBe(true);
      const again = await op.run('create-bootstrap-secrets.ts', args);
      ok(again, 'create-secrets again');
      expect(again.stdout).toMatch(/nothing to change: \d+ secret\(s\) already up to date/);
    }, 60_000);
  });

  describe('section 3: provisioning, day by day', () => {
    it('day 1: the first provision records the host key; the proxy starts on a minted token, the agent is skipped', async () => {
      const first = await op.provision(['--accept-new']);
      ok(first, 'the first provision');
      expect(JSON.parse(first.stdout).bootstrap.ok).toBe(true);
      const s = steps(first);
      // No manual step for the proxy: its token is minted once netbird-server is up, as NetBird's setup does.
      expect(s['netbird-proxy-token']?.status).toBe('done');
      expect(s['netbird-proxy']?.status).toBe('done');
      expect(host.sim.proxyTokens).toHaveLength(1);
      expect(runsWith('netbird-proxy', 'NB_PROXY_TOKEN', host.sim.proxyTokens[0])).toBe(true);
      expect(first.stdout + first.stderr).not.toContain(host.sim.proxyTokens[0]);
      expect(s['netbird-agent']?.status).toBe('skipped');
      expect(first.stderr).toMatch(/skip\s+netbird-agent: NB_BIFROST_SETUP_KEY is not set/);
      expect([...host.sim.containers.keys()].sort()).toEqual(
        [
          'authentik-postgres',
          'authentik-server',
          'authentik-worker',
          'netbird-dashboard',
          'netbird-proxy',
          'netbird-server',
          'traefik',
        ].sort(),
      );
      expect(runsWith('traefik', 'CF_DNS_API_TOKEN', typed.CLOUDFLARE_API_TOKEN)).toBe(true);
      expect(readFileSync(op.host.ssh.knownHosts, 'utf8')).toContain(`[127.0.0.1]:${host.server.port}`);
      expect(tokenLines()).toHaveLength(1);

      const status = await op.secrets([
        'status',
        ...(kubectl ? ['--context', 'homelab'] : ['--no-cluster']),
        ...op.sshArgs(),
        '--remote-dir',
        host.remoteDir,
      ]);
      ok(status, 'secrets status');
      expect(status.stdout).not.toMatch(/\b(differs|missing|not deployed)\b/);
    }, 60_000);

    it('day 2, after the first NetBird login: the setup key, provision: the agent starts, nothing else recreated', async () => {
      for (const k of DAY_2_KEYS) ok(await op.secrets(['set', k], `${typed[k]}\n`), `secrets set ${k}`);
      ok(await op.secrets(['check']), 'secrets check');
      const before = creations();
      const r = await op.provision();
      ok(r, 'provision with the setup key');
      expect(JSON.parse(r.stdout).upload.changed.sort()).toEqual(['.env', '.secrets.env']);
      const s = steps(r);
      expect(s['netbird-agent']?.status).toBe('done');
      expect(creations()).toEqual(plusOne(before, ['netbird-agent']));
      // The minted proxy token is carried in the re-rendered .secrets.env: kept, not minted again.
      expect(host.sim.proxyTokens).toHaveLength(1);
      expect(runsWith('netbird-proxy', 'NB_PROXY_TOKEN', host.sim.proxyTokens[0])).toBe(true);
      // The files changed on the operator's side (a new key), not on the host: the run must not say so.
      expect(r.stderr).not.toMatch(/edited on the host/);
    }, 60_000);

    it("day 2: the operator's own NB_PROXY_TOKEN in the SOPS file wins over the minted one", async () => {
      ok(
        await op.secrets(['set', 'NB_PROXY_TOKEN'], `${typed.NB_PROXY_TOKEN}\n`),
        'secrets set NB_PROXY_TOKEN',
      );
      const before = creations();
      const r = await op.provision();
      ok(r, 'provision with a proxy token of their own');
      expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
      expect(steps(r)['netbird-proxy-token']?.detail).toMatch(/from the SOPS file\); kept/);
      expect(creations()).toEqual(plusOne(before, ['netbird-proxy']));
      expect(runsWith('netbird-proxy', 'NB_PROXY_TOKEN', typed.NB_PROXY_TOKEN)).toBe(true);
      expect(host.sim.proxyTokens).toHaveLength(1);
      expect(readFileSync(secretsEnv(), 'utf8').match(/^NB_PROXY_TOKEN=.*$/gm)).toHaveLength(1);
    }, 60_000);

    it('day 3: a provision with nothing changed sends nothing and makes no docker call', async () => {
      await expectNoOp('a provision with nothing changed');
    }, 60_000);
  });

  describe('section 6: recovery over SSH, day 3', () => {
    it('status, logs, verify and render report a healthy, matching host and change nothing', async () => {
      const before = creations();
      const files = treeHashes(host.remoteDir);
      const status = await op.bifrost('status');
      ok(status, 'bifrost status');
      for (const service of host.sim.containers.keys())
        expect(status.stdout).toMatch(new RegExp(`^${service}\\s`, 'm'));
      const logs = await op.bifrost('logs', ['netbird-server']);
      ok(logs, 'bifrost logs');
      const verify = await op.bifrost('verify', ['--bundle', host.bundle, '--secrets-file', SECRETS_FILE]);
      ok(verify, 'bifrost verify');
      const render = await op.bifrost('render');
      ok(render, 'bifrost render');
      const unlock = await op.bifrost('unlock', ['--yes']);
      ok(unlock, 'bifrost unlock with no lock held');
      expect(creations()).toEqual(before);
      expect(treeHashes(host.remoteDir)).toEqual(files);
    }, 60_000);

    it('bifrost token twice: .secrets.env ends with exactly one NB_IDP_MGMT_TOKEN line', async () => {
      const before = creations();
      for (const n of [1, 2]) {
        ok(await op.bifrost('token'), `bifrost token (${n})`);
        expect(tokenLines(), `after bifrost token (${n})`).toHaveLength(1);
      }
      expect(statSync(secretsEnv()).mode & 0o777).toBe(0o600);
      // The pinned NetBird config does not carry the token: nothing to recreate.
      expect(creations()).toEqual(before);
      await expectNoOp('a provision after bifrost token');
    }, 60_000);

    it("a bifrost token whose pre-flight fails leaves the host's .secrets.env byte-identical", async () => {
      const before = readFileSync(secretsEnv(), 'utf8');
      const r = await op.run('bifrost.ts', [
        'token',
        ...op.sshArgs(),
        '--remote-dir',
        host.remoteDir,
        '--docker',
        host.docker,
        '--compose',
        'no-such-compose-command',
      ]);
      expect(r.exitCode, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(/no-such-compose-command/);
      // Compared by key names, then by digest: a failure message shows no value.
      expect(envKeys(readFileSync(secretsEnv(), 'utf8'))).toEqual(envKeys(before));
      expect(sha256(readFileSync(secretsEnv()))).toBe(sha256(before));
      expect(existsSync(lockDir())).toBe(false);
    }, 60_000);
  });

  describe('day 3: the SOPS file changes', () => {
    it('secrets rotate AUTHENTIK_TOKEN, provision: only the services rotate named are recreated', async () => {
      const old = (await op.decrypt()).AUTHENTIK_TOKEN;
      const rotate = await op.secrets(['rotate', 'AUTHENTIK_TOKEN', '--bundle', host.bundle]);
      ok(rotate, 'secrets rotate');
      const rotated = (await op.decrypt()).AUTHENTIK_TOKEN;
      expect(rotated === old, 'the rotated value is new').toBe(false);
      const named =
        /^\s+AUTHENTIK_TOKEN\s+→ Bifrost \.secrets\.env as AUTHENTIK_BOOTSTRAP_TOKEN; restarts (.+)$/m.exec(
          rotate.stdout,
        )?.[1];
      expect(named, rotate.stdout).toBeDefined();
      const services = (named as string).split(', ');
      expect(services.length).toBeGreaterThan(0);
      const before = creations();
      const r = await op.provision();
      ok(r, 'provision after the rotation');
      expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
      expect(creations()).toEqual(plusOne(before, services));
      for (const service of services)
        expect(runsWith(service, 'AUTHENTIK_BOOTSTRAP_TOKEN', rotated), service).toBe(true);
      expect(tokenLines()).toHaveLength(1);
      await expectNoOp('a provision after the rotated one');
    }, 60_000);

    it('recipients add a new key and remove the first: the provision decrypts with the new key and changes nothing', async () => {
      const second = ageKeygen(join(op.home, 'age-key-2.txt'));
      ok(await op.secrets(['recipients', 'add', second.recipient]), 'recipients add');
      op.keyFile = second.file;
      ok(await op.secrets(['recipients', 'remove', firstKey.recipient]), 'recipients remove');
      const sopsYaml = readFileSync(join(op.repo, '.sops.yaml'), 'utf8');
      expect(sopsYaml).toContain(second.recipient);
      expect(sopsYaml).not.toContain(firstKey.recipient);
      // The first key opens nothing in the new file.
      await expect(
        decryptSopsFile(join(op.repo, SECRETS_FILE), {
          env: { SOPS_AGE_KEY_FILE: firstKey.file, HOME: op.home },
        }),
      ).rejects.toThrow();
      await expectNoOp('a provision after the change of recipients');
    }, 60_000);
  });

  describe('Ctrl-C in each phase of a provision, then a plain re-run', () => {
    it('during the upload: exit 130 saying so, the live bundle unchanged', async () => {
      const file = join(host.bundle, 'traefik/traefik.yml');
      writeFileSync(file, `${readFileSync(file, 'utf8')}# the journey's interrupted upload\n`);
      const live = treeHashes(host.remoteDir);
      // A slow link, so that the upload lasts long enough to be interrupted on its progress line.
      proxy.setDelay(40);
      const run = op.startProvision(['--verbose', '--accept-new'], proxy.port);
      await run.line(/: sending \d+ files/);
      signalRun(run, 'SIGINT');
      const r = await op.finish(run, 'provision interrupted during the upload');
      proxy.setDelay(0);
      expect(r.exitCode, r.stderr).toBe(130);
      expect(r.stderr).toMatch(/interrupted by SIGINT during upload: the live bundle is unchanged/);
      expect(treeHashes(host.remoteDir)).toEqual(live);
      expect(existsSync(lockDir())).toBe(false);
      const before = creations();
      await expectConverges('after the interrupted upload');
      expect(creations()).toEqual(plusOne(before, ['traefik']));
    }, 90_000);

    it('during a bootstrap wait: exit 130 saying so', async () => {
      // A new Cloudflare token recreates traefik, which now takes long to turn healthy: the run waits.
      const cf = `${(typed.CLOUDFLARE_API_TOKEN as string).slice(0, -4)}WXYZ`;
      ok(await op.secrets(['set', 'CLOUDFLARE_API_TOKEN'], `${cf}\n`), 'secrets set CLOUDFLARE_API_TOKEN');
      const timeline = host.sim.opts.timeline as Record<string, ServiceTimeline>;
      const traefik = timeline.traefik;
      timeline.traefik = { healthyAfterMs: 60_000 };
      let r: CliRun;
      try {
        const run = op.startProvision([]);
        await run.line(/^start\s+traefik/);
        signalRun(run, 'SIGINT');
        r = await op.finish(run, 'provision interrupted during a bootstrap wait');
      } finally {
        timeline.traefik = traefik as ServiceTimeline;
      }
      expect(r.exitCode, r.stderr).toBe(130);
      expect(r.stderr).toMatch(
        /interrupted by SIGINT during bootstrap: the new bundle is live; services already started keep running; the host lock was released; re-run to converge/,
      );
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, interrupted: 'SIGINT', exitCode: 130 });
      expect(existsSync(lockDir())).toBe(false);
      await expectConverges('after the interrupted wait');
      expect(runsWith('traefik', 'CF_DNS_API_TOKEN', cf)).toBe(true);
    }, 90_000);

    it('during the token step: exit 130 saying so', async () => {
      // The token line lost (a hand edit, a failed `bifrost token`): the bootstrap runs to mint it.
      writeFileSync(secretsEnv(), readFileSync(secretsEnv(), 'utf8').replace(/^NB_IDP_MGMT_TOKEN=.*\n/m, ''));
      const opts = host.sim.opts as { tokenFailures?: number };
      opts.tokenFailures = 1_000_000;
      let r: CliRun;
      try {
        const run = op.startProvision([]);
        await run.line(/netbird-mgmt-token: attempt 1 failed/);
        signalRun(run, 'SIGINT');
        r = await op.finish(run, 'provision interrupted during the token step');
      } finally {
        opts.tokenFailures = 0;
      }
      expect(r.exitCode, r.stderr).toBe(130);
      expect(r.stderr).toMatch(/interrupted by SIGINT during bootstrap/);
      expect(tokenLines()).toHaveLength(0);
      expect(existsSync(lockDir())).toBe(false);
      await expectConverges('after the interrupted token step');
      expect(tokenLines()).toHaveLength(1);
    }, 90_000);
  });

  it('leaves no lock, staging or dead directory beside the bundle', () => {
    expect(readdirSync(join(host.remoteDir, '..')).sort()).toEqual(['bifrost']);
  });
});
