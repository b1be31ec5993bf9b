/**
 * The Bifrost engine on the REAL tiers (the event-driven boot): Debian's dockerd in a network
 * namespace with the busybox stand-in images (test/harness/docker-engine.ts), first over the local
 * executor, then over SSH to a loopback sshd (test/harness/sshd.ts). For a first boot (no containers,
 * a fresh bundle copy) and a re-run with nothing to change, it prints:
 *   - docker processes: every docker / docker-compose process the run started, counted by the logging
 *     wrappers the engine is given as --docker / --compose (the events stream is one process); cloud-init
 *     (not docker) is shown apart;
 *   - the boot time: the engine's run, from its first command to its result (the SSH handshake before it
 *     not included);
 *   - over SSH, the channels sshd opened for the run, read from its DEBUG1 log: exec channels
 *     (`session_input_channel_req: … req exec`, one per command) and SFTP subsystems (file reads/writes).
 * Each beside the same run polling `docker inspect` (the engine's way when docker cannot stream events,
 * its old way always): its executor fails `docker events` at once. Prints figures; never asserts.
 * Skips with a printed reason without root, dockerd or sshd. The stand-ins are healthy ~1 s after start and
 * their healthchecks run every 1 s (the bundle copy's intervals shortened, as the real-engine test does).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { DockerCli } from '../scripts/lib/bifrost/docker.ts';
import { runBifrostBootstrap } from '../scripts/lib/bifrost/engine.ts';
import type { Executor } from '../scripts/lib/exec/executor.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { connectSsh } from '../scripts/lib/exec/ssh.ts';
import { prepareBundleCopy } from '../test/harness/bifrost-bundle.ts';
import {
  buildBifrostStandInImages,
  type DockerCliWrappers,
  type DockerEngine,
  dockerEngineAvailable,
  startDockerEngine,
  writeDockerCliWrappers,
} from '../test/harness/docker-engine.ts';
import { findSshd, type SshdServer, startSshd } from '../test/harness/sshd.ts';
import { bifrostSecrets, capturedOutput } from '../test/helpers/bifrost-fixture.ts';
import { withoutDockerEvents } from '../test/helpers/no-docker-events.ts';

interface Figures {
  seconds: number;
  docker: number;
  inspects: number;
  ups: number;
  other: number;
  /** Over SSH: channels sshd opened during the run. */
  exec?: number;
  sftp?: number;
  ok: boolean;
  failure?: string;
}

/** A fresh bundle copy named `bifrost` (compose's project name), secrets as provisioning writes them. */
async function freshBundle(parent: string): Promise<string> {
  const dir = join(mkdtempSync(join(parent, 'bundle-')), 'bifrost');
  const { secretsEnv, dotEnv } = bifrostSecrets();
  const defined = Object.fromEntries(
    Object.entries(secretsEnv).filter((e): e is [string, string] => e[1] !== undefined),
  );
  await prepareBundleCopy(dir, { secretsEnv: defined, dotEnv }, { healthcheckIntervalSeconds: 1 });
  return dir;
}

/** Every container, network and volume of the project gone: the next boot is a first boot. */
async function down(engine: DockerEngine, dir: string): Promise<void> {
  const r = await execa(
    'docker-compose',
    ['-f', `${dir}/docker-compose.yml`, '--project-directory', dir, 'down', '-v', '--remove-orphans'],
    { env: { ...process.env, ...engine.env }, reject: false, timeout: 120_000 },
  );
  if (r.exitCode !== 0) throw new Error(`docker-compose down failed: ${String(r.stderr).trim()}`);
}

