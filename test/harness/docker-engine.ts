/**
 * A real Docker engine for tests (Debian `docker.io` 20.10 + `docker-compose` 1.29), and offline stand-in
 * images for the Bifrost bundle.
 *
 * dockerd runs inside a network namespace created here, so its bridges, published ports and iptables rules
 * never touch the machine's own namespace; every piece of its state (data-root, exec-root, pidfile, socket,
 * trust key, cgroup parent) lives under one temp dir or one name of our own, so stop() can remove exactly
 * what this engine made. Processes are stopped by process id, never by name: other engines (other test
 * workers, other people) may run the same binaries on this machine.
 *
 * No registry is reachable, so every image is built from the machine's static busybox: `docker import` of a
 * rootfs, then one `docker build` per image that adds small shell scripts answering the commands the
 * compose file's healthchecks and the bootstrap engine run (see STANDINS).
 */

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { NETBIRD_CLIENT_STATUS } from '../../scripts/lib/bifrost/pinned-images.ts';
import { findOnPath } from '../../scripts/lib/exec/which.ts';
import { recordCreated } from '../helpers/leak-ledger.ts';
import { CrashStops } from './crash-stop.ts';

export interface DockerEngine {
  /** `unix:///tmp/sf-dockerd-…/docker.sock` */
  dockerHost: string;
  /** DOCKER_HOST (and DOCKER_CONFIG, so ~/.docker is never read or written) for child processes. */
  env: Record<string, string>;
  /** The network namespace dockerd runs in (`ip netns exec NAME …` reaches published ports). */
  netns: string;
  /** The temp dir holding all of the engine's state; gone after stop(). */
  root: string;
  /** dockerd's (and its containerd's) log; for failure messages. */
  logFile: string;
  /** Removes the containers, stops dockerd and containerd by pid, removes the netns and the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** The services of cloud/bifrost/docker-compose.yml, each of which gets a stand-in image. */
export const BIFROST_SERVICES = [
  'traefik',
  'authentik-postgres',
  'authentik-server',
  'authentik-worker',
  'netbird-server',
  'netbird-dashboard',
  'netbird-proxy',
  'netbird-agent',
] as const;
export type ServiceName = (typeof BIFROST_SERVICES)[number];

const INSTALL_HINT = 'apt-get install -y docker.io docker-compose busybox-static iproute2';
const BASE_IMAGE = 'secrets-flow/standin-busybox:1';
/** An imported image has no PATH of its own; set the usual one so commands resolve the same everywhere. */
const STANDIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..');
const DEFAULT_COMPOSE_FILE = join(PROJECT_ROOT, 'cloud', 'bifrost', 'docker-compose.yml');

// ---------------------------------------------------------------------------------------------------------
// Prerequisites

/** Daemons live in sbin, which a non-login PATH may lack; look there too. */
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

function findTool(name: string): string | undefined {
  return (
    findOnPath(name) ?? findOnPath(name, { PATH: EXTRA_DIRS.join(':') } as NodeJS.ProcessEnv) ?? undefined
  );
}

/** The docker CLI: $DOCKER (as the product honours it), else `docker` on PATH. */
function dockerCli(): string | undefined {
  return process.env.DOCKER || findTool('docker');
}

/**
 * True when an ELF file has no PT_INTERP header, i.e. it is statically linked. The stand-in rootfs has no
 * libc, so Debian's dynamically linked `busybox` package would give images in which nothing runs.
 */
function isStaticElf(path: string): boolean | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return undefined;
  }
  // ELF magic, 64-bit (class 2), little-endian (data 1): the only layout this harness meets (x86-64, arm64).
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return undefined;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (buf.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** Whether this machine can run the engine: root, and the Debian packages installed. Nothing is started. */
export function dockerEngineAvailable(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) {
    return { ok: false, reason: 'needs root (network namespaces, mounts and dockerd)' };
  }
  const tools: [string, string][] = [
    ['dockerd', 'docker.io'],
    ['containerd', 'docker.io (containerd)'],
    ['runc', 'docker.io (runc)'],
    ['docker', 'docker.io'],
    ['docker-compose', 'docker-compose'],
    ['ip', 'iproute2'],
    ['nsenter', 'util-linux'],
    ['tar', 'tar'],
    ['busybox', 'busybox-static'],
  ];
  const missing = tools
    .filter(([name]) => (name === 'docker' ? !dockerCli() : !findTool(name)))
    .map(([name, pkg]) => `${name} (${pkg})`);
  if (missing.length > 0) {
    return { ok: false, reason: `missing: ${missing.join(', ')}; install with: ${INSTALL_HINT}` };
  }
  const busybox = findTool('busybox') ?? '';
  if (isStaticElf(busybox) === false) {
    return {
      ok: false,
      reason: `${busybox} is dynamically linked (the busybox package); images need busybox-static: ${INSTALL_HINT}`,
    };
  }
  return { ok: true };
}

// ---------------------------------------------------------------------------------------------------------
// Process helpers (all by pid)

