/**
 * provision-bifrost end to end: the real script, a real loopback sshd, and the docker simulator served
 * on a unix socket as the host's docker CLI. First deploy, no-op re-run, a changed config file, a
 * changed secret, the never-rotate guard, host keys, the lock, remote modes, and canary leak checks; NetBird's
 * owner seeded with a bcrypt hash, checked by an independent implementation.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { GUARDED_SECRETS, HOST_KEYS } from '../scripts/lib/bifrost/deployed.ts';
import { parseEnvFile } from '../scripts/lib/bifrost/env-file.ts';
import { currentHolder } from '../scripts/lib/bifrost/lock.ts';
import type { DockerSimulator, ServiceTimeline } from '../scripts/lib/sandbox/docker-simulator.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import {
  type BifrostTestHost,
  holdHostLock,
  provisionOnTestHost,
  startBifrostTestHost,
  startProvisionOnTestHost,
} from './harness/bifrost-host.ts';
import { findSshd, type SshdServer, sshCliArgs } from './harness/sshd.ts';
import { bcryptCost, libcryptVerifies } from './helpers/bcrypt-check.ts';
import { referenceTimeline } from './helpers/bifrost-fixture.ts';
import { findLeaks } from './helpers/bootstrap-fixture.ts';
import { runScript } from './helpers/run-cli.ts';
import { killWatchedRuns } from './helpers/watched-run.ts';

const sshd = findSshd('provision-bifrost over a loopback sshd');

describe.skipIf(!sshd)('provision-bifrost', () => {
  let host: BifrostTestHost;
  let server: SshdServer;
  let sim: DockerSimulator;
  let root: string;
  let remoteDir: string;
  let bundle: string;
  let home: string;
  let tmp: string;
  const values = sampleSecrets();

  beforeAll(async () => {
    host = await startBifrostTestHost(sshd as string, { prefix: 'sf-provision-' });
    ({ server, sim, root, remoteDir, bundle, home, tmp } = host);
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  const provision = (extra: string[] = [], env: Record<string, string> = {}) =>
    provisionOnTestHost(host, extra, { ...values, ...env });
  const tokenLines = () =>
    readFileSync(join(remoteDir, '.secrets.env'), 'utf8').match(
      /^\s*(?:export\s+)?NB_IDP_MGMT_TOKEN\s*=.*$/gm,
    ) ?? [];
  const akShellCalls = (since: number) =>
    sim.calls.filter((c) => c.startedAt >= since && c.argv.includes('exec') && c.argv.includes('ak')).length;

  function expectNoLeaks(...texts: string[]) {
    for (const t of texts) expect(findLeaks(t, values)).toEqual([]);
    expect(sim.calls.length, 'the docker calls searched').toBeGreaterThan(0);
    for (const call of sim.calls) expect(findLeaks(call.argv.join(' '), values)).toEqual([]);
    // Nothing with a secret on the operator's machine (tsx's compile cache aside).
    expect(readdirSync(tmp).filter((n) => !n.startsWith('tsx-'))).toEqual([]);
    expect(readdirSync(home).filter((n) => n !== '.ssh')).toEqual([]);
  }

  it('first deploy: uploads with the right modes, runs the bootstrap, records the deployed state', async () => {
    const r = await provision();
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.upload.changed).toContain('docker-compose.yml');
    expect(result.upload.changed).toContain('.secrets.env');
    expect(result.bootstrap.ok).toBe(true);
    for (const f of ['.secrets.env', '.env', 'netbird/config.yaml', '.deployed.json']) {
      expect(statSync(join(remoteDir, f)).mode & 0o777, f).toBe(0o600);
    }
    expect(statSync(join(remoteDir, 'docker-compose.yml')).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(remoteDir, '.deployed.json'), 'utf8')).not.toContain(values.NB_DATA_STORE_KEY);
    expect(sim.containers.size).toBe(8);
    expectNoLeaks(r.stdout, r.stderr);
  }, 60_000);

  it('a re-run with nothing changed sends nothing and skips the bootstrap', async () => {
    const since = sim.now();
    const r = await provision();
    expect(r.exitCode).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.upload.changed).toEqual([]);
    expect(result.bootstrap).toBe('skipped');
    expect(sim.calls.filter((c) => c.startedAt >= since).map((c) => c.argv.join(' '))).toEqual([]);
    expect(r.stderr).toContain('bootstrap skipped');
  }, 60_000);

  it('--force runs the bootstrap even when nothing changed; --write-local writes the env files 0600', async () => {
    const local = join(root, 'local-out');
    mkdirSync(local);
    const r = await provision(['--force', '--write-local', local]);
    expect(r.exitCode).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.upload.changed).toEqual([]);
    expect(result.bootstrap.ok).toBe(true);
    expect(statSync(join(local, '.secrets.env')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(local, '.secrets.env'), 'utf8')).toContain('CF_DNS_API_TOKEN=');
    expect(r.stderr).toContain('plaintext secrets on this machine');

    // A dry run writes nothing there either, and says what it would write.
    const dry = join(root, 'dry-local-out');
    mkdirSync(dry);
    const planned = await provision(['--dry-run', '--write-local', dry]);
    expect(planned.exitCode, planned.stderr).toBe(0);
    expect(readdirSync(dry)).toEqual([]);
    expect(planned.stderr).toContain(
      `dry run: would write .secrets.env and .env to ${dry} (0600); nothing written`,
    );
    expect(planned.stderr).not.toContain('plaintext secrets on this machine');
  }, 60_000);

  it('one config file changed: only it is sent and only its service is recreated', async () => {
    const creations = new Map(sim.creations);
    writeFileSync(
      join(bundle, 'traefik/traefik.yml'),
      `${readFileSync(join(bundle, 'traefik/traefik.yml'), 'utf8')}# changed\n`,
    );
    const r = await provision();
    expect(r.exitCode).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.upload.changed).toEqual(['traefik/traefik.yml']);
    const expected = new Map(creations);
    expected.set('traefik', (creations.get('traefik') ?? 0) + 1);
    expect(sim.creations).toEqual(expected);
  }, 60_000);

  it('one secret changed: its env file is sent, carrying the minted token, and its service recreated', async () => {
    const creations = new Map(sim.creations);
    const minted = tokenLines();
    expect(minted).toHaveLength(1);
    const since = sim.now();
    const cf = `${(values.CLOUDFLARE_API_TOKEN ?? '').slice(0, -4)}ABCD`;
    const r = await provision([], { CLOUDFLARE_API_TOKEN: cf });
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
    // A local change, not a hand edit on the host.
    expect(r.stderr).not.toContain('edited on the host');
    expect(sim.creations.get('traefik')).toBe((creations.get('traefik') ?? 0) + 1);
    expect(sim.creations.get('netbird-server')).toBe(creations.get('netbird-server'));
    expect(sim.containers.get('traefik')?.env.CF_DNS_API_TOKEN).toBe(cf);
    // The token is minted once: the new .secrets.env kept the host's line, and the token step kept it.
    expect(akShellCalls(since)).toBe(0);
    expect(tokenLines()).toEqual(minted);
    expect(JSON.parse(r.stdout).bootstrap.steps).toContainEqual(
      expect.objectContaining({ id: 'netbird-mgmt-token', detail: expect.stringMatching(/already set/) }),
    );
    // Back to the original value for the next tests.
    expect((await provision()).exitCode).toBe(0);
    expect(tokenLines()).toEqual(minted);
  }, 90_000);

  // Two runs of one host: the second waits for the lock (--lock-wait) while the first mints the token. What
  // the second sends must start from the host as the first left it, so the host is read once the lock is
  // held: a .secrets.env rendered from a read taken before the wait would drop the token and mint another.
  it('a run that waited for the lock reads the host after it: the token the holder wrote is kept, not minted again', async () => {
    const minted = tokenLines();
    expect(minted).toHaveLength(1);
    const secretsEnv = join(remoteDir, '.secrets.env');
    const withToken = readFileSync(secretsEnv, 'utf8');
    // The host as the holder found it: no token yet.
    writeFileSync(secretsEnv, withToken.replace(/^NB_IDP_MGMT_TOKEN=.*\n/m, ''));
    const lockDir = holdHostLock(host);
    const since = sim.now();
    const cf = `${(values.CLOUDFLARE_API_TOKEN ?? '').slice(0, -4)}WXYZ`;
    const run = startProvisionOnTestHost(host, ['--lock-wait', '60'], {
      ...values,
      CLOUDFLARE_API_TOKEN: cf,
    });
    try {
      await run.line(/lock {4}waiting up to \d+ s for .*held by alice@laptop/);
      // The holder mints the token and releases the lock.
      writeFileSync(secretsEnv, withToken);
      rmSync(lockDir, { recursive: true });
      const r = await run.done;
      expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
      expect(sim.containers.get('traefik')?.env.CF_DNS_API_TOKEN).toBe(cf);
      expect(akShellCalls(since)).toBe(0);
      expect(tokenLines()).toEqual(minted);
    } finally {
      killWatchedRuns();
      rmSync(lockDir, { recursive: true, force: true });
    }
    // Back to the original value for the next tests.
    expect((await provision()).exitCode).toBe(0);
    expect(tokenLines()).toEqual(minted);
  }, 90_000);

  it('a new AUTHENTIK_TOKEN, the key the token is minted from, mints it again: one line, the new value', async () => {
    const since = sim.now();
    const key = 'A1b2C3d4'.repeat(8).slice(0, 60);
    const r = await provision([], { AUTHENTIK_TOKEN: key });
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    expect(akShellCalls(since)).toBe(1);
    expect(tokenLines()).toEqual([`NB_IDP_MGMT_TOKEN=${key}`]);
    // And back: minted again under the original key.
    expect((await provision()).exitCode).toBe(0);
    expect(tokenLines()).toEqual([`NB_IDP_MGMT_TOKEN=${values.AUTHENTIK_TOKEN}`]);
    expect(r.stdout + r.stderr).not.toContain(key);
  }, 90_000);

  it('refuses a changed NB_DATA_STORE_KEY before uploading anything, and allows it with --allow-rotate', async () => {
    const rotated = Buffer.alloc(32, 9).toString('base64');
    const before = readFileSync(join(remoteDir, '.secrets.env'), 'utf8');
    const refused = await provision([], { NB_DATA_STORE_KEY: rotated });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/NB_DATA_STORE_KEY: differs from the value deployed first/);
    expect(refused.stderr).toMatch(/--allow-rotate NB_DATA_STORE_KEY/);
    expect(readFileSync(join(remoteDir, '.secrets.env'), 'utf8')).toBe(before);
    expect(refused.stderr).not.toContain(rotated);
    const allowed = await provision(['--allow-rotate', 'NB_DATA_STORE_KEY'], { NB_DATA_STORE_KEY: rotated });
    expect(allowed.exitCode).toBe(0);
    expect(allowed.stderr).toContain('NB_DATA_STORE_KEY rotates');
    // Rotate back, so the tests after this one deploy the original values again.
    expect((await provision(['--allow-rotate', 'NB_DATA_STORE_KEY'])).exitCode).toBe(0);
  }, 90_000);

  it('without the deploy record (deleted, or unreadable) the guard compares with the live host files, and says so', async () => {
    const rotated = Buffer.alloc(32, 7).toString('base64');
    const record = join(remoteDir, '.deployed.json');
    const before = readFileSync(join(remoteDir, '.secrets.env'), 'utf8');
    for (const damage of [() => rmSync(record), () => writeFileSync(record, '{"version": 2, "salt": 1')]) {
      damage();
      const since = sim.now();
      const refused = await provision([], { NB_DATA_STORE_KEY: rotated });
      expect(refused.exitCode, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(
        /NB_DATA_STORE_KEY: differs from the value in the host's live \.secrets\.env \(compared with the live file because the host's deploy record \.deployed\.json is missing or unreadable\)/,
      );
      expect(refused.stderr).toMatch(/^hint: .*--allow-rotate NB_DATA_STORE_KEY/m);
      expect(refused.stderr).not.toContain(rotated);
      expect(readFileSync(join(remoteDir, '.secrets.env'), 'utf8')).toBe(before);
      expect(sim.calls.filter((c) => c.startedAt >= since)).toEqual([]);
    }
    // The value the host holds is no rotation: the run goes through and records the deploy again.
    const same = await provision();
    expect(same.exitCode, same.stderr).toBe(0);
    expect(existsSync(record)).toBe(true);
  }, 90_000);

  it('refuses an unknown host unless --accept-new, and a changed host key always', async () => {
    const knownHosts = join(root, 'kh-empty');
    const refused = await runScript(
      'provision-bifrost.ts',
      [
        ...sshCliArgs(server, knownHosts),
        '--remote-dir',
        remoteDir,
        '--bundle',
        bundle,
        '--from-env',
        '--dry-run',
      ],
      { PATH: process.env.PATH ?? '', HOME: home, ...values },
    );
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/--accept-new/);
    const accepted = await runScript(
      'provision-bifrost.ts',
      [
        ...sshCliArgs(server, knownHosts),
        '--accept-new',
        '--remote-dir',
        remoteDir,
        '--bundle',
        bundle,
        '--from-env',
        '--dry-run',
      ],
      { PATH: process.env.PATH ?? '', HOME: home, ...values },
    );
    expect(accepted.stderr).toBe('');
    expect(accepted.exitCode).toBe(0);
    expect(readFileSync(knownHosts, 'utf8')).toContain(`[127.0.0.1]:${server.port}`);
    // A different key for the same host.
    const other = readFileSync(knownHosts, 'utf8').replace(
      /ssh-ed25519 \S+/,
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNk1lyCLWpPnn6Mkdk6GLCw6fbeNNrQxlJGzGtdzJzN',
    );
    writeFileSync(knownHosts, other);
    const changed = await runScript(
      'provision-bifrost.ts',
      [
        ...sshCliArgs(server, knownHosts),
        '--accept-new',
        '--remote-dir',
        remoteDir,
        '--bundle',
        bundle,
        '--from-env',
        '--dry-run',
      ],
      { PATH: process.env.PATH ?? '', HOME: home, ...values },
    );
    expect(changed.exitCode).toBe(2);
    expect(changed.stderr).toMatch(/SHA256:[A-Za-z0-9+/]{43}[\s\S]*SHA256:[A-Za-z0-9+/]{43}/);
  }, 60_000);

  it('stops when another run holds the host lock, naming the holder', async () => {
    const lockDir = holdHostLock(host);
    try {
      const r = await provision(['--force']);
      expect(r.stderr).toContain('alice@laptop');
      expect(r.exitCode).toBe(1);
      // What the operator can do, in their own words: commands and flags, no internal names.
      expect(r.stderr).toMatch(
        /^hint: wait for that run to finish and run again, or pass --lock-wait S to wait up to S seconds for it; if that run is no longer running \(a stale lock\), clear it with `just bifrost-unlock HOST`, then run again$/m,
      );
      expect(r.stderr).not.toContain('breakHostLock');
    } finally {
      execFileSync('rm', ['-rf', lockDir]);
    }
  }, 60_000);

  it("a take of this machine's cut short before its record (its run gone) is taken over at once, with a notice", async () => {
    const lockDir = `${remoteDir}.lock`;
    const take = `${lockDir}.take.cut`;
    // As a take killed between its mkdir and moving its record in leaves it: the record beside the empty dir.
    const dead = spawnSync('true').pid as number;
    writeFileSync(take, JSON.stringify({ ...currentHolder('provision-bifrost'), pid: dead }));
    execFileSync('touch', ['-d', '@1000000000', take]);
    mkdirSync(lockDir, { mode: 0o700 });
    if (process.getuid?.() === 0) execFileSync('chown', ['-R', server.user, lockDir, take]);
    try {
      const r = await provision(['--force']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(
          `^warning: lock: took over \\S+bifrost\\.lock: its take was cut short before it recorded its holder \\(no holder\\.json; its holder .*\\(pid ${dead}, provision-bifrost\\) no longer runs on this machine\\)$`,
          'm',
        ),
      );
      expect(existsSync(take)).toBe(false);
      expect(existsSync(lockDir)).toBe(false);
    } finally {
      execFileSync('rm', ['-rf', lockDir, take]);
    }
  }, 60_000);

  it('refuses missing secrets before connecting, listing them all', async () => {
    const r = await runScript(
      'provision-bifrost.ts',
      ['--host', '127.0.0.1', '--port', '1', '--from-env', '--bundle', bundle],
      { PATH: process.env.PATH ?? '', HOME: home, ...values, NB_RELAY_SECRET: '', AUTHENTIK_SECRET_KEY: '' },
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('NB_RELAY_SECRET: missing');
    expect(r.stderr).toContain('AUTHENTIK_SECRET_KEY: missing');
    expect(r.stderr).not.toMatch(/ECONNREFUSED|connect/);
  });

  it("warns about a NetBird token not in the vendor's format, and refuses it before connecting with --strict", async () => {
    const offline = (extra: string[]) =>
      runScript(
        'provision-bifrost.ts',
        ['--host', '127.0.0.1', '--port', '1', '--from-env', '--bundle', bundle, ...extra],
        // A personal access token where the reverse proxy needs a proxy token (nbx_).
        { PATH: process.env.PATH ?? '', HOME: home, ...values, NB_PROXY_TOKEN: `nbp_${'A1'.repeat(18)}` },
      );
    const strict = await offline(['--strict']);
    expect(strict.exitCode).toBe(2);
    expect(strict.stderr).toMatch(/NB_PROXY_TOKEN: malformed: expected "nbx_"/);
    expect(strict.stderr).not.toMatch(/ECONNREFUSED|connect/);
    const lenient = await offline([]);
    expect(lenient.stderr).toMatch(/^warning: NB_PROXY_TOKEN: unexpected format: expected "nbx_"/m);
    // It went on past the secrets, as far as the SSH connection (which this offline run cannot make).
    expect(lenient.stderr, lenient.stderr).toMatch(/^error: ssh /m);
    expect(lenient.stderr).not.toMatch(/NB_PROXY_TOKEN: malformed/);
  });

  describe('the deploy record', () => {
    const recordPath = () => join(remoteDir, '.deployed.json');
    const readRecord = () => JSON.parse(readFileSync(recordPath(), 'utf8'));
    const plain = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex');

    it('holds keyed fingerprints of the host keys only, never a plain hash', async () => {
      expect((await provision(['--force'])).exitCode).toBe(0);
      const text = readFileSync(recordPath(), 'utf8');
      const record = JSON.parse(text);
      expect(record.version).toBe(2);
      expect(record.salt).toMatch(/^[0-9a-f]{32}$/);
      expect(Object.keys(record.secrets).sort()).toEqual(
        HOST_KEYS.filter((k) => values[k] !== undefined).sort(),
      );
      for (const key of ['PROXMOX_PASSWORD', 'HCLOUD_TOKEN', 'FINGERPRINT_KEY', 'INFISICAL_DB_PASSWORD']) {
        expect(record.secrets[key], key).toBeUndefined();
      }
      for (const [key, value] of Object.entries(values)) {
        expect(text, key).not.toContain(plain(value).slice(0, 16));
        expect(findLeaks(text, { [key]: value })).toEqual([]);
      }
      expect(statSync(recordPath()).mode & 0o777).toBe(0o600);
      // The upload manifest keys the digests of the files that hold secrets too; the others stay plain.
      const manifest = JSON.parse(readFileSync(join(remoteDir, '.bundle-manifest.json'), 'utf8')).files;
      const hostFile = (f: string) => readFileSync(join(remoteDir, f), 'utf8');
      expect(manifest['.env'].sha256).not.toBe(plain(hostFile('.env')));
      expect(manifest['docker-compose.yml'].sha256).toBe(plain(hostFile('docker-compose.yml')));
    }, 60_000);

    it('migrates a version 1 record: the guard still compares, then the record is keyed', async () => {
      const v2 = readRecord();
      const legacy = {
        bundleDigest: 'from-an-older-release',
        secrets: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, plain(v)])),
        guarded: Object.fromEntries(GUARDED_SECRETS.map((s) => [s.key, plain(values[s.key] as string)])),
        deployedAt: v2.deployedAt,
        by: v2.by,
      };
      writeFileSync(recordPath(), JSON.stringify(legacy), { mode: 0o600 });
      const refused = await provision([], { NB_RELAY_SECRET: `${values.NB_RELAY_SECRET}-other` });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(/NB_RELAY_SECRET: differs from the value deployed first/);
      const migrated = await provision();
      expect(migrated.stderr, migrated.stderr).not.toMatch(/^error:/m);
      expect(migrated.exitCode).toBe(0);
      const record = readRecord();
      expect(record.version).toBe(2);
      expect(record.bundleDigest).not.toBe(legacy.bundleDigest);
      // The host's one salt, which its upload manifest holds too (it keys the env files' digests).
      const manifest = JSON.parse(readFileSync(join(remoteDir, '.bundle-manifest.json'), 'utf8'));
      expect(record.salt).toBe(manifest.salt);
      expect(JSON.stringify(record)).not.toContain(plain(values.NB_DATA_STORE_KEY as string));
      // The guard keeps working under the new record.
      const again = await provision([], { NB_DATA_STORE_KEY: Buffer.alloc(32, 3).toString('base64') });
      expect(again.exitCode).toBe(2);
    }, 90_000);

    it('refuses another FINGERPRINT_KEY unless --allow-rotate FINGERPRINT_KEY, which re-keys the record', async () => {
      const before = readRecord();
      const otherKey = Buffer.alloc(32, 5).toString('base64');
      const refused = await provision([], { FINGERPRINT_KEY: otherKey });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(
        /FINGERPRINT_KEY is not the key this host's deploy record was made with/,
      );
      expect(readRecord()).toEqual(before);
      const allowed = await provision(['--allow-rotate', 'FINGERPRINT_KEY'], { FINGERPRINT_KEY: otherKey });
      expect(allowed.exitCode).toBe(0);
      expect(readRecord().keyCheck).not.toBe(before.keyCheck);
      // And back, for the tests after this one.
      expect((await provision(['--allow-rotate', 'FINGERPRINT_KEY'])).exitCode).toBe(0);
    }, 90_000);
  });

  describe('convergence with the host state', () => {
    const secretsEnv = () => join(remoteDir, '.secrets.env');
    const tokenLine = /^NB_IDP_MGMT_TOKEN=.+$/m;

    it('restores a missing NB_IDP_MGMT_TOKEN exactly once; verify reports the missing line', async () => {
      expect(readFileSync(secretsEnv(), 'utf8')).toMatch(tokenLine);
      const trimmed = readFileSync(secretsEnv(), 'utf8').replace(tokenLine, '');
      writeFileSync(secretsEnv(), trimmed);
      const verify = await runScript(
        'bifrost.ts',
        ['verify', ...sshCliArgs(server), '--remote-dir', remoteDir, '--bundle', bundle, '--from-env'],
        { PATH: process.env.PATH ?? '', HOME: home, TMPDIR: tmp, NO_COLOR: '1', ...values },
      );
      expect(verify.exitCode).toBe(1);
      expect(verify.stdout).toMatch(/^NB_IDP_MGMT_TOKEN\s+missing on host\s+no line in \.secrets\.env/m);
      const restored = await provision();
      expect(restored.stderr, restored.stderr).not.toMatch(/^error:/m);
      expect(restored.exitCode).toBe(0);
      expect(restored.stderr).toContain('holds no NB_IDP_MGMT_TOKEN; the bootstrap mints it');
      expect(JSON.parse(restored.stdout).bootstrap.ok).toBe(true);
      expect(readFileSync(secretsEnv(), 'utf8')).toMatch(tokenLine);
      const since = sim.now();
      const again = await provision();
      expect(again.exitCode).toBe(0);
      expect(JSON.parse(again.stdout).bootstrap).toBe('skipped');
      expect(sim.calls.filter((c) => c.startedAt >= since)).toEqual([]);
      expectNoLeaks(verify.stdout, verify.stderr, restored.stdout, restored.stderr);
    }, 90_000);

    it('sends an env file edited on the host again, though its manifest entry is unchanged', async () => {
      const dotEnv = join(remoteDir, '.env');
      const good = readFileSync(dotEnv, 'utf8');
      writeFileSync(
        dotEnv,
        good.replace(/^AUTHENTIK_SECRET_KEY=.*$/m, 'AUTHENTIK_SECRET_KEY=edited-by-hand'),
      );
      const r = await provision();
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain('.env was edited on the host; sending it again');
      expect(JSON.parse(r.stdout).upload.changed).toEqual(['.env']);
      expect(readFileSync(dotEnv, 'utf8')).toBe(good);
      expect(statSync(dotEnv).mode & 0o777).toBe(0o600);
      const again = await provision();
      expect(JSON.parse(again.stdout).bootstrap).toBe('skipped');
    }, 90_000);

    it('a hand-edited .secrets.env is sent again with the host token carried over: not minted again', async () => {
      const good = readFileSync(secretsEnv(), 'utf8');
      const minted = tokenLines();
      expect(minted).toHaveLength(1);
      writeFileSync(
        secretsEnv(),
        good.replace(/^NB_RELAY_SECRET=.*$/m, 'NB_RELAY_SECRET=edited-by-hand-on-the-host-0123456789'),
      );
      const since = sim.now();
      const r = await provision();
      expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain('.secrets.env was edited on the host; sending it again');
      expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
      expect(readFileSync(secretsEnv(), 'utf8')).toBe(good);
      expect(akShellCalls(since)).toBe(0);
      expect(tokenLines()).toEqual(minted);
      const again = await provision();
      expect(JSON.parse(again.stdout).upload.changed).toEqual([]);
      expect(JSON.parse(again.stdout).bootstrap).toBe('skipped');
    }, 90_000);
  });
});

describe.skipIf(!sshd)('provision-bifrost after a failed first bootstrap, then on day 2', () => {
  let host: BifrostTestHost;
  const values = sampleSecrets();
  // Day 1 lacks what the NetBird UI hands out later.
  const { NB_PROXY_TOKEN: _proxy, NB_BIFROST_SETUP_KEY: _setupKey, ...day1 } = values;
  const reference = referenceTimeline(5);
  // netbird-server never comes up on the first run; the test heals it before the second.
  const timeline: Record<string, ServiceTimeline> = {
    ...reference.timeline,
    'netbird-server': { healthyAfterMs: undefined },
  };

  beforeAll(async () => {
    host = await startBifrostTestHost(sshd as string, { prefix: 'sf-provision-day2-', timeline });
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  const secretsEnv = () => readFileSync(join(host.remoteDir, '.secrets.env'), 'utf8');
  const tokenLines = () => secretsEnv().match(/^NB_IDP_MGMT_TOKEN=.*$/gm) ?? [];
  const proxyLines = () => secretsEnv().match(/^NB_PROXY_TOKEN=.*$/gm) ?? [];
  const akShellCalls = (since: number) =>
    host.sim.calls.filter((c) => c.startedAt >= since && c.argv.includes('exec') && c.argv.includes('ak'))
      .length;

  it('an unchanged env file is not sent again after a failed bootstrap; later runs keep the minted tokens', async () => {
    const failed = await provisionOnTestHost(host, [], day1);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/^error: step netbird-server failed/m);
    expect(JSON.parse(failed.stdout).upload.changed).toEqual(
      expect.arrayContaining(['.secrets.env', '.env']),
    );
    // NetBird no longer waits for Authentik's token: it failed first, and the run started nothing more
    // (the token step had not started). No deploy record was written.
    expect(tokenLines()).toHaveLength(0);
    expect(existsSync(join(host.remoteDir, '.deployed.json'))).toBe(false);

    timeline['netbird-server'] = reference.timeline['netbird-server'] ?? {};
    const healed = await provisionOnTestHost(host, [], day1);
    expect(healed.stderr, healed.stderr).not.toMatch(/^error:/m);
    expect(healed.exitCode).toBe(0);
    // Nothing sent: the env files are as the failed run left them (no record keyed their digests yet).
    expect(JSON.parse(healed.stdout).upload.changed).toEqual([]);
    expect(healed.stderr).not.toContain('edited on the host');
    expect(JSON.parse(healed.stdout).bootstrap.ok).toBe(true);
    const minted = tokenLines();
    expect(minted).toHaveLength(1);
    // The proxy came up on day 1 with the token the engine minted on the host (not one of the SOPS file).
    expect(host.sim.proxyTokens).toHaveLength(1);
    const mintedProxy = [`NB_PROXY_TOKEN=${host.sim.proxyTokens[0]}`];
    expect(proxyLines()).toEqual(mintedProxy);
    expect(host.sim.containers.get('netbird-proxy')?.env.NB_PROXY_TOKEN).toBe(host.sim.proxyTokens[0]);

    // The line minted after the upload is the host's own: the next provision sends nothing, runs nothing.
    const same = await provisionOnTestHost(host, [], day1);
    expect(JSON.parse(same.stdout).upload.changed).toEqual([]);
    expect(JSON.parse(same.stdout).bootstrap).toBe('skipped');
    expect(same.stderr).not.toContain('edited on the host');

    // A change of another .secrets.env key: the file is sent again, with the minted proxy token carried
    // (no second token create), and the minted line reads neither as a change nor as a host edit.
    const otherKey = { ...day1, CLOUDFLARE_API_TOKEN: `${day1.CLOUDFLARE_API_TOKEN}x` };
    const carried = await provisionOnTestHost(host, [], otherKey);
    expect(carried.stderr, carried.stderr).not.toMatch(/^error:/m);
    expect(JSON.parse(carried.stdout).upload.changed).toEqual(['.secrets.env']);
    expect(carried.stderr).not.toContain('edited on the host');
    expect(host.sim.proxyTokens).toHaveLength(1);
    expect(proxyLines()).toEqual(mintedProxy);
    const still = await provisionOnTestHost(host, [], otherKey);
    expect(JSON.parse(still.stdout).upload.changed).toEqual([]);
    expect(JSON.parse(still.stdout).bootstrap).toBe('skipped');

    // Day 2: the operator's own proxy token arrives in the SOPS file and wins over the minted one; only
    // .secrets.env changes, here, not on the host.
    const since = host.sim.now();
    const withProxy = { ...otherKey, NB_PROXY_TOKEN: values.NB_PROXY_TOKEN ?? '' };
    const day2 = await provisionOnTestHost(host, [], withProxy);
    expect(day2.stderr, day2.stderr).not.toMatch(/^error:/m);
    expect(day2.exitCode).toBe(0);
    expect(JSON.parse(day2.stdout).upload.changed).toEqual(['.secrets.env']);
    expect(day2.stderr).not.toContain('edited on the host');
    expect(day2.stderr).not.toContain('holds no NB_IDP_MGMT_TOKEN');
    expect(akShellCalls(since)).toBe(0);
    expect(tokenLines()).toEqual(minted);
    expect(proxyLines()).toEqual([`NB_PROXY_TOKEN=${values.NB_PROXY_TOKEN}`]);
    expect(host.sim.containers.get('netbird-proxy')?.env.NB_PROXY_TOKEN).toBe(values.NB_PROXY_TOKEN);
    expect(host.sim.proxyTokens).toHaveLength(1);

    const settled = await provisionOnTestHost(host, [], withProxy);
    expect(settled.exitCode).toBe(0);
    expect(JSON.parse(settled.stdout).upload.changed).toEqual([]);
    expect(JSON.parse(settled.stdout).bootstrap).toBe('skipped');
    expect(settled.stderr).not.toContain('holds no NB_IDP_MGMT_TOKEN');

    // Then the setup key, which .env carries too. Only the upload is this test's business here: what it
    // sends, and that the token line is still there once it has sent it.
    const day3 = await provisionOnTestHost(host, [], {
      ...values,
      CLOUDFLARE_API_TOKEN: otherKey.CLOUDFLARE_API_TOKEN,
    });
    expect(JSON.parse(day3.stdout).upload.changed.sort()).toEqual(['.env', '.secrets.env']);
    expect(day3.stderr).not.toContain('edited on the host');
    expect(tokenLines()).toEqual(minted);
    for (const r of [failed, healed, same, carried, still, day2, settled, day3]) {
      expect(r.stdout + r.stderr).not.toContain(host.sim.proxyTokens[0]);
    }
    for (const r of [failed, healed, same, carried, still, day2, settled, day3])
      expect(findLeaks(r.stdout + r.stderr, values)).toEqual([]);
  }, 90_000);
});

describe.skipIf(!sshd)("provision-bifrost seeds NetBird's owner", () => {
  let host: BifrostTestHost;
  const values = sampleSecrets();

  beforeAll(async () => {
    host = await startBifrostTestHost(sshd as string, { prefix: 'sf-provision-owner-' });
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  const owner = () =>
    (
      parse(readFileSync(join(host.remoteDir, 'netbird/config.yaml'), 'utf8')) as {
        server: { auth: { owner: { email: string; password: string } } };
      }
    ).server.auth.owner;
  const hostHash = () =>
    parseEnvFile(readFileSync(join(host.remoteDir, '.secrets.env'), 'utf8')).get('NB_OWNER_PASSWORD_HASH');

  /** Every file under the remote dir, its text: the plaintext must be in none. */
  const remoteTexts = (dir = host.remoteDir): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory()
        ? remoteTexts(join(dir, e.name))
        : e.isFile()
          ? [readFileSync(join(dir, e.name), 'latin1')]
          : [],
    );

  function expectNoPlaintext(password: string, ...outputs: string[]) {
    for (const text of [...remoteTexts(), ...outputs]) expect(text.includes(password)).toBe(false);
    for (const call of host.sim.calls) expect(call.argv.join(' ').includes(password)).toBe(false);
    for (const c of host.sim.containers.values())
      expect(Object.values(c.env).some((v) => v.includes(password))).toBe(false);
  }

  it('renders server.auth.owner with the email and a bcrypt hash of NB_OWNER_PASSWORD, the password itself nowhere on the host', async () => {
    const password = values.NB_OWNER_PASSWORD as string;
    const r = await provisionOnTestHost(host, [], values);
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    const { email, password: hash } = owner();
    expect(email).toBe('admin@madhan.app');
    expect(bcryptCost(hash)).toBeGreaterThanOrEqual(10);
    // The product's library and an independent implementation agree, and neither takes another password.
    expect(bcrypt.compareSync(password, hash)).toBe(true);
    expect(libcryptVerifies(password, hash)).toBe(true);
    expect(libcryptVerifies(`${password}x`, hash)).toBe(false);
    expect(hostHash()).toBe(hash);
    expectNoPlaintext(password, r.stdout, r.stderr);
    // Nor the hash in the output: it is not the password, but nothing prints it either.
    expect(`${r.stdout}${r.stderr}`).not.toContain(hash);
    expect(findLeaks(r.stdout + r.stderr, values)).toEqual([]);
  }, 60_000);

  it('a re-provision with nothing changed keeps the hash: nothing sent, netbird-server not recreated', async () => {
    const before = owner().password;
    const creations = new Map(host.sim.creations);
    // --force: the bootstrap runs and renders the config again, so the hash it finds is the one it keeps.
    const r = await provisionOnTestHost(host, ['--force'], values);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).upload.changed).toEqual([]);
    expect(owner().password).toBe(before);
    expect(host.sim.creations.get('netbird-server')).toBe(creations.get('netbird-server'));
  }, 60_000);

  it('a changed NB_OWNER_PASSWORD is hashed anew and recreates netbird-server, the new password nowhere on the host', async () => {
    const before = owner().password;
    const creations = new Map(host.sim.creations);
    const changed = `${values.NB_OWNER_PASSWORD}-changed`;
    const r = await provisionOnTestHost(host, [], { ...values, NB_OWNER_PASSWORD: changed });
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
    const after = owner().password;
    expect(after).not.toBe(before);
    expect(libcryptVerifies(changed, after)).toBe(true);
    expect(libcryptVerifies(values.NB_OWNER_PASSWORD as string, after)).toBe(false);
    expect(host.sim.creations.get('netbird-server')).toBe((creations.get('netbird-server') ?? 0) + 1);
    expectNoPlaintext(changed, r.stdout, r.stderr);
  }, 60_000);
});

