/**
 * Safety under faults, end to end: the real scripts over a real loopback sshd with the docker
 * simulator, some runs through a TCP proxy that slows or drops the connection (test/harness/drop-proxy.ts).
 *
 * - SIGINT/SIGTERM mid-upload, mid-engine, in bifrost-bootstrap and in a recovery command: exit 130/143,
 *   a message saying what was interrupted, one JSON result, the lock released; a re-run just works.
 * - A connection dropped in each phase: a non-zero exit with a message naming the dropped connection and
 *   the phase, a JSON result, and a re-run that converges (taking over the lock the dead run left).
 *
 * Signals and drops are sent when a progress line appears (event order, not timing).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DockerSimulator } from '../scripts/lib/sandbox/docker-simulator.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { type BifrostTestHost, startBifrostTestHost } from './harness/bifrost-host.ts';
import { type DropProxy, startDropProxy } from './harness/drop-proxy.ts';
import { findSshd, sshCliArgs } from './harness/sshd.ts';
import { referenceTimeline } from './helpers/bifrost-fixture.ts';
import { findLeaks } from './helpers/bootstrap-fixture.ts';
import { CollectedOutputs } from './helpers/collected-outputs.ts';
import { eventually } from './helpers/process.ts';
import { type CliRun, runScript } from './helpers/run-cli.ts';
import { killWatchedRuns, signalRun, startScript, type WatchedRun } from './helpers/watched-run.ts';

const sshd = findSshd('faults: interrupts and dropped connections over a loopback sshd');

/** Every file of the live bundle with its digest: "unchanged" means this is equal. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path);
      else
        out[path] = createHash('sha256')
          .update(readFileSync(join(dir, path)))
          .digest('hex');
    }
  };
  walk('');
  return out;
}

describe.skipIf(!sshd)('faults', () => {
  let host: BifrostTestHost;
  let sim: DockerSimulator;
  let proxy: DropProxy;
  /** known_hosts holding the server's key for the proxy's port too. */
  let knownHosts: string;
  const values = sampleSecrets();
  /** Every run's output, for the leak check at the end, by the way it was collected. */
  const outputs = new CollectedOutputs();
  const provisioned = outputs.collector('provision');
  const watched = outputs.collector('a watched run');
  const rerun = outputs.collector("a test's own re-run");

  beforeAll(async () => {
    // Slow health checks: the engine waits long enough for a signal sent on its first line to land in it.
    host = await startBifrostTestHost(sshd as string, {
      prefix: 'sf-faults-',
      timeline: referenceTimeline(20).timeline,
    });
    sim = host.sim;
    proxy = await startDropProxy(host.server.port);
    knownHosts = join(host.root, 'known_hosts');
    const line = readFileSync(host.server.knownHosts, 'utf8');
    writeFileSync(knownHosts, line + line.replace(`]:${host.server.port} `, `]:${proxy.port} `));
    const first = await provision();
    expect(first.stderr, first.stderr).not.toMatch(/^error:/m);
    expect(first.exitCode).toBe(0);
  }, 90_000);

  afterEach(() => {
    // A test that failed half-way must not leave a script running.
    killWatchedRuns();
    proxy?.setDelay(0);
    proxy?.setDropAfter(undefined);
    proxy?.resume();
  });

  afterAll(async () => {
    await proxy?.stop();
    await host?.stop();
    if (host) rmSync(host.root, { recursive: true, force: true });
  });

  const env = () => ({
    PATH: process.env.PATH ?? '',
    HOME: host.home,
    TMPDIR: host.tmp,
    NO_COLOR: '1',
    // The engine's deadlines and backoffs on a shortened timeline.
    SECRETS_FLOW_TIME_SCALE: '0.05',
    ...values,
  });
  const lockDir = () => `${host.remoteDir}.lock`;
  const sshArgs = (via: 'direct' | 'proxy') => [
    ...sshCliArgs(host.server, knownHosts),
    ...(via === 'proxy' ? ['--port', String(proxy.port)] : []),
  ];
  const dockerArgs = () => ['--docker', host.docker, '--compose', `${host.docker} compose`];
  const hostArgs = (via: 'direct' | 'proxy') => [
    ...sshArgs(via),
    '--remote-dir',
    host.remoteDir,
    '--docker',
    host.docker,
    '--compose',
    `${host.docker} compose`,
  ];
  const provisionArgs = (via: 'direct' | 'proxy', extra: string[] = []) => [
    ...hostArgs(via),
    '--bundle',
    host.bundle,
    '--from-env',
    ...extra,
  ];
  async function provision(extra: string[] = []): Promise<CliRun> {
    const r = await runScript('provision-bifrost.ts', provisionArgs('direct', extra), env());
    provisioned(r);
    return r;
  }
  function startProvision(extra: string[]): WatchedRun {
    return startScript(
      'provision-bifrost.ts',
      provisionArgs('proxy', ['--json', '--verbose', ...extra]),
      env(),
    );
  }
  async function finished(r: WatchedRun): Promise<CliRun> {
    const result = await r.done;
    watched(result);
    return result;
  }
  /** Changes a bundle file, so that the next provision uploads something. */
  function touchBundle(tag: string): void {
    const file = join(host.bundle, 'traefik/traefik.yml');
    writeFileSync(file, `${readFileSync(file, 'utf8')}# ${tag}\n`);
  }

  describe('interrupts', () => {
    it('SIGINT mid-upload: exit 130, the live bundle unchanged, the lock released, one JSON result', async () => {
      touchBundle('interrupted upload');
      const before = snapshot(host.remoteDir);
      // A slow link: the upload's round trips take long enough to interrupt it.
      proxy.setDelay(40);
      const run = startProvision([]);
      await run.line(/: sending \d+ files/);
      signalRun(run, 'SIGINT');
      const r = await finished(run);
      expect(r.exitCode, r.stderr).toBe(130);
      expect(r.stderr).toMatch(
        /interrupted by SIGINT during upload: the live bundle is unchanged.*; the host lock was released; re-run to converge/,
      );
      const result = JSON.parse(r.stdout);
      expect(result).toMatchObject({ ok: false, interrupted: 'SIGINT', phase: 'upload', exitCode: 130 });
      expect(snapshot(host.remoteDir)).toEqual(before);
      expect(existsSync(lockDir())).toBe(false);

      proxy.setDelay(0);
      const again = await provision();
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stderr).not.toMatch(/took over/);
      expect(readFileSync(join(host.remoteDir, 'traefik/traefik.yml'), 'utf8')).toContain(
        '# interrupted upload',
      );
    }, 90_000);

    it('SIGTERM mid-engine: exit 143, the lock released; a re-run converges without unlock', async () => {
      // The host rebooted without its containers: the engine has services to start (and wait for).
      sim.containers.clear();
      const run = startProvision(['--force']);
      await run.line(/^start\s+traefik/);
      signalRun(run, 'SIGTERM');
      const r = await finished(run);
      expect(r.exitCode, r.stderr).toBe(143);
      expect(r.stderr).toMatch(/interrupted by SIGTERM during bootstrap: .*the host lock was released/);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, interrupted: 'SIGTERM', exitCode: 143 });
      expect(existsSync(lockDir())).toBe(false);
      // The docker events stream on the host ended with the run: nothing left listening.
      expect(await eventually(() => sim.listening === 0)).toBe(true);

      const again = await provision(['--force']);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stderr).not.toMatch(/took over/);
    }, 90_000);

    it('a second SIGINT while cleaning up exits at once; the lock it leaves is taken over by the re-run', async () => {
      // The host rebooted without its containers: the engine has services to start (and wait for).
      sim.containers.clear();
      const run = startProvision(['--force']);
      await run.line(/^start\s+traefik/);
      // The host stops answering: the clean-up (releasing the lock) cannot finish.
      proxy.pause();
      signalRun(run, 'SIGINT');
      await run.line(/SIGINT: stopping and cleaning up/);
      signalRun(run, 'SIGINT');
      const r = await finished(run);
      proxy.drop();
      proxy.resume();
      expect(r.exitCode, r.stderr).toBe(130);
      expect(r.stderr).toMatch(/SIGINT again: exiting without finishing the clean-up/);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, interrupted: 'SIGINT', exitCode: 130 });
      const again = await provision(['--force']);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/took over .*no longer runs on this machine/);
    }, 90_000);

    it('bifrost-bootstrap: SIGINT mid-engine exits 130 saying so; a re-run succeeds', async () => {
      const args = [...sshArgs('direct'), ...dockerArgs(), '--dir', host.remoteDir];
      sim.containers.clear();
      const run = startScript('bifrost-bootstrap.ts', args, env());
      await run.line(/^start\s+traefik/);
      signalRun(run, 'SIGINT');
      const r = await finished(run);
      expect(r.exitCode, r.stderr).toBe(130);
      expect(r.stderr).toMatch(
        /interrupted by SIGINT during bootstrap: services already started keep running/,
      );
      const again = await runScript('bifrost-bootstrap.ts', args, env());
      rerun(again);
      expect(again.exitCode, again.stderr).toBe(0);
    }, 90_000);

    it('bifrost token: SIGINT while it retries exits 130 and releases the lock; a re-run mints the token', async () => {
      const opts = sim.opts as { tokenFailures?: number };
      opts.tokenFailures = 1_000_000;
      const args = ['token', ...hostArgs('direct'), '--json'];
      const run = startScript('bifrost.ts', args, env());
      try {
        await run.line(/netbird-mgmt-token: attempt 1 failed/);
        signalRun(run, 'SIGINT');
        const r = await finished(run);
        expect(r.exitCode, r.stderr).toBe(130);
        expect(r.stderr).toMatch(/interrupted by SIGINT during token: .*the host lock was released/);
        expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, interrupted: 'SIGINT', phase: 'token' });
        expect(existsSync(lockDir())).toBe(false);
      } finally {
        opts.tokenFailures = 0;
      }
      const again = await runScript('bifrost.ts', args, env());
      rerun(again);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(readFileSync(join(host.remoteDir, '.secrets.env'), 'utf8')).toMatch(/^NB_IDP_MGMT_TOKEN=/m);
    }, 90_000);
  });

  describe('a connection dropped in each phase', () => {
    /**
     * Runs provision-bifrost through the proxy, drops the connection when `when` says, and checks the
     * failure; then a healthy re-run converges without hand work.
     */
    async function dropDuring(
      when: { bytes: number } | { line: RegExp; slowFrom?: RegExp },
      phase: RegExp,
      extra: string[] = [],
    ) {
      if ('bytes' in when) proxy.setDropAfter(when.bytes);
      const run = startProvision(extra);
      if ('line' in when) {
        if (when.slowFrom) {
          await run.line(when.slowFrom);
          proxy.setDelay(200);
        }
        await run.line(when.line);
        proxy.drop();
      }
      const r = await finished(run);
      proxy.setDropAfter(undefined);
      proxy.setDelay(0);
      expect(r.exitCode, r.stderr).not.toBe(0);
      expect(r.exitCode, r.stderr).toBeGreaterThan(0);
      expect(r.stderr).toMatch(/^error: the SSH connection to \S+@127\.0\.0\.1:\d+ dropped during /m);
      const result = JSON.parse(r.stdout);
      expect(result.ok).toBe(false);
      expect(result.dropped?.phase).toMatch(phase);
      expect(result.error).toMatch(/dropped/);

      const again = await provision(extra);
      expect(again.exitCode, again.stderr).toBe(0);
      return { r, again };
    }

    it('while connecting', async () => {
      await dropDuring({ bytes: 1000 }, /^connecting$/);
    }, 90_000);

    it('while taking the host lock', async () => {
      await dropDuring({ line: /^target /, slowFrom: /^source / }, /^taking the host lock$/);
    }, 90_000);

    it('while reading the deploy record (after taking over a dead lock)', async () => {
      // A lock left by a run of this machine that is gone: the takeover notice is the cue. The lock is taken
      // first and the host read after it, so the drop lands in the read (or at the lock's very end).
      const { execFileSync } = await import('node:child_process');
      execFileSync('mkdir', ['-m', '700', lockDir()]);
      writeFileSync(join(lockDir(), 'holder.json'), '{"holder":');
      execFileSync('touch', ['-d', '@1000000000', lockDir()]);
      if (process.getuid?.() === 0) execFileSync('chown', ['-R', host.server.user, lockDir()]);
      // The takeover writes the new record in the same host command, so the lock is complete when the
      // notice prints, and the re-run takes over this run's lock.
      const { r } = await dropDuring(
        { line: /took over/, slowFrom: /^target / },
        /^(taking the host lock|reading the deploy record)$/,
        ['--force'],
      );
      expect(r.stderr).toMatch(/never completed its record/);
    }, 90_000);

    it('during the upload: the lock left behind is taken over by the re-run', async () => {
      touchBundle('dropped upload');
      const { r, again } = await dropDuring(
        { line: /^sent \S+/, slowFrom: /: sending \d+ files/ },
        /^upload$/,
      );
      // The failed release (a clean-up error) is a secondary line, never the error itself.
      expect(r.stderr).toMatch(/^error: the SSH connection to \S+ dropped during upload: .*upload step/m);
      expect(r.stderr).toMatch(
        /^also: .*cannot read the host lock .*the lock stays until a run from this machine/m,
      );
      expect(JSON.parse(r.stdout).secondary).toHaveLength(1);
      expect(again.stderr).toMatch(/took over .*no longer runs on this machine/);
    }, 90_000);

    it('during the bootstrap', async () => {
      sim.containers.clear();
      const { again } = await dropDuring({ line: /^start\s+traefik/ }, /^bootstrap$/, ['--force']);
      expect(again.stderr).toMatch(/took over/);
      // The events stream of the dropped run ended on the host too: nothing is left listening.
      expect(await eventually(() => sim.listening === 0)).toBe(true);
    }, 90_000);

    it('while releasing the lock: the release error is reported, and the re-run takes the lock over', async () => {
      const { r, again } = await dropDuring(
        { line: /bifrost provisioned in/, slowFrom: /^step\s+status/ },
        /^(recording the deploy|releasing the host lock)$/,
        ['--force'],
      );
      expect(r.stderr).toMatch(/dropped during releasing the host lock/);
      expect(again.stderr).toMatch(/took over/);
    }, 90_000);
  });

  it('no secret value in any output', ({ task }) => {
    for (const text of outputs.read(task)) expect(findLeaks(text, values)).toEqual([]);
    expect(readdirSync(host.tmp).filter((n) => !n.startsWith('tsx-'))).toEqual([]);
  });

  it('leaves no lock or dead lock dir behind', () => {
    const parent = join(host.remoteDir, '..');
    expect(readdirSync(parent).filter((n) => n.includes('.lock') || n.includes('.dead-'))).toEqual([]);
    expect(statSync(host.remoteDir).isDirectory()).toBe(true);
  });
});