function procState(pid: number): string | undefined {
  try {
    // Field 3 of /proc/PID/stat, after the parenthesised command name (which may contain spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** A zombie counts as gone: its parent (possibly a reaper we do not control) just has not collected it. */
function alive(pid: number): boolean {
  const state = procState(pid);
  return state !== undefined && state !== 'Z' && state !== 'X';
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Pids whose command line mentions our temp dir: dockerd, its containerd, and containerd's shims. */
function pidsMentioning(root: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid !== process.pid && cmdline(pid).includes(`${root}/`)) pids.push(pid);
  }
  return pids;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await sleep(50);
  }
  return !alive(pid);
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** GET /_ping on the engine's socket: cheaper than spawning the docker CLI every 100 ms. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((done) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup shared by stop() and the emergency exit hook

interface EngineState {
  root: string;
  netns: string;
  cgroupParent: string;
  dockerdPid?: number;
  /** Host paths that dockerd/containerd create outside the temp dir and that did not exist before us. */
  createdHostDirs: string[];
}

/**
 * Engines not stopped yet. If the test process dies without calling stop() (an uncaught error, the worker
 * torn down), our daemons are killed rather than left running on the machine: SIGKILL, because an exit
 * hook cannot wait.
 */
const liveEngines = new CrashStops<EngineState>((state) => {
  if (state.dockerdPid) signal(state.dockerdPid, 'SIGKILL');
  finalCleanup(state);
});

/** Everything our engine may have left in cgroupfs: one parent of our own per controller. */
function cgroupDirs(parent: string): string[] {
  const base = '/sys/fs/cgroup';
  let controllers: string[] = [];
  try {
    controllers = readdirSync(base);
  } catch {
    return [];
  }
  return controllers.map((c) => join(base, c, parent)).filter((d) => existsSync(d));
}

/** Kill whatever still runs in our containers' cgroups (only after dockerd failed to stop them). */
function killCgroupProcs(parent: string): void {
  for (const dir of cgroupDirs(parent)) {
    const walk = (d: string): void => {
      for (const e of safeReaddir(d)) if (e.isDirectory()) walk(join(d, e.name));
      for (const file of ['cgroup.procs', 'tasks']) {
        try {
          for (const line of readFileSync(join(d, file), 'utf8').split('\n')) {
            if (/^\d+$/.test(line)) signal(Number(line), 'SIGKILL');
          }
        } catch {
          // controller without that file
        }
      }
    };
    walk(dir);
  }
}

function safeReaddir(d: string) {
  try {
    return readdirSync(d, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** cgroup dirs are removed with rmdir, children first; rm -r would fail on their pseudo-files. */
function removeCgroupDirs(parent: string): void {
  for (const dir of cgroupDirs(parent)) {
    const walk = (d: string): void => {
      for (const e of safeReaddir(d)) if (e.isDirectory()) walk(join(d, e.name));
      try {
        rmdirSync(d);
      } catch {
        // still busy, or another engine's
      }
    };
    walk(dir);
  }
}

function mountsUnder(root: string): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((mp) => mp === root || mp.startsWith(`${root}/`))
      .sort((a, b) => b.length - a.length);
  } catch {
    return [];
  }
}

/** The synchronous tail of every stop: leftovers by pid, mounts, netns, cgroups, temp dir. */
function finalCleanup(state: EngineState): string[] {
  const problems: string[] = [];
  for (const pid of pidsMentioning(state.root)) signal(pid, 'SIGKILL');
  killCgroupProcs(state.cgroupParent);
  // Left even after a clean exit: exec/netns/default, the bind mount of our netns that dockerd makes for
  // network_mode: host (it would keep the namespace alive after `ip netns del`); after a kill, also the
  // overlay and the data-root mounts. -n: do not let libmount create /run/mount/utab on the host.
  for (const mp of mountsUnder(state.root)) {
    try {
      execFileSync('umount', ['-n', '-l', mp], { stdio: 'ignore' });
    } catch {
      problems.push(`could not unmount ${mp}`);
    }
  }
  try {
    execFileSync(findTool('ip') ?? 'ip', ['netns', 'del', state.netns], { stdio: 'ignore' });
  } catch {
    if (existsSync(`/run/netns/${state.netns}`)) problems.push(`could not remove netns ${state.netns}`);
  }
  removeCgroupDirs(state.cgroupParent);
  try {
    rmSync(state.root, { recursive: true, force: true, maxRetries: 3 });
  } catch (e) {
    problems.push(`could not remove ${state.root}: ${(e as Error).message}`);
  }
  // Only dirs we caused, and only when empty: another engine may be using them right now.
  for (const dir of state.createdHostDirs) {
    try {
      rmdirSync(dir);
    } catch {
      // not empty (another engine) or already gone
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// The engine

/**
 * Starts dockerd inside a fresh network namespace with all state in a temp dir, and waits until it answers.
 * Throws a clear error when a prerequisite is missing or dockerd does not come up (with its log's tail).
 */
export async function startDockerEngine(opts: { name?: string } = {}): Promise<DockerEngine> {
  const available = dockerEngineAvailable();
  if (!available.ok) throw new Error(`cannot start a Docker engine: ${available.reason}`);
  const dockerd = findTool('dockerd') as string;
  const nsenter = findTool('nsenter') as string;
  const ip = findTool('ip') as string;

  const label = (opts.name ?? 'engine')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 16);
  const netns = `sfd-${label}-${process.pid}-${randomBytes(2).toString('hex')}`;
  // Short path: unix socket paths (containerd's, under exec-root) are limited to 108 bytes.
  const root = await mkdtemp(join(tmpdir(), 'sf-dockerd-'));
  const state: EngineState = {
    root,
    netns,
    cgroupParent: `/${netns}`,
    createdHostDirs: ['/run/containerd/s', '/run/containerd', '/run/docker/plugins', '/run/docker'].filter(
      (d) => !existsSync(d),
    ),
  };
  const socket = join(root, 'docker.sock');
  const logFile = join(root, 'dockerd.log');
  const daemonConfig = {
    'data-root': join(root, 'data'),
    'exec-root': join(root, 'exec'),
    pidfile: join(root, 'dockerd.pid'),
    hosts: [`unix://${socket}`],
    // Otherwise dockerd 20.10 writes /etc/docker/key.json.
    'deprecated-key-path': join(root, 'key.json'),
    'storage-driver': 'overlay2',
    // No systemd here; and a cgroup parent of our own, so cleanup knows exactly which cgroups are ours.
    'exec-opts': ['native.cgroupdriver=cgroupfs'],
    'cgroup-parent': state.cgroupParent,
    // Root lacks CAP_SYS_RESOURCE here: containers cannot get limits above the shell's (nofile 20000).
    'default-ulimits': {
      nofile: { Name: 'nofile', Soft: 20000, Hard: 20000 },
      nproc: { Name: 'nproc', Soft: 32768, Hard: 32768 },
    },
    // Bridges and published ports need NAT rules; inside our netns they stay out of the host's tables.
    iptables: true,
    'log-level': 'info',
  };
  const configFile = join(root, 'daemon.json');
  await writeFile(configFile, `${JSON.stringify(daemonConfig, null, 2)}\n`);

  try {
    execFileSync(ip, ['netns', 'add', netns], { stdio: 'pipe' });
  } catch (e) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`cannot create network namespace ${netns}: ${(e as Error).message}`);
  }
  recordCreated('netns', netns);
  liveEngines.add(state);

  const started = Date.now();
  try {
    execFileSync(ip, ['-n', netns, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    const logFd = openSync(logFile, 'a');
    // nsenter without --fork execs dockerd in place, so this pid is dockerd's own. detached: a Ctrl-C
    // aimed at the test runner must not kill dockerd before stop() has removed its containers.
    // TMPDIR inside the engine's own dir: containerd writes containerd.PID.stacks.log there when it stops.
    const engineTmp = join(root, 'tmp');
    mkdirSync(engineTmp);
    const child = spawn(nsenter, [`--net=/run/netns/${netns}`, dockerd, '--config-file', configFile], {
      stdio: ['ignore', logFd, logFd],
      detached: true,
      env: { ...process.env, TMPDIR: engineTmp },
    });
    closeSync(logFd);
    child.unref();
    state.dockerdPid = child.pid;
    let exited: string | undefined;
    child.on('exit', (code, sig) => {
      exited = `exit code ${code ?? sig}`;
    });
    child.on('error', (e) => {
      exited = e.message;
    });

    const deadline = Date.now() + 30_000;
    while (!(await ping(socket))) {
      if (exited) throw new Error(`dockerd exited during start-up (${exited})`);
      if (Date.now() > deadline) throw new Error('dockerd did not answer on its socket within 30 s');
      await sleep(100);
    }
  } catch (e) {
    const log = tail(logFile, 25);
    if (state.dockerdPid) signal(state.dockerdPid, 'SIGKILL');
    await sleep(200);
    finalCleanup(state);
    liveEngines.delete(state);
    throw new Error(`${(e as Error).message}\n--- dockerd log (last lines) ---\n${log}`);
  }

  const dockerHost = `unix://${socket}`;
  const env = { DOCKER_HOST: dockerHost, DOCKER_CONFIG: join(root, 'cli-config') };
  let stopping: Promise<void> | undefined;

  const stop = async (): Promise<void> => {
    const dockerdPid = state.dockerdPid;
    const containerdPid = readPid(join(root, 'exec', 'containerd', 'containerd.pid'));
    const problems: string[] = [];
    // 1. Remove the containers first: dockerd's own shutdown gives each one its stop grace period.
    if (dockerdPid && alive(dockerdPid)) {
      const docker = dockerCli() as string;
      const ps = await execa(docker, ['ps', '-aq'], { env, reject: false, timeout: 20_000 });
      const ids = String(ps.stdout).split('\n').filter(Boolean);
      if (ids.length > 0) {
        const rmResult = await execa(docker, ['rm', '-f', '-v', ...ids], {
          env,
          reject: false,
          timeout: 60_000,
        });
        if (rmResult.exitCode !== 0) problems.push(`docker rm -f: ${String(rmResult.stderr).trim()}`);
      }
    }
    // 2. dockerd, then the containerd it supervises; each verified to be ours before it is signalled.
    for (const [pid, what, grace] of [
      [dockerdPid, 'dockerd', 20_000],
      [containerdPid, 'containerd', 10_000],
    ] as const) {
      if (!pid || !alive(pid) || !cmdline(pid).includes(`${root}/`)) continue;
      signal(pid, 'SIGTERM');
      if (!(await waitGone(pid, grace))) {
        problems.push(`${what} (pid ${pid}) ignored SIGTERM for ${grace / 1000} s; killed`);
        signal(pid, 'SIGKILL');
        await waitGone(pid, 5_000);
      }
    }
    // 3. Shims or container processes that outlived them, mounts, netns, cgroups, temp dir.
    problems.push(...finalCleanup(state));
    liveEngines.delete(state);
    if (problems.length > 0)
      throw new Error(`docker engine ${netns} stopped with problems: ${problems.join('; ')}`);
  };

  const engine: DockerEngine = {
    dockerHost,
    env,
    netns,
    root,
    logFile,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
  console.log(`docker engine ${netns} up in ${Date.now() - started} ms (dockerd pid ${state.dockerdPid})`);
  return engine;
}

// ---------------------------------------------------------------------------------------------------------
// Stand-in images

/** Sourced by every stand-in script. */
const LIB_SH = `# Shared helpers of the Bifrost stand-in images (built by test/harness/docker-engine.ts).
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $STANDIN_NAME: $*"; }
err() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $STANDIN_NAME: ERROR: $*" >&2; }
# A shell as PID 1 ignores SIGTERM unless it traps it: without this, docker stop waits its full grace.
on_term() { trap 'log "SIGTERM: exiting"; exit 0' TERM INT; }
# sleep in the background and wait: a trapped signal interrupts wait at once, not after the sleep.
pause() { sleep "$1" & wait $!; }
forever() { while :; do pause 3600; done; }
# Serve DIR on PORT in the background (busybox httpd), for the wget healthchecks.
serve() { httpd -f -p "$1" -h "$2" & }
sha() { sha256sum | cut -c1-64; }
`;

const TRAEFIK_SH = `#!/bin/sh
# traefik stand-in: \`traefik healthcheck --ping\` succeeds once the server has become ready.
. /usr/local/lib/standin.sh
READY=/tmp/traefik.ready
case "$1" in
  healthcheck)
    [ -f $READY ] && { echo "OK: http://:8080/ping"; exit 0; }
    echo "Error calling healthcheck: not ready yet" >&2; exit 1 ;;
  version) echo "Version: 3.3 (stand-in)"; exit 0 ;;
esac
on_term
log "starting (args: $*)"
[ -f /etc/traefik/traefik.yml ] && log "Configuration loaded from file: /etc/traefik/traefik.yml"
pause "\${READY_AFTER:-1}"
touch $READY
log "ready"
forever
`;

/**
 * postgres stand-in. Like the real image it refuses to initialise without POSTGRES_PASSWORD and keeps the
 * password of its first start (in the data volume). Authentik's stand-in "connects" with busybox wget to
 * port 5432, where httpd serves one file named after sha256(user:password): a wrong password gives a 404,
 * which it reports as an authentication failure, as the real server would after a password change.
 */
const PG_ENTRYPOINT_SH = `#!/bin/sh
. /usr/local/lib/standin.sh
[ "$1" = postgres ] || exec "$@"
on_term
PGDATA=\${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    exit 1
  fi
  mkdir -p "$PGDATA/standin/auth"
  touch "$PGDATA/standin/auth/$(printf '%s:%s' "\${POSTGRES_USER:-postgres}" "$POSTGRES_PASSWORD" | sha)"
  echo ok > "$PGDATA/standin/ping"
  echo 16 > "$PGDATA/PG_VERSION"
  log "PostgreSQL init process complete; ready for start up."
else
  log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
fi
pause "\${READY_AFTER:-1}"
serve 5432 "$PGDATA/standin"
log "database system is ready to accept connections"
forever
`;

const PG_ISREADY_SH = `#!/bin/sh
# pg_isready stand-in: exit codes as the real one (0 accepting, 2 no response).
if timeout 3 wget -q -O /dev/null http://127.0.0.1:5432/ping 2>/dev/null; then
  echo "/var/run/postgresql:5432 - accepting connections"; exit 0
fi
echo "/var/run/postgresql:5432 - no response"; exit 2
`;

/**
 * Authentik's \`ak\` stand-in (the real image's entrypoint is \`dumb-init -- ak\`, command \`server\`).
 * The worker creates akadmin (a marker in the authentik_media volume, shared with the server); \`ak shell\`
 * reads Python from stdin like Django's shell and answers only the netbird-mgmt-token request.
 */
const AK_SH = `#!/bin/sh
. /usr/local/lib/standin.sh
READY=/tmp/ak.ready
AKADMIN=/media/.standin-akadmin-exists
jlog() { # structlog-style JSON lines, as Authentik prints them
  printf '{"event": "%s", "level": "%s", "logger": "%s", "timestamp": "%s"}\\n' \\
    "$(printf '%s' "$1" | sed 's/["\\\\]/\\\\&/g')" "$2" "$3" "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"
}
require_config() {
  for v in AUTHENTIK_SECRET_KEY AUTHENTIK_POSTGRESQL__PASSWORD; do
    eval "val=\\$$v"
    [ -n "$val" ] || { jlog "$v is not set" error authentik.lib.config >&2; exit 1; }
  done
}
db_check() { # 0 connected, 1 authentication failed, 2 unreachable
  h=$(printf '%s:%s' "\${AUTHENTIK_POSTGRESQL__USER:-authentik}" "$AUTHENTIK_POSTGRESQL__PASSWORD" | sha)
  out=$(timeout 3 wget -q -O /dev/null "http://\${AUTHENTIK_POSTGRESQL__HOST:-localhost}:5432/auth/$h" 2>&1) && return 0
  case "$out" in *404*) return 1 ;; esac
  return 2
}
wait_for_db() { # like lifecycle/wait_for_db.py: retry while unreachable, stop on bad credentials
  deadline=$(( $(date +%s) + \${DB_WAIT:-60} ))
  while :; do
    db_check; rc=$?
    [ $rc = 0 ] && { jlog "PostgreSQL connection successful" info authentik.lifecycle.wait_for_db; return 0; }
    if [ $rc = 1 ]; then
      jlog "password authentication failed for user \\"\${AUTHENTIK_POSTGRESQL__USER:-authentik}\\"" error authentik.lifecycle.wait_for_db >&2
      exit 1
    fi
    [ "$(date +%s)" -ge $deadline ] && { jlog "PostgreSQL connection failed, giving up" error authentik.lifecycle.wait_for_db >&2; exit 1; }
    jlog "PostgreSQL connection failed, retrying..." info authentik.lifecycle.wait_for_db
    pause 1
  done
}
cmd=\${1:-server}
[ $# -gt 0 ] && shift
case "$cmd" in
  server|worker)
    on_term
    require_config
    wait_for_db
    if [ "$cmd" = server ]; then n=\${READY_AFTER:-\${AK_SERVER_READY_AFTER:-1}}; else n=\${READY_AFTER:-\${AK_WORKER_READY_AFTER:-1}}; fi
    jlog "Starting authentik $cmd" info authentik.lifecycle
    pause "$n"
    touch $READY
    if [ "$cmd" = server ]; then
      mkdir -p /tmp/www/-/health/live && echo ok > /tmp/www/-/health/live/index.html
      serve 9000 /tmp/www
    else
      pause "\${AKADMIN_AFTER:-\${AK_AKADMIN_AFTER:-0}}"
      mkdir -p /media && touch $AKADMIN
      jlog "Applied blueprint: default/default-flow; created user akadmin" info authentik.blueprints.v1.tasks
    fi
    jlog "authentik $cmd ready" info authentik.lifecycle
    forever ;;
  healthcheck)
    [ -f $READY ] && exit 0
    echo "authentik is not ready yet" >&2; exit 1 ;;
  migrate)
    require_config
    wait_for_db
    jlog "Applying migrations" info authentik.lifecycle.migrate
    sleep 1
    jlog "Migrations applied" info authentik.lifecycle.migrate
    exit 0 ;;
  shell)
    # Django's shell executes what arrives on stdin; record every call so a test can see it came that way.
    input=$(cat)
    { echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) argv: shell $*"; printf '%s\\n' "$input"; } >> /media/ak-shell-calls.log
    jlog "Loaded config" debug authentik.lib.config
    jlog "Booting authentik" info authentik.root.settings
    case "$input" in
      *netbird-mgmt-token*) ;;
      *) echo "ak shell stand-in: stdin does not mention netbird-mgmt-token" >&2; exit 2 ;;
    esac
    if [ ! -f $AKADMIN ]; then
      jlog "Query failed" warning authentik.core.models
      echo "ERROR: user akadmin does not exist yet" >&2
      exit 1
    fi
    if [ -z "$AUTHENTIK_BOOTSTRAP_TOKEN" ]; then
      echo "ERROR: AUTHENTIK_BOOTSTRAP_TOKEN is not set in the container" >&2
      exit 3
    fi
    jlog "Token netbird-mgmt-token ensured" info authentik.core.models
    echo "TOKEN:$AUTHENTIK_BOOTSTRAP_TOKEN"
    jlog "Shell finished" debug authentik.root
    exit 0 ;;
  *)
    echo "ak stand-in: unknown command: $cmd" >&2; exit 1 ;;
esac
`;

/**
 * netbird-server stand-in, at /go/bin/netbird-server off PATH as in the real image (netbirdio/netbird@v0.66.0:
 * combined/Dockerfile), so a bare \`docker exec netbird-server netbird-server …\` is not found there either.
 * Compose gives it \`--config /etc/netbird/config.yaml\` (a bind mount of the rendered file). It prints the
 * file's sha256 so a test can tell which version a container started with. \`token create --name N --config
 * F\` answers as management/cmd/token/token.go prints: the token on a \`Token: nbx_…\` line of stdout.
 * Its healthcheck is \`bash -c 'exec 3<>/dev/tcp/127.0.0.1/9090'\` (the real image is ubuntu:24.04): see BASH_SH.
 */
const NETBIRD_SERVER_SH = `#!/bin/sh
. /usr/local/lib/standin.sh
if [ "$1" = token ] && [ "$2" = create ]; then
  shift 2; name=; cfg=
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name=$2; shift 2 ;;
      --config) cfg=$2; shift 2 ;;
      *) shift ;;
    esac
  done
  [ -n "$name" ] || { echo 'Error: required flag(s) "name" not set' >&2; exit 1; }
  [ -f "$cfg" ] || { echo "Error: load config: read config file $cfg: no such file or directory" >&2; exit 1; }
  secret=$(head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 36)
  echo "Token created successfully!"
  echo "Token: nbx_$secret"
  echo
  echo "IMPORTANT: Save this token now. It will not be shown again."
  echo "Token ID: $(head -c 256 /dev/urandom | tr -dc 'a-z0-9' | head -c 20)"
  exit 0
fi
on_term
cfg=
while [ $# -gt 0 ]; do
  case "$1" in
    --config) cfg=$2; shift 2 ;;
    --config=*) cfg=\${1#--config=}; shift ;;
    *) shift ;;
  esac
done
[ -n "$cfg" ] || { err "no --config given"; exit 1; }
# A bind mount whose source is missing makes docker create an empty DIRECTORY at the source path.
[ -f "$cfg" ] || { err "config $cfg is not a regular file"; exit 1; }
cat "$cfg" > /dev/null 2>&1 || { err "config $cfg is not readable"; exit 1; }
log "config $cfg sha256:$(sha < "$cfg")"
# Comment lines may name placeholders (the template documents them); only values count.
grep -v '^[[:space:]]*#' "$cfg" | grep -q '[$][{]' && log "WARN: config $cfg contains unrendered \\\${...} placeholders"
pause "\${READY_AFTER:-1}"
mkdir -p /tmp/www && echo "# stand-in metrics" > /tmp/www/metrics
serve 9090 /tmp/www
log "ready: metrics on :9090/metrics"
forever
`;

const DASHBOARD_SH = `#!/bin/sh
. /usr/local/lib/standin.sh
on_term
log "starting (management endpoint \${NETBIRD_MGMT_API_ENDPOINT:-unset})"
pause "\${READY_AFTER:-1}"
mkdir -p /tmp/www && echo "<html>netbird dashboard stand-in</html>" > /tmp/www/index.html
serve 80 /tmp/www
log "ready: serving :80/"
forever
`;

/**
 * \`bash\` for the netbird-server stand-in, whose real image (ubuntu:24.04) has bash and no wget: the
 * healthcheck is \`bash -c 'exec 3<>/dev/tcp/HOST/PORT'\`, a TCP connect. busybox has no bash and its sh no
 * /dev/tcp, so this answers exactly that form with busybox nc (exit 0 on connect, 1 when refused, as bash)
 * and refuses anything else with exit 2: a healthcheck the stand-in cannot honestly run must fail loudly.
 */
const BASH_SH = `#!/bin/sh
usage() {
  echo "bash stand-in (secrets-flow test image): only \\\`bash -c 'exec 3<>/dev/tcp/HOST/PORT'\\\` is supported; got: $*" >&2
  exit 2
}
[ $# -eq 2 ] && [ "$1" = -c ] || usage "$@"
target=$(printf '%s' "$2" | sed -n 's|^exec 3<>/dev/tcp/\\([A-Za-z0-9.:-]*\\)/\\([0-9][0-9]*\\)$|\\1 \\2|p')
[ -n "$target" ] || usage "$@"
host=\${target% *}
port=\${target#* }
if nc -w 2 "$host" "$port" </dev/null >/dev/null 2>&1; then exit 0; fi
echo "bash: connect: Connection refused" >&2
echo "bash: line 1: /dev/tcp/$host/$port: Connection refused" >&2
exit 1
`;

/**
 * netbird-proxy stand-in: without NB_PROXY_TOKEN it keeps running but never becomes healthy. Once ready it
 * serves /healthz and /healthz/ready on :8080; the healthcheck fetches the latter with /busybox/wget, the
 * only wget of the real image (distroless base:debug), which the stand-in image provides at that path.
 */
const PROXY_SH = `#!/bin/sh
. /usr/local/lib/standin.sh
on_term
log "starting (management \${NB_PROXY_MANAGEMENT_ADDRESS:-unset})"
if [ -z "$NB_PROXY_TOKEN" ]; then
  err "NB_PROXY_TOKEN is empty: cannot authenticate to management"
  forever
fi
pause "\${READY_AFTER:-1}"
mkdir -p /tmp/www/healthz && echo ok > /tmp/www/healthz/index.html && echo ok > /tmp/www/healthz/ready
serve 8080 /tmp/www
log "ready: serving :8080/healthz and :8080/healthz/ready"
forever
`;

/**
 * netbird agent stand-in, as the pinned 0.66.0 client behaves (netbirdio/netbird@v0.66.0:client/cmd/status.go):
 * \`netbird status\` exits 0 whenever the daemon answers, has no --check flag, and prints the pinned client's
 * output for its state (NETBIRD_CLIENT_STATUS, installed under STATUS_DIR): logged out without a setup key,
 * connecting (management not yet reached) until ready, then connected. A test puts it in another state by
 * writing that state's id to /tmp/netbird.state (daemon-down: exit 1, as when the daemon does not answer).
 */
const STATUS_DIR = '/usr/local/share/netbird-status';
const NETBIRD_SH = `#!/bin/sh
. /usr/local/lib/standin.sh
READY=/tmp/netbird.ready
if [ "$1" = status ]; then
  case " $* " in *" --check"*) echo 'Error: unknown flag: --check' >&2; exit 1 ;; esac
  if [ -f /tmp/netbird.state ]; then state=$(cat /tmp/netbird.state)
  elif [ -z "$NB_SETUP_KEY" ]; then state=logged-out
  elif [ -f $READY ]; then state=connected
  else state=management-down; fi
  if [ "$state" = daemon-down ]; then echo "failed to connect to daemon error: connection refused" >&2; exit 1; fi
  case " $* " in *" --json "*) cat ${STATUS_DIR}/$state.json ;; *) cat ${STATUS_DIR}/$state.txt ;; esac
  exit 0
fi
on_term
log "starting (management \${NB_MANAGEMENT_URL:-unset}, hostname \${NB_HOSTNAME:-unset})"
if [ -z "$NB_SETUP_KEY" ]; then
  err "no setup key (NB_SETUP_KEY is empty): waiting for an SSO login that will never come"
  forever
fi
log "logging in with a setup key (\${#NB_SETUP_KEY} chars)"
pause "\${READY_AFTER:-1}"
touch $READY
log "ready: connected"
forever
`;

/** The pinned client's `netbird status` output per state, as files the stand-in prints. */
const NETBIRD_STATUS_FILES = Object.fromEntries(
  NETBIRD_CLIENT_STATUS.states.flatMap((s) => [
    [`${STATUS_DIR}/${s.id}.json`, s.json],
    [`${STATUS_DIR}/${s.id}.txt`, s.text],
  ]),
);

interface StandIn {
  /** The compose services that use this image. */
  services: ServiceName[];
  /** Executable scripts, copied to /usr/local/bin. */
  scripts: Record<string, string>;
  /**
   * Files at absolute paths elsewhere in the image: text (mode 0755), or \`{ symlink: target }\`. Copied
   * through a files/ directory in the build context (\`COPY files/ /\`), which keeps symlinks as they are.
   */
  files?: Record<string, string | { symlink: string }>;
  entrypoint?: string[];
  cmd: string[];
  env: (ready: (s: ServiceName) => number, akadminAfter: number | undefined) => Record<string, string>;
}

const STANDINS: Record<string, StandIn> = {
  traefik: {
    services: ['traefik'],
    scripts: { traefik: TRAEFIK_SH },
    cmd: ['traefik'],
    env: (r) => ({ READY_AFTER: String(r('traefik')) }),
  },
  postgres: {
    services: ['authentik-postgres'],
    scripts: { 'docker-entrypoint.sh': PG_ENTRYPOINT_SH, pg_isready: PG_ISREADY_SH },
    entrypoint: ['docker-entrypoint.sh'],
    cmd: ['postgres'],
    env: (r) => ({ READY_AFTER: String(r('authentik-postgres')), PGDATA: '/var/lib/postgresql/data' }),
  },
  authentik: {
    services: ['authentik-server', 'authentik-worker'],
    scripts: { ak: AK_SH },
    entrypoint: ['ak'],
    cmd: ['server'],
    // One image, two roles: READY_AFTER (runtime) overrides both of these.
    env: (r, akadminAfter) => ({
      AK_SERVER_READY_AFTER: String(r('authentik-server')),
      AK_WORKER_READY_AFTER: String(r('authentik-worker')),
      ...(akadminAfter === undefined ? {} : { AK_AKADMIN_AFTER: String(akadminAfter) }),
    }),
  },
  'netbird-server': {
    services: ['netbird-server'],
    scripts: { bash: BASH_SH },
    files: { '/go/bin/netbird-server': NETBIRD_SERVER_SH },
    entrypoint: ['/go/bin/netbird-server'],
    cmd: [],
    env: (r) => ({ READY_AFTER: String(r('netbird-server')) }),
  },
  dashboard: {
    services: ['netbird-dashboard'],
    scripts: { 'netbird-dashboard': DASHBOARD_SH },
    cmd: ['netbird-dashboard'],
    env: (r) => ({ READY_AFTER: String(r('netbird-dashboard')) }),
  },
  proxy: {
    services: ['netbird-proxy'],
    scripts: { 'netbird-proxy': PROXY_SH },
    // distroless base:debug keeps busybox's applets under /busybox; the healthcheck runs /busybox/wget.
    files: { '/busybox/wget': { symlink: '/bin/busybox' } },
    cmd: ['netbird-proxy'],
    env: (r) => ({ READY_AFTER: String(r('netbird-proxy')) }),
  },
  agent: {
    services: ['netbird-agent'],
    scripts: { netbird: NETBIRD_SH },
    files: NETBIRD_STATUS_FILES,
    cmd: ['netbird', 'up', '--foreground-mode'],
    env: (r) => ({ READY_AFTER: String(r('netbird-agent')) }),
  },
};

/** service -> image, read from the compose file so a version bump there needs no change here. */
export async function composeImages(
  composeFile = DEFAULT_COMPOSE_FILE,
): Promise<Record<ServiceName, string>> {
  // merge: the authentik services take their image from the `<<: *authentik` anchor.
  const doc = parseYaml(await readFile(composeFile, 'utf8'), { merge: true }) as {
    services?: Record<string, { image?: string }>;
  };
  const services = doc.services ?? {};
  const unknown = Object.keys(services).filter((s) => !(BIFROST_SERVICES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw new Error(`${composeFile} has services without a stand-in: ${unknown.join(', ')} (add them here)`);
  }
  const images = {} as Record<ServiceName, string>;
  for (const service of BIFROST_SERVICES) {
    const image = services[service]?.image;
    if (!image) throw new Error(`${composeFile}: service ${service} is missing or has no image`);
    images[service] = image;
  }
  return images;
}

async function run(engine: DockerEngine, args: string[], what: string, timeout = 60_000): Promise<string> {
  const docker = dockerCli() as string;
  // DOCKER_BUILDKIT=0: there is no buildx plugin; ask for the legacy builder instead of falling back to it.
  const r = await execa(docker, args, {
    env: { ...engine.env, DOCKER_BUILDKIT: '0' },
    reject: false,
    timeout,
  });
  if (r.exitCode !== 0) {
    throw new Error(
      `${what} failed (docker ${args.join(' ')}, exit ${r.exitCode}): ${String(r.stderr).trim()}`,
    );
  }
  return String(r.stdout);
}

async function importBusyboxBase(engine: DockerEngine, work: string): Promise<void> {
  const busybox = findTool('busybox') as string;
  const rootfs = join(work, 'rootfs');
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'usr/local/bin',
    'usr/local/lib',
    'etc',
    'root',
    'tmp',
  ]) {
    await mkdir(join(rootfs, d), { recursive: true });
  }
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await copyFile(busybox, join(rootfs, 'bin', 'busybox'));
  await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  // The equivalent of `busybox --install -s` without chroot: one symlink per applet at its usual path.
  const { stdout } = await execa(busybox, ['--list-full']);
  for (const rel of String(stdout).split('\n').filter(Boolean)) {
    if (rel === 'bin/busybox') continue;
    await mkdir(dirname(join(rootfs, rel)), { recursive: true });
    await symlink('/bin/busybox', join(rootfs, rel));
  }
  await writeFile(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  const tarball = join(work, 'rootfs.tar');
  await execa(findTool('tar') as string, [
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '-C',
    rootfs,
    '-cf',
    tarball,
    '.',
  ]);
  await run(
    engine,
    ['import', '--change', 'CMD ["/bin/sh"]', tarball, BASE_IMAGE],
    'docker import of the busybox rootfs',
  );
}

function dockerfile(kind: string, s: StandIn, env: Record<string, string>, image: string): string {
  const lines = [
    `FROM ${BASE_IMAGE}`,
    'COPY standin.sh /usr/local/lib/standin.sh',
    'COPY bin/ /usr/local/bin/',
    ...(s.files ? ['COPY files/ /'] : []),
    `ENV ${Object.entries({ PATH: STANDIN_PATH, STANDIN_NAME: kind, ...env })
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ')}`,
    `LABEL io.secrets-flow.standin=${JSON.stringify(kind)} io.secrets-flow.replaces=${JSON.stringify(image)}`,
  ];
  if (s.entrypoint) lines.push(`ENTRYPOINT ${JSON.stringify(s.entrypoint)}`);
  lines.push(`CMD ${JSON.stringify(s.cmd)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Builds the stand-in images, tagged exactly as the compose file names them, so `up` finds them locally
 * and never tries to pull. readyAfterSeconds (default 1 s each) is baked into each image's environment:
 * READY_AFTER, or AK_SERVER_READY_AFTER / AK_WORKER_READY_AFTER for the one Authentik image both roles
 * share; a runtime READY_AFTER overrides either. akadminAfterSeconds delays the worker's creation of
 * akadmin after it is ready (default 0), to exercise the token step's retries.
 */
export async function buildBifrostStandInImages(
  engine: DockerEngine,
  opts: {
    readyAfterSeconds?: Partial<Record<ServiceName, number>>;
    akadminAfterSeconds?: number;
    composeFile?: string;
  } = {},
): Promise<void> {
  const images = await composeImages(opts.composeFile);
  const ready = (s: ServiceName) => opts.readyAfterSeconds?.[s] ?? 1;
  const work = await mkdtemp(join(tmpdir(), 'sf-standin-'));
  try {
    await importBusyboxBase(engine, work);
    // The legacy builder copes with concurrent builds, and these are COPY + metadata only.
    await Promise.all(
      Object.entries(STANDINS).map(async ([kind, s]) => {
        const tags = [...new Set(s.services.map((svc) => images[svc]))];
        if (tags.length !== 1) {
          throw new Error(`services ${s.services.join(', ')} must share one image, found ${tags.join(', ')}`);
        }
        const tag = tags[0] as string;
        const ctx = join(work, kind);
        await mkdir(join(ctx, 'bin'), { recursive: true });
        await writeFile(join(ctx, 'standin.sh'), LIB_SH, { mode: 0o644 });
        for (const [name, text] of Object.entries(s.scripts)) {
          await writeFile(join(ctx, 'bin', name), text, { mode: 0o755 });
        }
        for (const [path, content] of Object.entries(s.files ?? {})) {
          if (!path.startsWith('/') || path.split('/').includes('..')) {
            throw new Error(`${kind} stand-in: files must have absolute paths without "..", got ${path}`);
          }
          const dest = join(ctx, 'files', path);
          await mkdir(dirname(dest), { recursive: true });
          if (typeof content === 'string') await writeFile(dest, content, { mode: 0o755 });
          else await symlink(content.symlink, dest);
        }
        await writeFile(
          join(ctx, 'Dockerfile'),
          dockerfile(kind, s, s.env(ready, opts.akadminAfterSeconds), tag),
        );
        await run(engine, ['build', '-q', '-t', tag, ctx], `docker build of the ${kind} stand-in (${tag})`);
      }),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The docker CLIs the product is told to use: the real ones, pointed at this engine, logging each process

/** One docker / docker-compose process started through the wrappers. */
export interface DockerCliCall {
  /** Its process id: the wrapper execs the real CLI, so the CLI keeps the wrapper's pid. */
  pid: number;
  program: 'docker' | 'docker-compose';
  /** Its arguments, joined by spaces (for matching, not for re-running). */
  args: string;
}

export interface DockerCliWrappers {
  /** The directory holding both wrappers and their log. */
  bin: string;
  /** `--docker` for the product. */
  docker: string;
  /** `--compose` for the product (docker-compose v1). */
  compose: string;
  /** Every process started through the wrappers since the last reset(), in order. */
  calls(): DockerCliCall[];
  reset(): void;
  /** `docker events` processes started through the wrappers that are still running. */
  liveEventStreams(): number[];
  /** Lets `user` (sshd's test user) run the wrappers and reach the engine's socket, and `dirs` be theirs. */
  shareWith(user: string, dirs: readonly string[]): void;
}

/**
 * Writes `docker` and `docker-compose` wrappers into `bin` that export the engine's DOCKER_HOST and
 * DOCKER_CONFIG, append `PID PROGRAM ARGS` to a log, and exec the real CLI found on PATH. They work for any
 * user the engine is shared with (shareWith), so a run over the loopback sshd counts its processes too.
 */
export async function writeDockerCliWrappers(engine: DockerEngine, bin: string): Promise<DockerCliWrappers> {
  await mkdir(bin, { recursive: true });
  const log = join(bin, 'calls.log');
  await writeFile(log, '');
  await chmod(log, 0o666);
  const exports = Object.entries(engine.env)
    .map(([k, v]) => `export ${k}='${v}'`)
    .join('\n');
  for (const program of ['docker', 'docker-compose'] as const) {
    await writeFile(
      join(bin, program),
      `#!/bin/sh\n${exports}\necho "$$ ${program} $*" >> '${log}'\nexec ${program} "$@"\n`,
      { mode: 0o755 },
    );
  }
  const calls = (): DockerCliCall[] =>
    readFileSync(log, 'utf8')
      .split('\n')
      .flatMap((line) => {
        const m = /^(\d+) (docker|docker-compose) ?(.*)$/.exec(line);
        return m ? [{ pid: Number(m[1]), program: m[2] as DockerCliCall['program'], args: m[3] ?? '' }] : [];
      });
  return {
    bin,
    docker: join(bin, 'docker'),
    compose: join(bin, 'docker-compose'),
    calls,
    reset: () => writeFileSync(log, ''),
    liveEventStreams: () =>
      calls()
        .filter((c) => c.program === 'docker' && c.args.startsWith('events '))
        .map((c) => c.pid)
        // A pid may have been reused since: only a process still running `docker events` counts.
        .filter((pid) => alive(pid) && /(^|\/)docker events /.test(cmdline(pid))),
    shareWith: (user, dirs) => {
      for (const dir of dirs) execFileSync('chown', ['-R', user, dir]);
      const socket = engine.dockerHost.replace('unix://', '');
      for (let d = dirname(socket); d.startsWith(engine.root); d = dirname(d)) chmodSync(d, 0o711);
      chmodSync(socket, 0o666);
      chmodSync(bin, 0o755);
      // The docker CLI's config directory (kept out of ~/.docker) must be readable by that user too.
      const config = engine.env.DOCKER_CONFIG;
      if (config) {
        mkdirSync(config, { recursive: true });
        execFileSync('chmod', ['-R', 'a+rX', config]);
      }
    },
  };
}
