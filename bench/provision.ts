/**
 * provision-bifrost's SSH side against a loopback sshd: the first upload
 * of the bundle, compared in the same run with `scp -r` and `rsync -a` of the same tree; a re-run with
 * nothing changed, SSH handshake included; the exec round trip on the open connection.
 * Goals: first upload ≤ scp -r (ratio ≤ 1.0); no-op re-run < 1.5 s; exec round trip < 15 ms median.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLocalBundle, uploadBundle } from '../scripts/lib/bifrost/upload.ts';
import { connectSsh } from '../scripts/lib/exec/ssh.ts';
import { findOnPath } from '../scripts/lib/exec/which.ts';
import { findSshd, startSshd } from '../test/harness/sshd.ts';
import { BUNDLE_SOURCE } from '../test/helpers/bifrost-fixture.ts';
import { median } from './median.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function benchProvision(): Promise<void> {
  const sshd = findSshd('the provisioning benchmark');
  if (!sshd) return;
  const server = await startSshd(sshd);
  try {
    const root = mkdtempSync(join(tmpdir(), 'sf-bench-up-'));
    execFileSync('chmod', ['777', root]);
    const files = await readLocalBundle(BUNDLE_SOURCE);
    const connect = () =>
      connectSsh({
        host: server.host,
        port: server.port,
        user: server.user,
        identity: server.identity,
        knownHosts: server.knownHosts,
      });
    const sshArgs = [
      '-i',
      server.identity,
      '-o',
      `UserKnownHostsFile=${server.knownHosts}`,
      '-o',
      'BatchMode=yes',
    ];
    const target = (dir: string) => `${server.user}@${server.host}:${dir}`;

    const ours: number[] = [];
    const scp: number[] = [];
    const rsync: number[] = [];
    const noop: number[] = [];
    const rsyncBin = findOnPath('rsync');
    for (let i = 0; i < RUNS; i++) {
      // Each figure includes its own SSH handshake, as a fresh command would.
      ours.push(
        await timed(async () => {
          const ex = await connect();
          await uploadBundle(ex, join(root, `ours-${i}`), files);
          await ex.close();
        }),
      );
      noop.push(
        await timed(async () => {
          const ex = await connect();
          await uploadBundle(ex, join(root, `ours-${i}`), files);
          await ex.close();
        }),
      );
      scp.push(
        await timed(() =>
          execFileSync('scp', [
            '-q',
            '-r',
            '-P',
            String(server.port),
            ...sshArgs,
            BUNDLE_SOURCE,
            target(join(root, `scp-${i}`)),
          ]),
        ),
      );
      if (rsyncBin) {
        rsync.push(
          await timed(() =>
            execFileSync('rsync', [
              '-a',
              '-e',
              `ssh -p ${server.port} ${sshArgs.join(' ')}`,
              `${BUNDLE_SOURCE}/`,
              target(join(root, `rsync-${i}`)),
            ]),
          ),
        );
      }
    }
    const ex = await connect();
    const rtt: number[] = [];
    for (let i = 0; i < 50; i++) rtt.push(await timed(() => ex.run({ argv: ['true'] })));
    await ex.close();

    const line = (name: string, ms: number, goal: string, ok: boolean) =>
      console.log(
        `  ${name.padEnd(50)} ${ms.toFixed(1).padStart(8)} ms   ${goal.padEnd(28)} ${ok ? 'meets goal' : 'MISSES goal'}`,
      );
    console.log(`\nprovision-bifrost over a loopback sshd, ${files.length} files, medians of ${RUNS}`);
    const ratio = median(ours) / median(scp);
    line(
      'first upload (staged, swapped, manifest)',
      median(ours),
      `ratio to scp -r ${ratio.toFixed(2)} (≤ 1.0)`,
      ratio <= 1,
    );
    console.log(`  ${'scp -r of the same tree'.padEnd(50)} ${median(scp).toFixed(1).padStart(8)} ms`);
    if (rsyncBin)
      console.log(`  ${'rsync -a of the same tree'.padEnd(50)} ${median(rsync).toFixed(1).padStart(8)} ms`);
    else console.log('  rsync not installed: no rsync figure');
    line('re-run with nothing changed (handshake included)', median(noop), '< 1500 ms', median(noop) < 1500);
    line('exec round trip on the open connection', median(rtt), '< 15 ms', median(rtt) < 15);
    // Was printed by a test (test/ssh-executor.test.ts) beside its median; a figure here.
    const p90 = [...rtt].sort((a, b) => a - b)[Math.floor(rtt.length * 0.9)] ?? 0;
    console.log(`  ${'exec round trip, p90 of 50'.padEnd(50)} ${p90.toFixed(1).padStart(8)} ms`);
  } finally {
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchProvision();
