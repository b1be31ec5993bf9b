/**
 * The Bifrost engine against the docker simulator on the reference health timeline (referenceTimeline
 * in test/helpers/bifrost-fixture.ts), scaled by 0.2, each simulated docker call costing CALL_MS like a
 * local docker CLI process. Side by side in one run:
 *   - the engine listening to one docker events stream (today's),
 *   - the same engine polling `docker inspect` (before), over a docker whose events stream fails,
 *   - the original bootstrap.sh's method: strictly sequential, `docker inspect` every 5 s (scaled).
 * For each: the time from the first docker call to the end of the boot, its ratio to the plan's critical
 * path, and the docker CLI processes it started (the events stream counts as one). Beside them the floor:
 * the critical path plus the docker calls that must sit on it (up, run migrate, up, exec the token) and
 * 20 ms per health wait on it. A first boot without NB_PROXY_TOKEN (the proxy's token minted on the host)
 * is shown too: its NetBird branch runs beside Authentik's and stays off the critical path. Goals: ≤ 40 processes, ≤ 1.03× the critical path, a re-run with
 * nothing to change ≤ 5 processes. A discarded warm-up run first: JIT warm-up is not a docker cost.
 */
import type { DockerCli } from '../scripts/lib/bifrost/docker.ts';
import { runBifrostBootstrap } from '../scripts/lib/bifrost/engine.ts';
import { DockerSimulator } from '../scripts/lib/sandbox/docker-simulator.ts';
import {
  bifrostSecrets,
  capturedOutput,
  makeBundle,
  referenceTimeline,
} from '../test/helpers/bifrost-fixture.ts';
import { withoutDockerEvents } from '../test/helpers/no-docker-events.ts';

const SCALE = 0.2;
const SECOND = 1000 * SCALE;
const CALL_MS = 40;
// postgres 8 → migrate 6 → server 45 (worker 40) → the ak-shell token. NetBird no longer waits for that
// token (no file it reads names it): config → netbird-server 4 → agent 4 (or → proxy token → proxy 3)
// runs beside Authentik from the first up, 8–11 s of the 59.
const CRITICAL_PATH_S = (8 + 6 + 45) * SCALE;
/** The docker calls that must sit on the critical path: up, run migrate, up, exec the token. */
const CALLS_ON_PATH = 4;
/** Health waits on the critical path: traefik/postgres, authentik-server. */
const WAITS_ON_PATH = 2;
const FLOOR_S = CRITICAL_PATH_S + (CALLS_ON_PATH * CALL_MS + WAITS_ON_PATH * 20) / 1000;

interface Figure {
  seconds: number;
  processes: number;
}

/** `mintProxyToken`: a bundle without NB_PROXY_TOKEN, so the engine mints the proxy's token on the host. */
function simulator(mintProxyToken = false) {
  const bundle = makeBundle(mintProxyToken ? bifrostSecrets({ NB_PROXY_TOKEN: undefined }) : undefined);
  const sim = new DockerSimulator({
    dir: bundle.dir,
    ...referenceTimeline(SECOND),
    callLatencyMs: CALL_MS,
  });
  const cli: DockerCli = { docker: 'docker', compose: ['docker', 'compose'], dir: bundle.dir };
  return { sim, cli, bundle };
}

/** First docker call to the end of the boot (`ended`, on the simulator's clock); every process started. */
function figure(sim: DockerSimulator, ended: number, from = 0): Figure {
  const calls = sim.calls.slice(from).filter((c) => c.argv[0] !== 'cloud-init');
  const first = Math.min(...calls.map((c) => c.startedAt));
  return { seconds: (ended - first) / 1000, processes: sim.calls.length - from };
}

/**
 * A first boot, then a re-run with nothing to change, on one simulator; `poll`: its docker cannot stream
 * events, so the engine polls `docker inspect` (the failed stream is no docker process of the simulator's).
 */
async function engineBoot(poll: boolean, mintProxyToken = false): Promise<{ first: Figure; rerun: Figure }> {
  const { sim, cli, bundle } = simulator(mintProxyToken);
  const executor = poll ? withoutDockerEvents(sim) : sim;
  try {
    const { out } = capturedOutput();
    const result = await runBifrostBootstrap({ executor, cli, out });
    if (!result.ok) throw new Error(`engine failed: ${result.failure?.message}`);
    const first = figure(sim, sim.now());
    const before = sim.calls.length;
    const again = await runBifrostBootstrap({ executor, cli, out });
    if (!again.ok) throw new Error(`engine re-run failed: ${again.failure?.message}`);
    return { first, rerun: figure(sim, sim.now(), before) };
  } finally {
    await sim.close();
    bundle.cleanup();
  }
}

