/**
 * scripts/bifrost.ts end to end: the real script over a real loopback sshd, with the docker simulator
 * served on a unix socket as the host's docker CLI, on a bundle first deployed by provision-bifrost.
 * status, logs (redacted), token, render, verify and unlock, with canary leak checks on every output.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvFile } from '../scripts/lib/bifrost/env-file.ts';
import { currentHolder } from '../scripts/lib/bifrost/lock.ts';
import type { DockerSimulator } from '../scripts/lib/sandbox/docker-simulator.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { type BifrostTestHost, holdHostLock, startBifrostTestHost } from './harness/bifrost-host.ts';
import { findSshd, type SshdServer, sshCliArgs } from './harness/sshd.ts';
import { referenceTimeline } from './helpers/bifrost-fixture.ts';
import { findLeaks } from './helpers/bootstrap-fixture.ts';
import { CollectedOutputs } from './helpers/collected-outputs.ts';
import { type CliRun, runScript } from './helpers/run-cli.ts';

const sshd = findSshd('the bifrost recovery commands over a loopback sshd');

describe.skipIf(!sshd)('bifrost recovery commands', () => {
  let host: BifrostTestHost;
  let server: SshdServer;
  let sim: DockerSimulator;
  let remoteDir: string;
  let bundle: string;
  let docker: string;
  let home: string;
  let tmp: string;
  const values = sampleSecrets();
  /** Every output of every run, for the leak check at the end, by the way it was collected. */
  const outputs = new CollectedOutputs();
  const provisioned = outputs.collector('provision');
  const commands = outputs.collector('bifrost');
  const own = outputs.collector("a test's own run");

  beforeAll(async () => {
    const reference = referenceTimeline(5);
    // Containers print secrets in their logs (a debug line, a connection string): logs must redact them.
    const timeline = {
      ...reference.timeline,
      'netbird-server': {
        ...reference.timeline['netbird-server'],
        logs: [
          'netbird-server: starting',
          `netbird-server: relay auth secret=${values.NB_RELAY_SECRET}`,
          `netbird-server: idp token ${Buffer.from(values.AUTHENTIK_TOKEN ?? '').toString('base64')}`,
          'netbird-server: ready',
          // Terminal escapes from a container: a title change, a cleared screen, a C1 CSI.
          'netbird-server: title \x1b]0;pwned\x07 clear \x1b[2J csi \x9b31m end',
        ],
      },
    };
    host = await startBifrostTestHost(sshd as string, { prefix: 'sf-recovery-', timeline });
    ({ server, sim, remoteDir, bundle, docker, home, tmp } = host);
    const first = await provision();
    expect(first.stderr, first.stderr).not.toMatch(/^error:/m);
    expect(first.exitCode).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  const env = (extra: Record<string, string> = {}) => ({
    PATH: process.env.PATH ?? '',
    HOME: home,
    TMPDIR: tmp,
    NO_COLOR: '1',
    // The engine's deadlines and backoffs on a shortened timeline.
    SECRETS_FLOW_TIME_SCALE: '0.05',
    ...values,
    ...extra,
  });

  const hostArgs = () => [...sshCliArgs(server), '--remote-dir', remoteDir];

  const dockerArgs = () => ['--docker', docker, '--compose', `${docker} compose`];

  /** provision-bifrost from the environment; `without` keys are left out of it (not in the SOPS file). */
  function provision(without: string[] = [], extra: string[] = []): Promise<CliRun> {
    const all = env();
    for (const key of without) delete all[key as keyof typeof all];
    return runScript(
      'provision-bifrost.ts',
      [...hostArgs(), ...dockerArgs(), '--bundle', bundle, '--from-env', ...extra],
      all,
    ).then((r) => {
      provisioned(r);
      return r;
    });
  }

  async function bifrost(command: string[], extra: string[] = [], input?: string): Promise<CliRun> {
    const r = await runScript(
      'bifrost.ts',
      [...command, ...hostArgs(), ...dockerArgs(), ...extra],
      env(),
      input === undefined ? {} : { input },
    );
    commands(r);
    return r;
  }

  const hostSecretsEnv = () => readFileSync(join(remoteDir, '.secrets.env'), 'utf8');
  const tokenLines = () => hostSecretsEnv().match(/^NB_IDP_MGMT_TOKEN=.*$/gm) ?? [];
  const akShellCalls = (since: number) =>
    sim.calls.filter((c) => c.startedAt >= since && c.argv.includes('exec') && c.argv.includes('ak')).length;

  it('status: every service running and healthy, as a table and as JSON', async () => {
    const table = await bifrost(['status']);
    expect(table.stderr, table.stderr).not.toMatch(/^error:/m);
    expect(table.exitCode).toBe(0);
    for (const service of ['traefik', 'authentik-server', 'netbird-server', 'netbird-agent']) {
      expect(table.stdout).toMatch(new RegExp(`^${service}\\s+running\\s+healthy`, 'm'));
    }
    expect(table.stdout).toContain('all 8 running services are healthy');

    const since = sim.now();
    const json = await bifrost(['status', '--json']);
    expect(json.exitCode).toBe(0);
    const result = JSON.parse(json.stdout);
    expect(result.ok).toBe(true);
    expect(result.services).toHaveLength(8);
    for (const s of result.services)
      expect(s).toMatchObject({ state: 'running', health: 'healthy', ready: true });
    // One docker inspect of all of them.
    const inspects = sim.calls.filter((c) => c.startedAt >= since && c.argv[1] === 'inspect');
    expect(inspects).toHaveLength(1);
    expect(inspects[0]?.argv.slice(2)).toHaveLength(8);
  }, 30_000);

  it('logs: prints the tail with the secrets redacted; an unknown service is refused listing the known ones', async () => {
    const since = sim.now();
    const r = await bifrost(['logs', 'netbird-server', '--tail', '5']);
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('netbird-server: ready');
    expect(r.stdout).toContain('relay auth secret=[REDACTED:NB_RELAY_SECRET]');
    // Shown, not obeyed.
    expect(r.stdout).toContain('title \\x1b]0;pwned\\x07 clear \\x1b[2J csi \\u009b31m end');
    for (const c of ['\x1b', '\x07', '\x9b']) expect(r.stdout + r.stderr).not.toContain(c);
    expect(r.stdout).toMatch(/idp token \[REDACTED:AUTHENTIK_TOKEN\]/);
    expect(findLeaks(r.stdout + r.stderr, values)).toEqual([]);
    const calls = sim.calls.filter((c) => c.startedAt >= since && c.argv[1] === 'logs');
    expect(calls.map((c) => c.argv.slice(1))).toEqual([['logs', '--tail', '5', 'netbird-server']]);

    const unknown = await bifrost(['logs', 'netbird-mgmt']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('unknown service "netbird-mgmt"');
    expect(unknown.stderr).toContain('netbird-server');
    expect(unknown.stderr).toContain('authentik-postgres');
  }, 30_000);

  it("logs and status: redacted with the operator's values when the host lost its env files; without them logs refuses and status hides the checks", async () => {
    // The host keeps running containers that print the values, with neither env file left to say them.
    const moved = ['.secrets.env', '.env'].map((f) => join(remoteDir, f));
    for (const f of moved) renameSync(f, `${f}.away`);
    try {
      const r = await bifrost(['logs', 'netbird-server']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain('relay auth secret=[REDACTED:NB_RELAY_SECRET]');
      expect(r.stdout).toContain('source  the process environment');
      expect(findLeaks(r.stdout + r.stderr, values)).toEqual([]);

      // No values on the operator's side: no SOPS file there, none in the environment.
      const bare = env();
      for (const key of Object.keys(values)) delete bare[key as keyof typeof bare];
      const since = sim.now();
      const missing = join(host.root, 'no-such.sops.yaml');
      const blind = await runScript(
        'bifrost.ts',
        ['logs', 'netbird-server', ...hostArgs(), ...dockerArgs(), '--secrets-file', missing],
        bare,
      );
      own(blind);
      expect(blind.exitCode, blind.stderr).toBe(2);
      expect(blind.stderr).toContain(`secrets file ${missing} not found`);
      expect(blind.stderr).toMatch(/^hint: .*--secrets-file F with its age key.*--from-env/m);
      expect(blind.stdout).not.toContain('netbird-server:');
      expect(sim.calls.filter((c) => c.startedAt >= since && c.argv[1] === 'logs')).toEqual([]);
      // --from-env with an environment that lacks the values is refused the same way.
      const empty = await runScript(
        'bifrost.ts',
        ['logs', 'netbird-server', ...hostArgs(), ...dockerArgs(), '--from-env'],
        bare,
      );
      own(empty);
      expect(empty.exitCode, empty.stderr).toBe(2);
      expect(empty.stderr).toMatch(/the process environment lacks .*NB_RELAY_SECRET/);
      // token, proxy-token and render print what the containers answer: refused the same way, before connecting.
      const render = await runScript(
        'bifrost.ts',
        ['render', ...hostArgs(), ...dockerArgs(), '--secrets-file', missing],
        bare,
      );
      own(render);
      expect(render.exitCode, render.stderr).toBe(2);
      expect(render.stderr).toContain('the secret values are needed to redact what the host prints');
      expect(render.stdout).not.toContain('target');

      const status = await runScript(
        'bifrost.ts',
        ['status', ...hostArgs(), ...dockerArgs(), '--secrets-file', missing],
        bare,
      );
      own(status);
      expect(status.exitCode, status.stderr).toBe(0);
      expect(status.stderr).toMatch(/^warning: health-check output is not shown: .*not found/m);
      expect(status.stdout).toMatch(/^netbird-server\s+running\s+healthy/m);
    } finally {
      for (const f of moved) renameSync(`${f}.away`, f);
    }
  }, 60_000);

  it('verify: all the same after a deploy; a changed local bundle file differs and exits 1', async () => {
    const same = await bifrost(['verify', '--json'], ['--bundle', bundle, '--from-env']);
    expect(same.stderr, same.stderr).not.toMatch(/^error:|warning:/m);
    expect(same.exitCode).toBe(0);
    const result = JSON.parse(same.stdout);
    expect(result.ok).toBe(true);
    expect(result.files.map((f: { path: string }) => f.path)).toEqual(
      expect.arrayContaining(['docker-compose.yml', 'traefik/traefik.yml', '.secrets.env', '.env']),
    );
    expect(result.files.every((f: { status: string }) => f.status === 'same')).toBe(true);
    expect(result.secrets.length).toBeGreaterThanOrEqual(6);
    expect(result.secrets.every((s: { status: string }) => s.status === 'same')).toBe(true);

    const file = join(bundle, 'traefik/dynamic.yml');
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, `${original}# changed locally\n`);
    try {
      const differs = await bifrost(['verify'], ['--bundle', bundle, '--from-env']);
      expect(differs.exitCode).toBe(1);
      expect(differs.stdout).toMatch(/^traefik\/dynamic\.yml\s+differs\s+changed locally/m);
      expect(differs.stdout).toMatch(/^docker-compose\.yml\s+same/m);
      expect(differs.stdout).toContain('just bifrost-up');
    } finally {
      writeFileSync(file, original);
    }
  }, 30_000);

  it('token: mints NB_IDP_MGMT_TOKEN again with one ak shell call each run, leaving exactly one line', async () => {
    // A stale token on the host, as after Authentik's database was restored.
    writeFileSync(
      join(remoteDir, '.secrets.env'),
      hostSecretsEnv().replace(
        /^NB_IDP_MGMT_TOKEN=.*$/m,
        'NB_IDP_MGMT_TOKEN=stale-token-from-an-old-database',
      ),
    );
    const creations = new Map(sim.creations);
    const stale = hostSecretsEnv();
    const sinceDry = sim.now();
    const dry = await bifrost(['token', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain('would mint NB_IDP_MGMT_TOKEN anew and replace its line');
    expect(dry.stdout).toMatch(/^ {2}netbird-mgmt-token: would run$/m);
    // The recording run: the engine's own commands, none run (no ak shell call reached the simulator).
    expect(dry.stdout).toMatch(/^ {2}\$ .* exec -i authentik-server ak shell$/m);
    expect(akShellCalls(sinceDry)).toBe(0);
    expect(hostSecretsEnv()).toBe(stale);

    const since = sim.now();
    const r = await bifrost(['token', '--json']);
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    expect(akShellCalls(since)).toBe(1);
    expect(tokenLines()).toHaveLength(1);
    expect(parseEnvFile(hostSecretsEnv()).get('NB_IDP_MGMT_TOKEN')).toBe(values.AUTHENTIK_TOKEN);
    expect(statSync(join(remoteDir, '.secrets.env')).mode & 0o777).toBe(0o600);
    const result = JSON.parse(r.stdout);
    expect(result.token.changed).toBe(true);
    // The config was rendered with the right token already: nothing to recreate.
    expect(result.configChanged).toBe(false);
    expect(result.recreated).toBe(false);
    expect(sim.creations).toEqual(creations);
    expect(r.stdout).not.toContain('stale-token-from-an-old-database');

    // Asked again with the token in place: minted again (not "already set"), still one line.
    const minted = hostSecretsEnv();
    const sinceAgain = sim.now();
    const again = await bifrost(['token']);
    expect(again.stderr, again.stderr).not.toMatch(/^error:/m);
    expect(again.exitCode).toBe(0);
    expect(akShellCalls(sinceAgain)).toBe(1);
    expect(again.stdout).toContain('NB_IDP_MGMT_TOKEN minted: the same value as before');
    expect(tokenLines()).toHaveLength(1);
    expect(hostSecretsEnv()).toBe(minted);
  }, 30_000);

  it('token: a pre-flight that fails (no such compose command) changes nothing on the host', async () => {
    const path = join(remoteDir, '.secrets.env');
    const original = hostSecretsEnv();
    // A hand edit the engine would render into env/traefik.env, were it to write before its pre-flight.
    const edited = original.replace(/^CF_DNS_API_TOKEN=.*$/m, 'CF_DNS_API_TOKEN=edited-by-hand-on-the-host');
    writeFileSync(path, edited);
    const traefikEnv = readFileSync(join(remoteDir, 'env/traefik.env'), 'utf8');
    const missingCompose = join(host.root, 'no-such-compose');
    try {
      const since = sim.now();
      const r = await runScript(
        'bifrost.ts',
        ['token', ...hostArgs(), '--docker', docker, '--compose', missingCompose],
        env(),
      );
      own(r);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`docker compose is not available on ssh `);
      expect(r.stderr).toContain(`${missingCompose} version failed`);
      expect(r.stderr).toMatch(/^hint: .*--compose/m);
      // Byte for byte: the token line was never taken out, and no env file was rendered.
      expect(hostSecretsEnv()).toBe(edited);
      expect(readFileSync(join(remoteDir, 'env/traefik.env'), 'utf8')).toBe(traefikEnv);
      expect(akShellCalls(since)).toBe(0);
      expect(existsSync(`${remoteDir}.lock`)).toBe(false);
      // verify still finds the token on the host.
      const verify = await bifrost(['verify'], ['--bundle', bundle, '--from-env']);
      expect(verify.stdout).not.toMatch(/^NB_IDP_MGMT_TOKEN\s+missing on host/m);
    } finally {
      writeFileSync(path, original);
    }
  }, 30_000);

  it('status, logs, verify, token and render say plainly that --remote-dir holds no bundle (exit 1), creating nothing', async () => {
    const missing = join(host.root, 'remote', 'nowhere', 'bifrost');
    const notBundle = join(host.root, 'remote');
    const at = (dir: string, command: string[], extra: string[] = []) =>
      runScript(
        'bifrost.ts',
        [...command, ...sshCliArgs(server), '--remote-dir', dir, ...dockerArgs(), ...extra],
        env(),
      ).then((r) => {
        own(r);
        return r;
      });
    for (const command of [['status'], ['logs', 'traefik'], ['token'], ['render'], ['token', '--dry-run']]) {
      const r = await at(missing, command);
      expect(r.exitCode, `${command.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`${missing} does not exist on ssh `);
      expect(r.stderr).toMatch(
        /^hint: check --remote-dir \(default \/etc\/bifrost\), or provision the host first: just bifrost-up HOST$/m,
      );
      expect(r.stdout).not.toContain('healthy');
    }
    const verify = await at(missing, ['verify'], ['--bundle', bundle, '--from-env']);
    expect(verify.exitCode).toBe(1);
    expect(verify.stderr).toContain(`${missing} does not exist on ssh `);
    // The lock of a mutating command would have made the missing parent: it was never taken.
    expect(existsSync(join(host.root, 'remote', 'nowhere'))).toBe(false);

    const status = await at(notBundle, ['status']);
    expect(status.exitCode).toBe(1);
    expect(status.stderr).toContain(`${notBundle} on ssh `);
    expect(status.stderr).toContain('holds no docker-compose.yml');
    expect(status.stderr).not.toContain('running services are healthy');
  }, 60_000);

  it('render: an unchanged config recreates nothing; a changed NB_RELAY_SECRET recreates netbird-server only', async () => {
    const creations = new Map(sim.creations);
    const unchanged = await bifrost(['render', '--json']);
    expect(unchanged.stderr, unchanged.stderr).not.toMatch(/^error:/m);
    expect(unchanged.exitCode).toBe(0);
    expect(JSON.parse(unchanged.stdout)).toMatchObject({ ok: true, configChanged: false, recreated: false });
    expect(sim.creations).toEqual(creations);

    const before = hostSecretsEnv();
    const config = readFileSync(join(remoteDir, 'netbird/config.yaml'), 'utf8');
    writeFileSync(
      join(remoteDir, '.secrets.env'),
      before.replace(/^NB_RELAY_SECRET=.*$/m, 'NB_RELAY_SECRET=edited-by-hand-on-the-host-0123456789'),
    );
    try {
      const changed = await bifrost(['render', '--json']);
      expect(changed.stderr, changed.stderr).not.toMatch(/^error:/m);
      expect(changed.exitCode).toBe(0);
      expect(JSON.parse(changed.stdout)).toMatchObject({ ok: true, configChanged: true, recreated: true });
      const expected = new Map(creations);
      expected.set('netbird-server', (creations.get('netbird-server') ?? 0) + 1);
      expect(sim.creations).toEqual(expected);
      expect(readFileSync(join(remoteDir, 'netbird/config.yaml'), 'utf8')).not.toBe(config);

      // verify notices the hand edit that provisioning's manifest cannot see.
      const verify = await bifrost(['verify'], ['--bundle', bundle, '--from-env']);
      expect(verify.exitCode).toBe(1);
      expect(verify.stdout).toMatch(/^\.secrets\.env\s+differs\s+edited on the host/m);
    } finally {
      writeFileSync(join(remoteDir, '.secrets.env'), before);
    }
    const restored = await bifrost(['render']);
    expect(restored.exitCode).toBe(0);
    expect(readFileSync(join(remoteDir, 'netbird/config.yaml'), 'utf8')).toBe(config);
  }, 45_000);

  it('render needs NB_IDP_MGMT_TOKEN only when the host template names it', async () => {
    const before = hostSecretsEnv();
    const templatePath = join(remoteDir, 'netbird/config.yaml.tmpl');
    const template = readFileSync(templatePath, 'utf8');
    writeFileSync(join(remoteDir, '.secrets.env'), before.replace(/^NB_IDP_MGMT_TOKEN=.*\n/m, ''));
    try {
      // The shipped template names no token: rendering does not wait for one.
      const free = await bifrost(['render', '--json']);
      expect(free.exitCode, free.stderr).toBe(0);
      expect(JSON.parse(free.stdout)).toMatchObject({ ok: true, configChanged: false });
      // A template that names it: refused (exit 2) until the token step has run, nothing changed.
      writeFileSync(templatePath, `${template}idpToken: "\${NB_IDP_MGMT_TOKEN}"\n`);
      const refused = await bifrost(['render']);
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(/holds no NB_IDP_MGMT_TOKEN, which the host's NetBird template names/);
      expect(refused.stderr).toMatch(/hint: mint it first: just bifrost-token HOST/);
    } finally {
      writeFileSync(templatePath, template);
      writeFileSync(join(remoteDir, '.secrets.env'), before);
    }
  }, 45_000);

  it('unlock: says when there is no lock; shows and clears a held one with --yes, not without', async () => {
    const none = await bifrost(['unlock']);
    expect(none.exitCode).toBe(0);
    expect(none.stdout).toContain('no lock');

    const lockDir = holdHostLock(host, 3_600_000);
    try {
      // A mutating command stops at the lock, naming its holder and what the operator can do.
      const blocked = await bifrost(['render']);
      expect(blocked.exitCode).toBe(1);
      expect(blocked.stderr).toContain('alice@laptop');
      expect(blocked.stderr).toMatch(/STALE lock/);
      expect(blocked.stderr).toMatch(/^hint: .*clear it with `just bifrost-unlock HOST`, then run again$/m);
      expect(blocked.stderr).not.toContain('breakHostLock');

      const unconfirmed = await bifrost(['unlock']);
      expect(unconfirmed.exitCode).toBe(2);
      expect(unconfirmed.stdout).toContain('held by alice@laptop (pid 4242)');
      expect(unconfirmed.stderr).toContain('--yes');
      expect(existsSync(lockDir)).toBe(true);

      const cleared = await bifrost(['unlock', '--yes', '--json']);
      expect(cleared.stderr, cleared.stderr).not.toMatch(/^error:/m);
      expect(cleared.exitCode).toBe(0);
      expect(JSON.parse(cleared.stdout)).toMatchObject({
        ok: true,
        cleared: true,
        holder: { holder: 'alice@laptop' },
      });
      expect(existsSync(lockDir)).toBe(false);
    } finally {
      execFileSync('rm', ['-rf', lockDir]);
    }
  }, 30_000);

  it('unlock never clears a lock whose holder runs on this machine, even with --yes; one of another machine it does', async () => {
    const lockDir = `${remoteDir}.lock`;
    // A real process of this machine as the holder: a run still uploading.
    const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
    const pid = sleeper.pid as number;
    const leave = (holder: object) => {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'holder.json'), JSON.stringify(holder));
      if (process.getuid?.() === 0) execFileSync('chown', ['-R', server.user, lockDir]);
    };
    try {
      const { pidStart: _, ...here } = currentHolder('provision-bifrost');
      leave({ ...here, pid });
      const refused = await bifrost(['unlock', '--yes']);
      expect(refused.exitCode, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(
        `not clearing the lock: its holder, pid ${pid} (provision-bifrost), is running on this machine`,
      );
      expect(refused.stderr).toMatch(new RegExp(`^hint: .*kill ${pid}`, 'm'));
      expect(JSON.parse(readFileSync(join(lockDir, 'holder.json'), 'utf8')).pid).toBe(pid);
      execFileSync('rm', ['-rf', lockDir]);

      // The same pid on another machine proves nothing here: the operator may clear it.
      leave({ ...here, pid, host: 'laptop', machine: 'another-machine-id' });
      const cleared = await bifrost(['unlock', '--yes']);
      expect(cleared.exitCode, cleared.stderr).toBe(0);
      expect(existsSync(lockDir)).toBe(false);
    } finally {
      sleeper.kill('SIGKILL');
      execFileSync('rm', ['-rf', lockDir]);
    }
  }, 30_000);

  it('a missing container: status exits 1 naming it; token stops before touching .secrets.env', async () => {
    const worker = sim.containers.get('authentik-worker');
    expect(worker).toBeDefined();
    sim.containers.delete('authentik-worker');
    try {
      const status = await bifrost(['status']);
      expect(status.exitCode).toBe(1);
      expect(status.stdout).toMatch(/^authentik-worker\s+missing/m);
      expect(status.stderr).toContain('not healthy: authentik-worker (missing)');

      const before = hostSecretsEnv();
      const since = sim.now();
      const token = await bifrost(['token']);
      expect(token.exitCode).toBe(1);
      expect(token.stderr).toContain('authentik-worker is missing');
      expect(akShellCalls(since)).toBe(0);
      expect(hostSecretsEnv()).toBe(before);
      // The lock was released on the way out.
      expect(existsSync(`${remoteDir}.lock`)).toBe(false);
    } finally {
      if (worker) sim.containers.set('authentik-worker', worker);
    }
  }, 30_000);

  it("proxy-token: refuses the SOPS file's token; mints a new one in place of a minted one, the proxy recreated on it", async () => {
    const proxyLines = () => hostSecretsEnv().match(/^NB_PROXY_TOKEN=.*$/gm) ?? [];
    const tokenCreates = () =>
      sim.calls.filter((c) => c.argv.includes('exec') && c.argv.includes('/go/bin/netbird-server')).length;
    // The host's token is the SOPS file's: it wins, so a new one is the operator's to set there.
    const before = hostSecretsEnv();
    const refused = await bifrost(['proxy-token']);
    expect(refused.exitCode, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/holds the NB_PROXY_TOKEN of the SOPS file, which wins over a minted one/);
    expect(refused.stderr).toMatch(/hint: .*just secrets-set NB_PROXY_TOKEN/);
    expect(hostSecretsEnv()).toBe(before);
    expect(tokenCreates()).toBe(0);

    // Without one in the SOPS file, the provision's bootstrap mints it.
    const minted = await provision(['NB_PROXY_TOKEN']);
    expect(minted.stderr, minted.stderr).not.toMatch(/^error:/m);
    expect(sim.proxyTokens).toHaveLength(1);
    expect(proxyLines()).toEqual([`NB_PROXY_TOKEN=${sim.proxyTokens[0]}`]);

    const mintedText = hostSecretsEnv();
    const dry = await bifrost(['proxy-token', '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would mint NB_PROXY_TOKEN anew/);
    expect(dry.stdout).toMatch(/^ {2}netbird-proxy-token: would run$/m);
    expect(hostSecretsEnv()).toBe(mintedText);
    expect(sim.proxyTokens).toHaveLength(1);

    const proxyId = sim.containers.get('netbird-proxy')?.id;
    const r = await bifrost(['proxy-token', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(sim.proxyTokens).toHaveLength(2);
    const [old, now] = sim.proxyTokens as [string, string];
    expect(proxyLines()).toEqual([`NB_PROXY_TOKEN=${now}`]);
    expect(statSync(join(remoteDir, '.secrets.env')).mode & 0o777).toBe(0o600);
    expect(sim.containers.get('netbird-proxy')?.id).not.toBe(proxyId);
    expect(sim.containers.get('netbird-proxy')?.env.NB_PROXY_TOKEN).toBe(now);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, command: 'proxy-token', recreated: true });
    for (const out of [minted, dry, r].flatMap((x) => [x.stdout, x.stderr])) {
      expect(out).not.toContain(old);
      expect(out).not.toContain(now);
    }
    // A later provision keeps the new token: nothing to send, nothing to run.
    const kept = await provision(['NB_PROXY_TOKEN'], ['--json']);
    expect(JSON.parse(kept.stdout).upload.changed).toEqual([]);
    expect(JSON.parse(kept.stdout).bootstrap).toBe('skipped');
    expect(proxyLines()).toEqual([`NB_PROXY_TOKEN=${now}`]);
    // Back to the SOPS file's token, which wins again.
    const back = await provision();
    expect(back.exitCode, back.stderr).toBe(0);
    expect(proxyLines()).toEqual([`NB_PROXY_TOKEN=${values.NB_PROXY_TOKEN}`]);
    expect(sim.proxyTokens).toHaveLength(2);
  }, 60_000);

  it("status shows a failing health check's output only when the operator's values are known", async () => {
    // Last among the commands: traefik stays unhealthy.
    sim.turnUnhealthy('traefik');
    const known = await bifrost(['status']);
    expect(known.exitCode).toBe(1);
    expect(known.stdout).toMatch(/^traefik\s+running\s+unhealthy.*last check: connection refused/m);

    const bare = env();
    for (const key of Object.keys(values)) delete bare[key as keyof typeof bare];
    const missing = join(host.root, 'no-such.sops.yaml');
    const blind = await runScript(
      'bifrost.ts',
      ['status', ...hostArgs(), ...dockerArgs(), '--secrets-file', missing],
      bare,
    );
    own(blind);
    expect(blind.exitCode).toBe(1);
    expect(blind.stdout).toMatch(/^traefik\s+running\s+unhealthy.*last check: \(not shown\)/m);
    expect(blind.stdout + blind.stderr).not.toContain('connection refused');
  }, 30_000);

  it('no secret value in any output, recorded argv or file left on this machine', ({ task }) => {
    for (const text of outputs.read(task)) expect(findLeaks(text, values)).toEqual([]);
    expect(sim.calls.length, 'the docker calls the runs made').toBeGreaterThan(0);
    for (const call of sim.calls) expect(findLeaks(call.argv.join(' '), values)).toEqual([]);
    expect(readdirSync(tmp).filter((n) => !n.startsWith('tsx-'))).toEqual([]);
    expect(readdirSync(home).filter((n) => n !== '.ssh')).toEqual([]);
  });
});
