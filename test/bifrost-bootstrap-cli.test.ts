/**
 * bifrost-bootstrap as operators run it: usage errors, --dry-run locally and over a real loopback sshd,
 * host-key refusal, and the pre-flight failures (no compose, missing secrets) with their exit codes.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSshd, type SshdServer, sshCliArgs, startSshd } from './harness/sshd.ts';
import { bifrostSecrets, makeBundle } from './helpers/bifrost-fixture.ts';
import { alive } from './helpers/process.ts';
import { runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

const SCRIPT = 'bifrost-bootstrap.ts';
const baseEnv = () => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: tempDir('sf-home-'),
  NO_COLOR: '1',
});

/** A docker CLI whose `compose version` answers as given; anything else fails loudly. */
function fakeDocker(composeWorks: boolean): string {
  const dir = tempDir('sf-docker-');
  const bin = join(dir, 'docker');
  writeFileSync(
    bin,
    `#!/bin/sh\nif [ "$1 $2" = "compose version" ]; then ${composeWorks ? 'echo "Docker Compose version v2"; exit 0' : 'echo "docker: unknown command: compose" >&2; exit 1'}; fi\necho "unexpected: $*" >&2\nexit 99\n`,
    { mode: 0o755 },
  );
  return bin;
}

/** A check-bundle problem: the passthrough router names a service that is not defined. */
function plantUnsound(dir: string): void {
  const file = join(dir, 'traefik/dynamic.yml');
  const text = readFileSync(file, 'utf8');
  expect(text).toContain('      service: netbird-proxy\n');
  writeFileSync(file, text.replace('      service: netbird-proxy\n', '      service: netbird-proxy-tls\n'));
}