/** The original bootstrap.sh's method: one service at a time, `docker inspect` every 5 s (scaled). */
async function sequential(): Promise<Figure> {
  const { sim, cli, bundle } = simulator();
  try {
    const compose = (...args: string[]) =>
      sim.run({
        argv: [
          ...cli.compose,
          '-f',
          `${cli.dir}/docker-compose.yml`,
          '--project-directory',
          cli.dir,
          ...args,
        ],
      });
    const wait = async (name: string) => {
      for (;;) {
        const r = await sim.run({ argv: ['docker', 'inspect', name] });
        const state = JSON.parse(r.stdout)[0]?.State;
        if (state?.Health?.Status === 'healthy') return;
        await new Promise((res) => setTimeout(res, 5 * SECOND));
      }
    };
    // The engine renders the env files; the sequential method needs them present too.
    await runBifrostBootstrap({
      executor: new DockerSimulator({ dir: cli.dir, timeline: {} }),
      cli,
      out: capturedOutput().out,
      plan: [],
    });
    for (const svc of ['traefik', 'authentik-postgres']) {
      await compose('up', '-d', svc);
      await wait(svc);
    }
    await compose('run', '--rm', '--no-deps', 'authentik-server', 'migrate');
    await compose('up', '-d', 'authentik-server', 'authentik-worker');
    await wait('authentik-server');
    await wait('authentik-worker');
    await sim.run({
      argv: ['docker', 'exec', '-i', 'authentik-server', 'ak', 'shell'],
      input: 'netbird-mgmt-token AUTHENTIK_BOOTSTRAP_TOKEN',
    });
    for (const svc of ['netbird-server', 'netbird-dashboard', 'netbird-proxy', 'netbird-agent']) {
      await compose('up', '-d', svc);
      await wait(svc);
    }
    return figure(sim, sim.now());
  } finally {
    await sim.close();
    bundle.cleanup();
  }
}

const verdict = (ok: boolean) => (ok ? 'meets goal' : 'MISSES goal');

export async function benchBifrost(): Promise<void> {
  await engineBoot(false); // warm-up, discarded
  const events = await engineBoot(false);
  const polling = await engineBoot(true);
  const minting = await engineBoot(false, true);
  const seq = await sequential();
  const ratio = (f: Figure) => (f.seconds / CRITICAL_PATH_S).toFixed(3);
  const row = (name: string, f: Figure, extra = '') =>
    console.log(
      `  ${name.padEnd(44)} ${f.seconds.toFixed(2).padStart(6)} s  ratio ${ratio(f)}  ${String(f.processes).padStart(4)} docker processes${extra}`,
    );
  console.log(
    `\nbifrost engine on the docker simulator, reference timeline × ${SCALE}, ${CALL_MS} ms per docker call`,
  );
  console.log(`  critical path of the plan                    ${CRITICAL_PATH_S.toFixed(2).padStart(6)} s`);
  console.log(
    `  floor: path + ${CALLS_ON_PATH} calls on it × ${CALL_MS} ms + ${WAITS_ON_PATH} health waits × 20 ms  ${FLOOR_S.toFixed(2)} s  ratio ${(FLOOR_S / CRITICAL_PATH_S).toFixed(3)}`,
  );
  row(
    'first boot, listening (docker events)',
    events.first,
    `   goals ≤ 1.03 (${verdict(events.first.seconds / CRITICAL_PATH_S <= 1.03)}), ≤ 40 processes (${verdict(events.first.processes <= 40)}); over the floor ${(events.first.seconds / FLOOR_S).toFixed(3)}`,
  );
  row(
    'first boot, proxy token minted on the host',
    minting.first,
    `   goal ≤ 1.03 (${verdict(minting.first.seconds / CRITICAL_PATH_S <= 1.03)})`,
  );
  row('first boot, polling docker inspect (before)', polling.first);
  row('original method: sequential, 5 s polling', seq);
  row(
    're-run, nothing to change, listening',
    events.rerun,
    `   goal ≤ 5 processes (${verdict(events.rerun.processes <= 5)})`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await benchBifrost();
