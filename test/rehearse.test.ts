/**
 * Rehearsing the guide's Bifrost days without a VPS or Docker (scripts/rehearse.ts): a SOPS file made the
 * guide's way (`secrets init`, then `secrets set` for the keys made by hand), day 1 through the rehearsal
 * (provision-bifrost --local on the target, the docker simulator as docker; the proxy's token minted on the
 * "host"), NB_BIFROST_SETUP_KEY set, day 2, then a third run that changes nothing. Each command is its own process;
 * the "host" carries over in the target directory.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { decryptSopsFile } from '../scripts/lib/secrets/sops/index.ts';
import { makeAgeKey } from './fixtures/make-sops-fixtures.ts';
import { findLeaks } from './helpers/bootstrap-fixture.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { scriptArgv } from './helpers/script-bundles.ts';
import { tempDir } from './helpers/temp.ts';

/** The keys the guide sets by hand before day 1, and the one it sets after the first NetBird login. */
const DAY_ONE_KEYS = ['HCLOUD_TOKEN', 'PROXMOX_PASSWORD', 'CLOUDFLARE_API_TOKEN', 'AUTHENTIK_GITHUB_SECRET'];
const DAY_TWO_KEYS = ['NB_BIFROST_SETUP_KEY'];

describe('rehearsing the Bifrost days on this machine', () => {
  let dir: string;
  let target: string;
  let secretsFile: string;
  let env: Record<string, string>;
  const samples = sampleSecrets();

  const secrets = (args: string[], input?: string) =>
    runScript('secrets.ts', [...args, '--secrets-file', secretsFile], env, { input });
  const rehearse = (args: string[]) => runScript('rehearse.ts', ['--target', target, ...args], env);
  const up = () => rehearse(['up', '--secrets-file', secretsFile, '--json']);
  const values = async () =>
    (await decryptSopsFile(secretsFile, { env })).documents[0] as Record<string, string>;
  const state = () => readFileSync(join(target, 'docker-simulator.json'), 'utf8');
  const expectNoLeaks = async (...texts: string[]) => {
    const all = await values();
    expect(Object.keys(all).length, 'the values searched for').toBeGreaterThan(0);
    for (const t of texts) expect(findLeaks(t, all)).toEqual([]);
  };
  const lockGone = () => expect(existsSync(join(target, 'bifrost.lock'))).toBe(false);

  beforeAll(async () => {
    dir = tempDir('sf-rehearse-');
    target = join(dir, 'rehearsal');
    secretsFile = join(dir, 'bootstrap.sops.yaml');
    const key = await makeAgeKey(dir);
    env = { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1', SOPS_AGE_KEY_FILE: key.keysFile };
    const init = await secrets(['init', '--recipient', key.recipient]);
    expect(init.exitCode, init.stderr).toBe(0);
    for (const k of DAY_ONE_KEYS) {
      const set = await secrets(['set', k], samples[k]);
      expect(set.exitCode, set.stderr).toBe(0);
    }
  }, 60_000);

  it('day 1 provisions the target: every service but the agent runs, the proxy on a minted token', async () => {
    const r = await up();
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.where).toBe('local');
    expect(result.remoteDir).toBe(join(target, 'bifrost'));
    expect(result.upload.changed).toContain('.secrets.env');
    const steps = Object.fromEntries(
      (result.bootstrap.steps as { id: string; status: string }[]).map((s) => [s.id, s.status]),
    );
    expect(steps['netbird-server']).toBe('done');
    expect(steps['netbird-proxy-token']).toBe('done');
    expect(steps['netbird-proxy']).toBe('done');
    expect(steps['netbird-agent']).toBe('skipped');
    // What a host holds, held as a host holds it.
    expect(statSync(target).mode & 0o777).toBe(0o700);
    for (const f of ['bifrost/.secrets.env', 'bifrost/.env', 'docker-simulator.json'])
      expect(statSync(join(target, f)).mode & 0o777, f).toBe(0o600);
    lockGone();
    await expectNoLeaks(r.stdout, r.stderr);

    // The next command sees the same host: its containers ran on between the two processes.
    const status = await rehearse(['bifrost', 'status', '--json']);
    const services = JSON.parse(status.stdout).services as {
      service: string;
      state: string;
      skipped: boolean;
    }[];
    expect(services.filter((s) => s.state === 'running').map((s) => s.service)).toHaveLength(7);
    expect(
      services
        .filter((s) => s.skipped)
        .map((s) => s.service)
        .sort(),
    ).toEqual(['netbird-agent']);
    expect(status.exitCode, status.stderr).toBe(0);
  }, 60_000);

  it('day 2, after the setup key is set, starts netbird-agent; the proxy keeps its minted token', async () => {
    for (const k of DAY_TWO_KEYS) {
      const set = await secrets(['set', k], samples[k]);
      expect(set.exitCode, set.stderr).toBe(0);
    }
    const r = await up();
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    const steps = Object.fromEntries(
      (result.bootstrap.steps as { id: string; status: string }[]).map((s) => [s.id, s.status]),
    );
    expect(steps['netbird-proxy-token']).toBe('done');
    expect(JSON.stringify(result.bootstrap.steps)).toContain('minted here before); kept');
    expect(steps['netbird-agent']).toBe('done');
    lockGone();
    await expectNoLeaks(r.stdout, r.stderr);
    const status = await rehearse(['bifrost', 'status', '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    const services = JSON.parse(status.stdout).services as { ready: boolean }[];
    expect(services.filter((s) => s.ready)).toHaveLength(8);
  }, 60_000);

  it('a third run changes nothing: no upload, no bootstrap, not one docker call', async () => {
    const before = state();
    const r = await up();
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.upload.changed).toEqual([]);
    expect(result.upload.removed).toEqual([]);
    expect(result.bootstrap).toBe('skipped');
    // The simulator's host, containers and event log included, is byte for byte what it was.
    expect(state()).toBe(before);
    const verify = await rehearse(['bifrost', 'verify', '--secrets-file', secretsFile]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  }, 60_000);

  it('SIGTERM stops the rehearsed command, which releases the host lock, then the state is saved (exit 143)', async () => {
    const other = join(dir, 'interrupted');
    const run = execa(
      process.execPath,
      [...scriptArgv('rehearse.ts', 'tsx'), '--target', other, 'up', '--secrets-file', secretsFile],
      { env, extendEnv: false, reject: false, cwd: PROJECT_ROOT },
    );
    // Once the first service is done (order of events, not time), the bootstrap is under way and its
    // container exists: "start traefik" is printed before its up, which a signal can still beat.
    let seen = '';
    await new Promise<void>((started) => {
      const watch = (chunk: Buffer) => {
        seen += String(chunk);
        if (/done\s+traefik/.test(seen)) started();
      };
      run.stdout?.on('data', watch);
      run.stderr?.on('data', watch);
    });
    run.kill('SIGTERM');
    const r = await run;
    expect(r.exitCode).toBe(143);
    expect(r.stderr).toMatch(/interrupted by SIGTERM during bootstrap/);
    expect(r.stderr).toMatch(
      /interrupted by SIGTERM during rehearse up: the rehearsal target's state was saved/,
    );
    expect(existsSync(join(other, 'bifrost.lock'))).toBe(false);
    const saved = JSON.parse(readFileSync(join(other, 'docker-simulator.json'), 'utf8'));
    expect(saved.containers.map((c: { service: string }) => c.service)).toContain('traefik');
  }, 60_000);

  it('refuses a target that holds something else, and clean removes only a rehearsal target', async () => {
    const other = tempDir('sf-not-a-target-');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(other, 'notes.txt'), 'mine\n');
    for (const args of [
      ['--target', other, 'bifrost', 'status'],
      ['--target', other, 'clean'],
    ]) {
      const r = await runScript('rehearse.ts', args, env);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain('is not a rehearsal target');
      expect(readdirSync(other)).toEqual(['notes.txt']);
    }
    const clean = await rehearse(['clean']);
    expect(clean.exitCode, clean.stderr).toBe(0);
    expect(existsSync(target)).toBe(false);
  });
});
