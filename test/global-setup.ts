/**
 * One temporary root per test run: every test's mkdtemp (os.tmpdir() reads TMPDIR) lands under it. Mode
 * 0711: the loopback sshd's test users must reach the directories the harness hands them below, but cannot
 * list what else is there.
 *
 * Nothing may be left behind: at the end of the run, before the root is removed, the teardown
 * lists what the tests left — entries under the root, processes the run started (their command line or
 * environment names the root, or they run as / in a user / network namespace of the run), network
 * namespaces and system users the harnesses created (test/helpers/leak-ledger.ts) — against a baseline
 * taken here, prints each leftover, removes it, and fails the run (process.exitCode = 1: vitest 3 runs the
 * teardown before it exits and keeps that code; a throw would be printed as a "Startup Error"). Where
 * SECRETS_FLOW_LEAK_REPORT names a file, the leftovers are written there too, one a line (.ci/run counts
 * them as a failure: vitest's JSON report is written before the teardown runs).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundles } from '../bin/build-bundles.mjs';
import { LEDGER_ENV, readLedger } from './helpers/leak-ledger.ts';
import { BUNDLES_ENV } from './helpers/script-bundles.ts';

const LEDGER_NAME = '.leak-ledger';
/** The scripts' bundles for the run (test/helpers/script-bundles.ts), removed with the root. */
const BUNDLES_NAME = '.script-bundles';

function pids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function netnsList(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** name -> uid of /etc/passwd's users. */
function users(): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of read('/etc/passwd').split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid) map.set(name, Number(uid));
  }
  return map;
}

interface Baseline {
  pids: Set<number>;
  netns: Set<string>;
  users: Set<string>;
}

interface LeftProcess {
  pid: number;
  description: string;
}

/** Live processes started by this run, other than vitest itself and its own children (the pool's workers). */
function runProcesses(root: string, baseline: Baseline, ledgerFile: string): LeftProcess[] {
  const ledger = readLedger(ledgerFile);
  const now = users();
  const uids = new Set(
    ledger.flatMap((e) => (e.kind === 'user' && now.has(e.name) ? [now.get(e.name) as number] : [])),
  );
  const namespaces = ledger.filter((e) => e.kind === 'netns').map((e) => `/${e.name}`);
  const left: LeftProcess[] = [];
  for (const pid of pids()) {
    if (pid === process.pid || baseline.pids.has(pid)) continue;
    const stat = read(`/proc/${pid}/stat`);
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (!state || state === 'Z' || state === 'X' || Number(ppid) === process.pid) continue;
    const cmdline = read(`/proc/${pid}/cmdline`).replaceAll('\0', ' ').trim();
    const environ = read(`/proc/${pid}/environ`).split('\0');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(read(`/proc/${pid}/status`))?.[1] ?? -1);
    const cgroup = read(`/proc/${pid}/cgroup`);
    const why = cmdline.includes(root)
      ? 'names the temporary root'
      : environ.some((e) => e.startsWith(`TMPDIR=${root}`))
        ? 'TMPDIR under the temporary root'
        : uids.has(uid)
          ? `runs as a test user (uid ${uid})`
          : namespaces.some((n) => cgroup.includes(n))
            ? 'in a test engine cgroup'
            : undefined;
    if (why) left.push({ pid, description: `process ${pid} (${why}): ${cmdline || '?'}` });
  }
  return left;
}

/** Top-level entries under the root, with how much each holds. */
function rootEntries(root: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(root).filter((n) => n !== LEDGER_NAME && n !== BUNDLES_NAME);
  } catch {
    return [];
  }
  return names.sort().map((name) => {
    const path = join(root, name);
    let what = 'file';
    try {
      if (statSync(path).isDirectory()) {
        what = `directory, ${readdirSync(path, { recursive: true }).length} entries`;
      }
    } catch {
      what = 'unreadable';
    }
    return `file ${path} (${what})`;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export default async function setup(): Promise<() => Promise<void>> {
  const baseline: Baseline = {
    pids: new Set(pids()),
    netns: new Set(netnsList()),
    users: new Set(users().keys()),
  };
  const root = mkdtempSync(join(tmpdir(), 'secrets-flow-tests-'));
  chmodSync(root, 0o711);
  const ledgerFile = join(root, LEDGER_NAME);
  writeFileSync(ledgerFile, '');
  const bundles = join(root, BUNDLES_NAME);
  await buildBundles(bundles);
  const previous = {
    TMPDIR: process.env.TMPDIR,
    [LEDGER_ENV]: process.env[LEDGER_ENV],
    [BUNDLES_ENV]: process.env[BUNDLES_ENV],
  };
  process.env.TMPDIR = root;
  process.env[LEDGER_ENV] = ledgerFile;
  process.env[BUNDLES_ENV] = bundles;

  return async () => {
    for (const [k, v] of Object.entries(previous)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    // The last test file's processes may still be exiting: give them a few seconds.
    let processes = runProcesses(root, baseline, ledgerFile);
    for (let waited = 0; processes.length > 0 && waited < 5000; waited += 250) {
      await sleep(250);
      processes = runProcesses(root, baseline, ledgerFile);
    }
    const ledger = readLedger(ledgerFile);
    const liveNetns = new Set(netnsList());
    const liveUsers = users();
    const netns = ledger.filter(
      (e) => e.kind === 'netns' && liveNetns.has(e.name) && !baseline.netns.has(e.name),
    );
    const leftUsers = ledger.filter(
      (e) => e.kind === 'user' && liveUsers.has(e.name) && !baseline.users.has(e.name),
    );
    const leftovers = [
      ...processes.map((p) => p.description),
      ...netns.map((e) => `network namespace ${e.name}`),
      ...leftUsers.map((e) => `system user ${e.name}`),
      ...rootEntries(root),
    ];

    // Remove them all the same: the machine is shared.
    for (const p of processes) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (processes.length > 0) await sleep(500);
    for (const e of netns) {
      try {
        execFileSync('ip', ['netns', 'del', e.name], { stdio: 'ignore' });
      } catch {
        // reported above
      }
    }
    for (const e of leftUsers) {
      try {
        execFileSync('userdel', ['-r', e.name], { stdio: 'ignore' });
      } catch {
        // reported above
      }
    }
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });

    const report = process.env.SECRETS_FLOW_LEAK_REPORT;
    if (report) writeFileSync(report, leftovers.map((l) => `${l}\n`).join(''));
    if (leftovers.length > 0) {
      console.error(
        `\nFAIL: the run left ${leftovers.length} thing(s) behind (removed now, but each test and harness must clean up after itself):\n${leftovers.map((l) => `  - ${l}`).join('\n')}\n`,
      );
      process.exitCode = 1;
    }
  };
}
