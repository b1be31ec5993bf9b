/**
 * Command.signal: ending a long-running command on purpose. Locally the whole process tree goes
 * (SIGTERM, then SIGKILL), over SSH the remote process group (a "signal" channel request); either way
 * `run` resolves with the output so far, streamed through onOutput as it came. An already-aborted
 * signal starts nothing.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command, CommandResult, Executor } from '../scripts/lib/exec/executor.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { connectSsh, type SshExecutor } from '../scripts/lib/exec/ssh.ts';
import { findSshd, type SshdServer, startSshd } from './harness/sshd.ts';
import { alive, eventually } from './helpers/process.ts';
import { tempDir } from './helpers/temp.ts';

const dir = tempDir('sf-abort-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs `cmd` and aborts it once its stdout holds `lines` whole lines: the command only ends by the
 * abort, so reaching it proves onOutput delivered those lines while the command ran.
 */
async function runUntilLines(
  executor: Executor,
  cmd: Command,
  lines: number,
): Promise<{ result: CommandResult; seen: string[] }> {
  const controller = new AbortController();
  const seen: string[] = [];
  let text = '';
  const result = await executor.run({
    ...cmd,
    signal: controller.signal,
    onOutput: (chunk, stream) => {
      if (stream !== 'stdout') return;
      text += chunk;
      const done = text.split('\n').slice(0, -1);
      seen.push(...done.slice(seen.length));
      if (seen.length >= lines) controller.abort();
    },
  });
  return { result, seen };
}

describe('LocalExecutor abort', () => {
  const local = new LocalExecutor();

  it('stops the process tree and resolves with the output so far', async () => {
    // A node parent that starts a child, prints both pids, then waits forever.
    const script = join(dir, 'tree.mjs');
    writeFileSync(
      script,
      `import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
process.stdout.write(process.pid + '\\n');
process.stdout.write(child.pid + '\\n');
setInterval(() => {}, 1000);
`,
    );
    const { result, seen } = await runUntilLines(local, { argv: [process.execPath, script] }, 2);
    const [parent, child] = seen.map(Number);
    expect(result).toMatchObject({ exitCode: 143, timedOut: false, stdout: `${parent}\n${child}\n` });
    expect(result.spawnError).toBeUndefined();
    expect(await eventually(() => !alive(parent as number) && !alive(child as number))).toBe(true);
  });

  it('SIGKILLs what ignores SIGTERM, after a grace', async () => {
    const script = join(dir, 'stubborn.mjs');
    writeFileSync(
      script,
      `process.on('SIGTERM', () => {});\nprocess.stdout.write(process.pid + '\\n');\nsetInterval(() => {}, 1000);\n`,
    );
    const { result, seen } = await runUntilLines(local, { argv: [process.execPath, script] }, 1);
    expect(result.exitCode).toBe(137);
    expect(alive(Number(seen[0]))).toBe(false);
  });

  it('an already-aborted signal runs nothing', async () => {
    const marker = join(dir, 'ran');
    const result = await local.run({ argv: ['touch', marker], signal: AbortSignal.abort() });
    expect(result).toMatchObject({ exitCode: 143, spawnError: 'aborted before it started', stdout: '' });
    expect(() => readFileSync(marker)).toThrow();
  });

  it('a command that ends by itself is unaffected by its signal', async () => {
    const controller = new AbortController();
    const r = await local.run({ argv: ['sh', '-c', 'echo hi; exit 3'], signal: controller.signal });
    controller.abort();
    expect(r).toMatchObject({ exitCode: 3, stdout: 'hi\n' });
  });
});

const sshd = findSshd('the SSH abort tests (apt-get install openssh-server)');

describe.skipIf(!sshd)('SshExecutor abort', () => {
  let server: SshdServer;
  let ssh: SshExecutor;
  let remoteDir: string;

  beforeAll(async () => {
    server = await startSshd(sshd as string);
    ssh = await connectSsh({
      host: server.host,
      port: server.port,
      user: server.user,
      identity: server.identity,
      knownHosts: server.knownHosts,
    });
    remoteDir = (await ssh.run({ argv: ['mktemp', '-d'] })).stdout.trim();
  });

  afterAll(async () => {
    await ssh?.run({ argv: ['rm', '-rf', remoteDir] }).catch(() => {});
    await ssh?.close();
    await server?.stop();
  });

  /** Whether `pid` still runs on the remote side (a zombie counts as gone). */
  const remoteAlive = async (pid: string) =>
    (
      await ssh.run({
        argv: [
          'sh',
          '-c',
          'kill -0 "$1" 2>/dev/null || exit 1; case "$(cut -d" " -f3 /proc/$1/stat)" in Z) exit 1;; esac',
          'sh',
          pid,
        ],
      })
    ).exitCode === 0;

  it('signals the remote process group: nothing is left running, and the output so far comes back', async () => {
    // A shell that records its pid, starts a background sleep, prints both pids, and waits: two
    // processes to end. The pid file is written before the lines the abort waits for, so it is there.
    const { result, seen } = await runUntilLines(
      ssh,
      {
        argv: ['sh', '-c', 'echo "$$" > "$1"; sleep 300 & echo $$; echo $!; wait', 'sh', `${remoteDir}/pid`],
      },
      2,
    );
    const [shell = '', sleeper = ''] = seen;
    expect(result).toMatchObject({ exitCode: 143, timedOut: false, stdout: `${shell}\n${sleeper}\n` });
    expect(await ssh.files.readFile(`${remoteDir}/pid`)).toBe(`${shell}\n`);
    expect(await eventually(async () => !(await remoteAlive(shell)) && !(await remoteAlive(sleeper)))).toBe(
      true,
    );
    // The connection serves the next command as before.
    expect((await ssh.run({ argv: ['echo', 'still here'] })).stdout).toBe('still here\n');
  });

  it('a process that ignores SIGTERM is killed after the grace', async () => {
    const { result, seen } = await runUntilLines(
      ssh,
      { argv: ['sh', '-c', "trap '' TERM; echo $$; while :; do sleep 0.1; done"] },
      1,
    );
    expect(result.exitCode).toBe(137);
    expect(await eventually(async () => !(await remoteAlive(seen[0] ?? '')))).toBe(true);
  });

  it('an already-aborted signal opens no channel and runs nothing', async () => {
    const marker = `${remoteDir}/ran`;
    const r = await ssh.run({ argv: ['touch', marker], signal: AbortSignal.abort() });
    expect(r.spawnError).toBe('aborted before it started');
    expect(await ssh.files.stat(marker)).toBeUndefined();
  });
});