/** One engine run through `executor`, counted by the wrappers (and sshd's log when given). */
async function boot(
  executor: Executor,
  wrappers: DockerCliWrappers,
  dir: string,
  opts: { poll: boolean; sshd?: SshdServer },
): Promise<Figures> {
  const cli: DockerCli = { docker: wrappers.docker, compose: [wrappers.compose], dir };
  wrappers.reset();
  const logFrom = opts.sshd?.log.length ?? 0;
  const commands: string[] = [];
  // Polling: docker events fails without starting a process, so the engine polls from the start.
  const inner = opts.poll ? withoutDockerEvents(executor) : executor;
  const counted: Executor = {
    where: inner.where,
    files: inner.files,
    close: () => inner.close(),
    run: (cmd) => {
      commands.push(cmd.argv[0] ?? '');
      return inner.run(cmd);
    },
  };
  const t0 = performance.now();
  const result = await runBifrostBootstrap({
    executor: counted,
    cli,
    out: capturedOutput().out,
  });
  const seconds = (performance.now() - t0) / 1000;
  // sshd logs a channel's requests as they come; give its stderr a moment to reach us.
  await new Promise((r) => setTimeout(r, opts.sshd ? 200 : 0));
  const calls = wrappers.calls();
  const log = opts.sshd?.log.slice(logFrom) ?? '';
  const lines = (re: RegExp) => log.split('\n').filter((l) => re.test(l)).length;
  return {
    seconds,
    docker: calls.length,
    inspects: calls.filter((c) => c.args.startsWith('inspect ')).length,
    ups: calls.filter((c) => / up -d /.test(c.args)).length,
    other: commands.filter((c) => c !== wrappers.docker && c !== wrappers.compose).length,
    ...(opts.sshd
      ? { exec: lines(/session_input_channel_req: session \d+ req exec/), sftp: lines(/req subsystem/) }
      : {}),
    ok: result.ok,
    failure: result.failure?.message.split('\n')[0],
  };
}

function row(label: string, f: Figures): string {
  const ssh = f.exec === undefined ? '' : `   ${String(f.exec).padStart(4)} exec + ${f.sftp} sftp channels`;
  return `  ${label.padEnd(38)} ${f.seconds.toFixed(2).padStart(7)} s   ${String(f.docker).padStart(4)} docker processes (${f.inspects} inspect, ${f.ups} up) + ${f.other} cloud-init${ssh}${f.ok ? '' : `   FAILED: ${f.failure}`}`;
}

/** First boot and no-change re-run, listening (the engine's way) and polling (no events stream). */
async function pairs(
  engine: DockerEngine,
  root: string,
  run: (dir: string, poll: boolean) => Promise<Figures>,
): Promise<void> {
  for (const poll of [false, true]) {
    const dir = await freshBundle(root);
    const mode = poll ? 'polling' : 'events';
    console.log(row(`first boot, ${mode}`, await run(dir, poll)));
    console.log(row(`re-run, nothing to change, ${mode}`, await run(dir, poll)));
    await down(engine, dir);
  }
}

export async function benchBifrostReal(): Promise<void> {
  console.log('\nbifrost engine on a real Docker engine (busybox stand-ins, healthchecks every 1 s)');
  const available = dockerEngineAvailable();
  if (!available.ok) {
    console.log(`  skipped: ${available.reason}`);
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'sf-bench-real-'));
  let engine: DockerEngine | undefined;
  let sshd: SshdServer | undefined;
  try {
    engine = await startDockerEngine({ name: 'bench-real' });
    await buildBifrostStandInImages(engine);
    const wrappers = await writeDockerCliWrappers(engine, join(root, 'bin'));
    const local = new LocalExecutor();
    await pairs(engine, root, (dir, poll) => boot(local, wrappers, dir, { poll }));

    const sshdPath = findSshd('the real-engine benchmark over SSH');
    if (!sshdPath) {
      console.log('  over SSH: skipped (no sshd)');
      return;
    }
    const server = await startSshd(sshdPath, { logLevel: 'DEBUG1' });
    sshd = server;
    console.log(`over a loopback sshd (one connection per run; channels counted in sshd's DEBUG1 log)`);
    await pairs(engine, root, async (dir, poll) => {
      // The SSH user owns the fresh bundle copy and runs the wrappers against the engine's socket.
      if (process.getuid?.() === 0) wrappers.shareWith(server.user, [root]);
      // The server carries the SSH options under their own names (host, port, user, identity, knownHosts).
      const ssh = await connectSsh(server);
      try {
        return await boot(ssh, wrappers, dir, { poll, sshd: server });
      } finally {
        await ssh.close();
      }
    });
  } catch (err) {
    console.log(`  failed: ${(err as Error).message}`);
  } finally {
    await sshd?.stop();
    await engine?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchBifrostReal();