describe.skipIf(!sshd)('provision-bifrost hands the engine the env files it uploaded', () => {
  let host: BifrostTestHost;
  // Without NB_PROXY_TOKEN: the engine mints both tokens and writes them into .secrets.env on the host.
  const { NB_PROXY_TOKEN: _proxy, ...values } = sampleSecrets();

  beforeAll(async () => {
    host = await startBifrostTestHost(sshd as string, { prefix: 'sf-provision-inmem-', sftpLog: true });
  }, 60_000);

  afterAll(async () => {
    await host?.stop();
  });

  const secretsEnv = () => parseEnvFile(readFileSync(join(host.remoteDir, '.secrets.env'), 'utf8'));
  /** The SFTP server's log of this run: one line per event, in order. */
  const sftpLines = (from: number) => host.server.sftpLog().split(/\r?\n/).slice(from);
  const liveRead = (line: string) =>
    ['.secrets.env', '.env'].some((f) => line.startsWith(`open "${join(host.remoteDir, f)}" flags READ`));
  const stagingWrite = (line: string) => /^open ".*\/bifrost\.staging-[^"]*" flags WRITE/.test(line);

  it('the first deploy never reads back the env files it uploaded; the minted tokens still reach the host file', async () => {
    const r = await provisionOnTestHost(host, [], values);
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(r.exitCode).toBe(0);
    const log = sftpLines(0);
    // The upload wrote both files (into the staging tree swapped in), and nothing opened them for reading.
    for (const f of ['.secrets.env', '.env'])
      expect(
        log.some((l) => l.startsWith('posix-rename') && l.endsWith(`/${f}"`)),
        f,
      ).toBe(true);
    expect(log.filter(liveRead)).toEqual([]);
    // Both tokens the engine minted were written into .secrets.env on the host, beside the uploaded values.
    const held = secretsEnv();
    expect(held.get('NB_IDP_MGMT_TOKEN')).toBeTruthy();
    expect(held.get('NB_PROXY_TOKEN')).toBe(host.sim.proxyTokens[0]);
    expect(held.get('CF_DNS_API_TOKEN')).toBe(values.CLOUDFLARE_API_TOKEN);
  }, 60_000);

  it('a changed secret: the file sent is never read after the upload, the one not sent is read on the host; the engine runs on the new values', async () => {
    const before = secretsEnv();
    const from = sftpLines(0).length - 1;
    const changed = { ...values, CLOUDFLARE_API_TOKEN: `${values.CLOUDFLARE_API_TOKEN}x` };
    const r = await provisionOnTestHost(host, [], changed);
    expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
    expect(JSON.parse(r.stdout).upload.changed).toEqual(['.secrets.env']);
    expect(JSON.parse(r.stdout).bootstrap.ok).toBe(true);
    const log = sftpLines(from);
    const readsOf = (f: string) =>
      log.flatMap((l, i) => (l.startsWith(`open "${join(host.remoteDir, f)}" flags READ`) ? [i] : []));
    const firstWrite = log.findIndex(stagingWrite);
    expect(firstWrite).toBeGreaterThan(-1);
    // provision's own look at the host (the token to carry, hand edits) reads each file once before the
    // upload; .secrets.env, sent, is not read again...
    expect(readsOf('.secrets.env')).toHaveLength(1);
    expect(readsOf('.secrets.env')[0]).toBeLessThan(firstWrite);
    // ...while .env, not sent, is the host's own copy: the engine reads it there.
    expect(readsOf('.env')[0]).toBeLessThan(firstWrite);
    expect(readsOf('.env').filter((i) => i > firstWrite).length).toBeGreaterThan(0);
    // The engine rendered traefik's env file from the value it was handed; the tokens were kept.
    expect(
      parseEnvFile(readFileSync(join(host.remoteDir, 'env/traefik.env'), 'utf8')).get('CF_DNS_API_TOKEN'),
    ).toBe(changed.CLOUDFLARE_API_TOKEN);
    const after = secretsEnv();
    expect(after.get('NB_IDP_MGMT_TOKEN')).toBe(before.get('NB_IDP_MGMT_TOKEN'));
    expect(after.get('NB_PROXY_TOKEN')).toBe(before.get('NB_PROXY_TOKEN'));
    expect(host.sim.proxyTokens).toHaveLength(1);
  }, 60_000);
});