describe('bifrost-bootstrap CLI', () => {
  it('--help documents the options', async () => {
    const r = await runScript(SCRIPT, ['--help'], baseEnv());
    expect(r.exitCode).toBe(0);
    for (const flag of [
      '--local',
      '--host',
      '--known-hosts',
      '--dir',
      '--docker',
      '--compose',
      '--dry-run',
      '--json',
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('needs exactly one of --local and --host (exit 2)', async () => {
    for (const args of [[], ['--local', '--host', 'h']]) {
      const r = await runScript(SCRIPT, args, baseEnv());
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/--local \(this machine\) or --host H/);
    }
  });

  it('--dry-run prints every step and runs nothing; gated steps say why they would be skipped', async () => {
    const b = makeBundle(bifrostSecrets({ NB_PROXY_TOKEN: undefined, NB_BIFROST_SETUP_KEY: undefined }));
    const r = await runScript(
      SCRIPT,
      ['--local', '--dir', b.dir, '--dry-run', '--docker', '/nonexistent/docker'],
      baseEnv(),
    );
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // The commands come from running the plan against a recording executor: a fresh host (no record
    // of earlier inputs) gets --force-recreate, and services ready together share one `up`.
    const up = `$ docker compose -f ${b.dir}/docker-compose.yml --project-directory ${b.dir} up -d --no-deps --force-recreate`;
    const upLines = r.stdout.split('\n').filter((l) => l.trim().startsWith(up));
    expect(
      upLines.map((l) =>
        l
          .trim()
          .slice(up.length + 1)
          .split(' ')
          .sort(),
      ),
    ).toEqual(
      expect.arrayContaining([['authentik-postgres', 'netbird-server', 'traefik'], ['netbird-proxy']]),
    );
    // Every service is started by exactly one up; the first up starts NetBird beside Authentik's database.
    expect(
      upLines
        .flatMap((l) =>
          l
            .trim()
            .slice(up.length + 1)
            .split(' '),
        )
        .sort(),
    ).toEqual([
      'authentik-postgres',
      'authentik-server',
      'authentik-worker',
      'netbird-dashboard',
      'netbird-proxy',
      'netbird-server',
      'traefik',
    ]);
    expect(r.stdout).toContain('authentik-migrate (after authentik-postgres): would run');
    expect(r.stdout).toContain('$ /nonexistent/docker exec -i authentik-server ak shell');
    // Without NB_PROXY_TOKEN the proxy's token is minted as NetBird's setup does, and the proxy started.
    expect(r.stdout).toContain('netbird-config: would run');
    expect(r.stdout).toContain('netbird-proxy-token (after netbird-server): would run');
    expect(r.stdout).toContain(
      '$ /nonexistent/docker exec netbird-server /go/bin/netbird-server token create --name bifrost-proxy --config /etc/netbird/config.yaml',
    );
    expect(r.stdout).toContain('netbird-proxy (after netbird-proxy-token): would run');
    expect(r.stdout).toContain(
      'netbird-agent (after netbird-server): skipped, NB_BIFROST_SETUP_KEY is not set',
    );
    // Files are read, never written: the rendered ones are listed instead.
    expect(r.stdout).toMatch(new RegExp(`files it would write:\\n  ${b.dir}/env/`));
  });

  it('exits 1 with a hint when compose is not available', async () => {
    const b = makeBundle();
    const r = await runScript(
      SCRIPT,
      ['--local', '--dir', b.dir, '--docker', 'unused', '--compose', `${fakeDocker(false)} compose`],
      baseEnv(),
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/docker compose is not available/);
    expect(r.stderr).toMatch(/hint: install Docker with the compose plugin/);
  });

  it('a `compose version` that hangs is reported as timed out, with the time it was given', async () => {
    const b = makeBundle();
    const dir = tempDir('sf-docker-');
    const bin = join(dir, 'docker');
    writeFileSync(bin, `#!/bin/sh\necho $$ > ${dir}/pid\nexec sleep 300\n`, { mode: 0o755 });
    const r = await runScript(
      SCRIPT,
      ['--local', '--dir', b.dir, '--docker', 'unused', '--compose', `${bin} compose`],
      { ...baseEnv(), SECRETS_FLOW_TIME_SCALE: '0.05' },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /^error: docker compose is not available on \S+ \(\S+docker compose version timed out after 1\.5 s\)$/m,
    );
    // The hung process did not outlive the run.
    expect(alive(Number(readFileSync(join(dir, 'pid'), 'utf8')))).toBe(false);
  });

  it('exits 2 on a bundle check-bundle refuses, naming each problem, before any docker command', async () => {
    const b = makeBundle();
    plantUnsound(b.dir);
    const calls = join(tempDir('sf-calls-'), 'calls');
    const docker = join(dirname(calls), 'docker');
    writeFileSync(docker, `#!/bin/sh\necho "$*" >> ${calls}\nexit 0\n`, { mode: 0o755 });
    const r = await runScript(
      SCRIPT,
      ['--local', '--dir', b.dir, '--compose', `${docker} compose`],
      baseEnv(),
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`the bundle local:${b.dir} fails check-bundle (2 problem(s))`);
    expect(r.stderr).toMatch(
      /traefik\/dynamic\.yml:\d+: \[traefik-service\] tcp router proxy-passthrough: its service netbird-proxy-tls is not defined/,
    );
    // With no tcp service behind it, the proxy has no passthrough either: named as such.
    expect(r.stderr).toMatch(
      /docker-compose\.yml:\d+: \[reverse-proxy\] netbird-proxy: no Traefik TCP router passes TLS/,
    );
    expect(r.stderr).toMatch(/hint: fix each as its line says/);
    expect(existsSync(calls), 'no docker command ran').toBe(false);
  });

  it('exits 2 listing every missing secret, before starting anything', async () => {
    const b = makeBundle(bifrostSecrets({ CF_DNS_API_TOKEN: undefined, NB_RELAY_SECRET: undefined }));
    rmSync(join(b.dir, '.env'));
    const r = await runScript(
      SCRIPT,
      ['--local', '--dir', b.dir, '--compose', `${fakeDocker(true)} compose`],
      baseEnv(),
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('.secrets.env: CF_DNS_API_TOKEN is missing');
    expect(r.stderr).toContain('.secrets.env: NB_RELAY_SECRET is missing');
    expect(r.stderr).toContain('.env: the file is missing');
    expect(r.stderr).toMatch(/hint: .*provision-bifrost/);
    expect(r.stdout).not.toContain('unexpected');
  });
});

const sshd = findSshd('bifrost-bootstrap over SSH');

describe.skipIf(!sshd)('bifrost-bootstrap over SSH to a loopback sshd', () => {
  let server: SshdServer;
  beforeAll(async () => {
    server = await startSshd(sshd as string);
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** The bundle must be readable by the test user sshd logs in as. */
  function bundleFor(user: string) {
    const b = makeBundle(bifrostSecrets({ NB_BIFROST_SETUP_KEY: undefined }));
    if (process.getuid?.() === 0) {
      const parent = dirname(b.dir);
      execFileSync('chown', ['-R', user, parent]);
      chmodSync(parent, 0o700);
    }
    return b;
  }

  it('--dry-run reads the bundle over SFTP and prints the plan', async () => {
    const b = bundleFor(server.user);
    const r = await runScript(SCRIPT, [...sshCliArgs(server), '--dir', b.dir, '--dry-run'], baseEnv());
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`on ssh ${server.user}@127.0.0.1:${server.port}`);
    expect(r.stdout).toContain(
      'netbird-agent (after netbird-server): skipped, NB_BIFROST_SETUP_KEY is not set',
    );
  });

  it('checks the bundle as it sits on the host (read over SFTP) and stops on a problem (exit 2)', async () => {
    const b = bundleFor(server.user);
    plantUnsound(b.dir);
    const r = await runScript(SCRIPT, [...sshCliArgs(server), '--dir', b.dir, '--dry-run'], baseEnv());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(
      `the bundle ssh ${server.user}@127.0.0.1:${server.port}:${b.dir} fails check-bundle`,
    );
    expect(r.stderr).toContain('its service netbird-proxy-tls is not defined');
    expect(r.stdout).not.toContain('traefik');
  });

  it('refuses an unknown host key (exit 2) with its fingerprint and the --accept-new hint', async () => {
    const b = bundleFor(server.user);
    const empty = join(tempDir('sf-kh-'), 'known_hosts');
    const r = await runScript(SCRIPT, [...sshCliArgs(server, empty), '--dir', b.dir, '--dry-run'], baseEnv());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/SHA256:[A-Za-z0-9+/]{43}/);
    expect(r.stderr).toMatch(/--accept-new/);
  });
});
