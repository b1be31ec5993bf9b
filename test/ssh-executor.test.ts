/**
 * The SSH executor against a real OpenSSH sshd (test/harness/sshd.ts): commands, stdin, argv quoting,
 * env, streaming, deadlines, SFTP files, and every host-key and connection failure an operator meets.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireHostLock, currentHolder } from '../scripts/lib/bifrost/lock.ts';
import { InputError, WorkError } from '../scripts/lib/core/errors.ts';
import { beginRun, InterruptedError, runContext } from '../scripts/lib/core/run-context.ts';
import { fingerprint } from '../scripts/lib/exec/known-hosts.ts';
import { connectSsh, type SshExecutor, type SshOptions } from '../scripts/lib/exec/ssh.ts';
import { type DropProxy, startDropProxy } from './harness/drop-proxy.ts';
import { findSshd, regenerateHostKey, type SshdServer, startSshd } from './harness/sshd.ts';
import { runAsCleanupStep } from './helpers/cleanup-step.ts';
import { eventually } from './helpers/process.ts';
import { tempDir } from './helpers/temp.ts';

const sshd = findSshd('the SSH executor tests (apt-get install openssh-server)');

/** Connection options for the harness server, with overrides. */
function optionsFor(server: SshdServer, extra: Partial<SshOptions> = {}): SshOptions {
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    identity: server.identity,
    knownHosts: server.knownHosts,
    ...extra,
  };
}

/** Whether a process whose argv holds `tag` runs on this machine (the loopback sshd's side), within 10 s. */
async function eventuallyRunning(tag: string): Promise<boolean> {
  return eventually(() => pgrep(tag));
}

/** Whether no process whose argv holds `tag` is left, within 10 s (a loaded machine is slow to reap). */
async function eventuallyGone(tag: string): Promise<boolean> {
  return eventually(() => !pgrep(tag));
}

function pgrep(tag: string): boolean {
  try {
    // The supervising shell's argv holds the tag too: the command and what it started must go with it.
    return execFileSync('pgrep', ['-f', '--', tag], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
}

/** The rejection of a promise, for assertions on its class, message and hint. */
async function failure(p: Promise<unknown>): Promise<Error & { hint?: string; exitCode?: number }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { hint?: string };
  }
  throw new Error('expected a failure');
}

/** The executor's SFTP session (private): tests patch its requests to act at a chosen moment of a write. */
const sftpOf = (ex: SshExecutor) => (ex.files as unknown as { sftp(): Promise<SFTPWrapper> }).sftp();

const localDirs: string[] = [];
async function localTemp(): Promise<string> {
  const dir = tempDir('ssh-test-');
  localDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const d of localDirs) rmSync(d, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

describe.skipIf(!sshd)('SshExecutor against OpenSSH sshd', () => {
  let server: SshdServer;
  let ssh: SshExecutor;
  /** A fresh directory on the "remote" side, owned by the login user. */
  let remoteDir: string;

  beforeAll(async () => {
    server = await startSshd(sshd as string);
    ssh = await connectSsh(optionsFor(server));
    remoteDir = (await ssh.run({ argv: ['mktemp', '-d'] })).stdout.trim();
  });

  afterAll(async () => {
    await ssh?.run({ argv: ['rm', '-rf', remoteDir] }).catch(() => {});
    await ssh?.close();
    await server?.stop();
  });

  describe('run', () => {
    it('returns exit codes, stdout and stderr separately', async () => {
      expect(ssh.where).toBe(`ssh ${server.user}@127.0.0.1:${server.port}`);
      expect(await ssh.run({ argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] })).toEqual({
        exitCode: 3,
        stdout: 'out\n',
        stderr: 'err\n',
        timedOut: false,
      });
      expect((await ssh.run({ argv: ['true'] })).exitCode).toBe(0);
      const missing = await ssh.run({ argv: ['/nonexistent/program'] });
      expect(missing.exitCode).toBe(127);
      expect(missing.stderr).toMatch(/not found/);
      // A signal death reads as 128+n, as a shell reports it.
      expect((await ssh.run({ argv: ['sh', '-c', 'kill -TERM $$'] })).exitCode).toBe(128 + 15);
    });

    it('delivers stdin byte for byte: quotes, $, backslashes, newlines, UTF-8, and 1 MB', async () => {
      const awkward = `it's "quoted" $HOME \`id\` \\n \\\\ back\\slash\r\nline2\n\ttab é ✓ 🔑\n$(rm -rf /)\n`;
      expect((await ssh.run({ argv: ['cat'], input: awkward })).stdout).toBe(awkward);
      const big = `${awkward}${'x'.repeat(64)}\n`.repeat(Math.ceil(1_048_576 / (awkward.length + 65)));
      const r = await ssh.run({ argv: ['cat'], input: big });
      expect(r.stdout.length).toBe(big.length);
      expect(r.stdout === big).toBe(true);
      // And a command that never reads stdin is not an error.
      expect((await ssh.run({ argv: ['true'], input: big })).exitCode).toBe(0);
    });

    it('passes argv through the remote shell intact', async () => {
      const args = [
        `it's`,
        '"dq"',
        '$HOME',
        '`id`',
        '$(id)',
        'a\\b',
        ';|&<>()',
        '*',
        '~',
        ' lead and trail ',
        'tab\there',
        'new\nline',
        '',
        '-n',
        '--',
        'héllo ✓',
        "'",
        '#not a comment',
        'a=b',
      ];
      const r = await ssh.run({ argv: ['sh', '-c', `printf '%s\\n' "$@"`, 'sh', ...args] });
      expect(r.stdout).toBe(args.map((a) => `${a}\n`).join(''));
    });

    it('puts env on the remote command line as env K=V, values intact', async () => {
      const r = await ssh.run({
        argv: ['sh', '-c', 'printf "%s|%s|%s" "$A" "$B" "$C"'],
        env: { A: `x y'z $HOME "q"`, B: '', C: 'multi\nline' },
      });
      expect(r.stdout).toBe(`x y'z $HOME "q"||multi\nline`);
      await expect(ssh.run({ argv: ['true'], env: { 'BAD NAME': 'x' } })).rejects.toThrow(/variable name/);
    });

    it('streams output as it arrives', async () => {
      // The command goes on only once the test has seen its last line: "one" and "two" can only have
      // arrived while it was still running (each answer goes back over the same connection). Had the
      // output been held to the end, the command would give up waiting and fail (exit 3).
      const chunks: string[] = [];
      const go = (n: number) => `${remoteDir}/go-${n}`;
      const replies: Promise<unknown>[] = [];
      const wait = (n: number) =>
        `i=0; while [ ! -e "${go(n)}" ]; do i=$((i+1)); [ $i -gt 400 ] && exit 3; sleep 0.05; done`;
      const r = await ssh.run({
        argv: ['sh', '-c', `echo one; ${wait(1)}; echo two >&2; ${wait(2)}; echo three`],
        onOutput: (text, stream) => {
          chunks.push(`${stream}:${text}`);
          const n = { 'one\n': 1, 'two\n': 2 }[text];
          if (n) replies.push(ssh.run({ argv: ['touch', go(n)] }));
        },
      });
      await Promise.all(replies);
      await ssh.run({ argv: ['rm', '-f', go(1), go(2)] });
      expect(r.exitCode).toBe(0);
      expect(chunks).toEqual(['stdout:one\n', 'stderr:two\n', 'stdout:three\n']);
      expect(r.stdout).toBe('one\nthree\n');
    });

    it('kills a command at its deadline, remote process included', async () => {
      // The command would run a minute, longer than the test may: its result can only come from the
      // deadline. Then the remote sh (found by a tag in its argv) must be gone: had only the channel been
      // closed, it would live on and later create the marker.
      const marker = `${remoteDir}/late`;
      const tag = `deadline-${process.pid}-${Date.now()}`;
      const r = await ssh.run({ argv: ['sh', '-c', `sleep 60; touch ${marker}`, tag], timeoutMs: 300 });
      expect(r).toMatchObject({ timedOut: true, exitCode: 128 + 9 });
      // Bounded (10 s) for a loaded machine; the tag is passed in two halves so that this sh's own
      // argv never matches it.
      const gone = await ssh.run({
        argv: [
          'sh',
          '-c',
          'i=0; while pgrep -f -- "$1$2" >/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done',
          'sh',
          tag.slice(0, 8),
          tag.slice(8),
        ],
      });
      expect(gone.exitCode).toBe(0);
      expect(await ssh.files.stat(marker)).toBeUndefined();
    });

    it('an aborted stream ends with everything it started; its exit is the abort', async () => {
      const tag = `abort-${process.pid}-${Date.now()}`;
      const stop = new AbortController();
      // A grandchild carries the tag (as the inner bash's $0; each `:` keeps a bash from exec'ing its
      // last command): the whole tree must go, not the command alone.
      const running = ssh.run({
        argv: ['bash', '-c', `bash -c 'sleep 300; :' ${tag}; :`],
        signal: stop.signal,
      });
      expect(await eventuallyRunning(tag)).toBe(true);
      stop.abort();
      expect(await running).toMatchObject({ exitCode: 143 });
      expect(await eventuallyGone(tag)).toBe(true);
    });

    it('a stream still running when the connection closes ends with it', async () => {
      const own = await connectSsh(optionsFor(server));
      const tag = `closed-${process.pid}-${Date.now()}`;
      const running = own.run({
        argv: ['bash', '-c', `bash -c 'sleep 300; :' ${tag}; :`],
        signal: new AbortController().signal,
      });
      running.catch(() => {});
      expect(await eventuallyRunning(tag)).toBe(true);
      await own.close();
      // No signal was sent: sshd closing the session ends the stream's stdin, its stop line.
      expect(await eventuallyGone(tag)).toBe(true);
    });

    it('an interrupt kills the remote command and refuses new ones; clean-up is still served', async () => {
      // A run of its own: the shared connection's close step stays with the run that opened it.
      beginRun();
      let pid = '';
      const err = await failure(
        ssh.run({
          argv: ['sh', '-c', 'echo $$; exec sleep 30'],
          onOutput: (chunk) => {
            pid = chunk.trim();
            runContext.interrupt('SIGINT');
          },
        }),
      );
      try {
        expect(err).toBeInstanceOf(InterruptedError);
        await expect(ssh.run({ argv: ['true'] })).rejects.toBeInstanceOf(InterruptedError);
        await expect(ssh.files.stat('/')).rejects.toBeInstanceOf(InterruptedError);
        // The KILL reached the remote process group: it is gone (checked as clean-up, which still runs).
        const check = () =>
          ssh.run({
            argv: [
              'sh',
              '-c',
              // Gone, or a zombie waiting for its parent: dead either way. Bounded (10 s), for a loaded machine.
              'i=0; while [ $i -lt 100 ]; do kill -0 "$1" 2>/dev/null || exit 1; ' +
                'case "$(cut -d" " -f3 /proc/$1/stat 2>/dev/null)" in Z) exit 1;; esac; sleep 0.1; i=$((i+1)); done',
              'sh',
              pid,
            ],
          });
        expect((await runAsCleanupStep(check)).exitCode).toBe(1);
      } finally {
        beginRun();
      }
    });

    it('runs commands concurrently on the one connection', async () => {
      const runs = await Promise.all(
        Array.from({ length: 8 }, (_, i) => ssh.run({ argv: ['sh', '-c', `sleep 0.2; echo ${i}`] })),
      );
      expect(runs.map((r) => r.stdout)).toEqual(Array.from({ length: 8 }, (_, i) => `${i}\n`));
    });

    // The round trip of a trivial command on the open connection (goal: median < 15 ms) is a figure of
    // `npm run bench` (bench/provision.ts), not a test.
  });

  describe('files over SFTP', () => {
    it('reads, writes atomically with the mode, stats, and reports missing files', async () => {
      const path = `${remoteDir}/.secrets.env`;
      expect(await ssh.files.readFile(path)).toBeUndefined();
      expect(await ssh.files.stat(path)).toBeUndefined();
      const before = Date.now();
      await ssh.files.writeFileAtomic(path, 'A=1\nB=é ✓\n', 0o600);
      expect(await ssh.files.readFile(path)).toBe('A=1\nB=é ✓\n');
      const st = await ssh.files.stat(path);
      const after = Date.now();
      expect(st?.mode).toBe(0o600);
      expect(st?.size).toBe(Buffer.byteLength('A=1\nB=é ✓\n'));
      // Written between the two readings of the clock (SFTP carries whole seconds); no duration is claimed.
      expect(st?.mtimeMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(st?.mtimeMs).toBeLessThanOrEqual(after);
      // Overwrite: new content, new mode, and no temporary file left behind.
      await ssh.files.writeFileAtomic(path, 'A=2\n', 0o640);
      expect(await ssh.files.readFile(path)).toBe('A=2\n');
      expect((await ssh.files.stat(path))?.mode).toBe(0o640);
      expect((await ssh.run({ argv: ['ls', '-A', remoteDir] })).stdout).toBe('.secrets.env\n');
      // The server's own view agrees (sshd's SFTP runs with umask 000 here, so the mode came from us).
      expect((await ssh.run({ argv: ['stat', '-c', '%a', path] })).stdout).toBe('640\n');
      // Empty content is a file too.
      await ssh.files.writeFileAtomic(`${remoteDir}/empty`, '', 0o600);
      expect(await ssh.files.readFile(`${remoteDir}/empty`)).toBe('');
      await ssh.run({ argv: ['rm', '-f', path, `${remoteDir}/empty`] });
    });

    it('never lets the temporary file be readable by others, even with umask 000 on the server', async () => {
      // The server reports the temporary file's mode at two moments of a large write, each reached by an
      // event rather than by a watcher racing the write: right after the open (the fsetstat request is
      // held until the report is back) and once the first WRITE is acknowledged (the next one is held
      // likewise). Opening with the default 0666 and chmod-ing later would show up here as 666.
      const dir = `${remoteDir}/watch`;
      await ssh.run({ argv: ['mkdir', dir] });
      const sftp = await sftpOf(ssh);
      const seen: string[] = [];
      const report = (moment: string, then: () => void) =>
        void ssh
          .run({ argv: ['sh', '-c', 'stat -c %a "$1"/.*.tmp', 'sh', dir] })
          .then(
            (r) => seen.push(`${moment} ${r.stdout.trim() || r.stderr.trim()}`),
            (err: Error) => seen.push(`${moment} ${err.message}`),
          )
          .finally(then);
      const { fsetstat, write } = sftp;
      sftp.fsetstat = function (this: SFTPWrapper, ...args: Parameters<SFTPWrapper['fsetstat']>) {
        report('opened', () => fsetstat.apply(this, args));
      };
      sftp.write = function (this: SFTPWrapper, ...args: Parameters<SFTPWrapper['write']>) {
        if (args[2] > 0 && !seen.some((l) => l.startsWith('writing')))
          report('writing', () => write.apply(this, args));
        else write.apply(this, args);
      };
      try {
        await ssh.files.writeFileAtomic(`${dir}/big.env`, 'S=secret\n'.repeat(1_000_000), 0o600);
      } finally {
        Reflect.deleteProperty(sftp, 'fsetstat');
        Reflect.deleteProperty(sftp, 'write');
      }
      expect(seen).toEqual(['opened 600', 'writing 600']);
      expect((await ssh.files.stat(`${dir}/big.env`))?.mode).toBe(0o600);
    });

    it('creates the file with its mode: a server that ignores every later chmod still holds it 0600', async () => {
      // Every way to change a mode after creation (fsetstat, setstat, fchmod, chmod) is made a no-op that
      // reports success, so the mode seen afterwards is the one the file was created with. A file opened
      // 0644 (or the default 0666) and chmod-ed to 0600 afterwards shows up here.
      type Sftp = Record<'fsetstat' | 'setstat' | 'fchmod' | 'chmod', (...args: unknown[]) => unknown>;
      const sftp = await (ssh.files as unknown as { sftp(): Promise<Sftp> }).sftp();
      const names = ['fsetstat', 'setstat', 'fchmod', 'chmod'] as const;
      const saved = names.map((n) => [n, sftp[n]] as const);
      for (const n of names) {
        sftp[n] = (...args: unknown[]) => {
          const cb = args[args.length - 1];
          if (typeof cb === 'function') setImmediate(() => (cb as (err?: Error) => void)());
          return true;
        };
      }
      const path = `${remoteDir}/born.env`;
      try {
        await ssh.files.writeFileAtomic(path, 'S=secret\n', 0o600);
      } finally {
        for (const [n, f] of saved) sftp[n] = f;
      }
      // sshd's SFTP runs with umask 000 here: the mode is exactly the one asked for at creation.
      expect((await ssh.run({ argv: ['stat', '-c', '%a', path] })).stdout).toBe('600\n');
      await ssh.run({ argv: ['rm', '-f', path] });
    });

    it('the host lock: its dir is created 0700 and its holder record 0600, whatever the umask', async () => {
      const lock = await acquireHostLock(ssh, `${remoteDir}/bifrost`, { holder: currentHolder('test') });
      expect((await ssh.files.stat(`${remoteDir}/bifrost.lock`))?.mode).toBe(0o700);
      expect((await ssh.files.stat(`${remoteDir}/bifrost.lock/holder.json`))?.mode).toBe(0o600);
      await lock.release();
      expect(await ssh.files.stat(`${remoteDir}/bifrost.lock`)).toBeUndefined();
    });

    it("the host lock taken over from a gone holder: its record 0600, its dir 0700, under the remote shell's umask 022", async () => {
      // The remote commands run with sshd's umask, 022 here: a record made without its own mask would be 0644.
      expect((await ssh.run({ argv: ['sh', '-c', 'umask'] })).stdout.trim()).toBe('0022');
      const lockDir = `${remoteDir}/taken.lock`;
      // A lock left by a run of this machine that is gone (a child that already exited).
      const gone = { ...currentHolder('provision-bifrost'), pid: spawnSync('true').pid as number };
      const left = await ssh.run({
        argv: ['sh', '-c', 'mkdir -m 700 -- "$1" && cat > "$1/holder.json"', 'sh', lockDir],
        input: JSON.stringify(gone),
      });
      expect(left.exitCode).toBe(0);
      const notices: string[] = [];
      const lock = await acquireHostLock(ssh, `${remoteDir}/taken`, {
        holder: currentHolder('test'),
        onNotice: (l) => notices.push(l),
      });
      expect(notices[0]).toMatch(/took over .*taken\.lock: its holder .* no longer runs on this machine/);
      expect(JSON.parse((await ssh.files.readFile(`${lockDir}/holder.json`)) ?? '{}').pid).toBe(process.pid);
      expect((await ssh.files.stat(lockDir))?.mode).toBe(0o700);
      expect((await ssh.files.stat(`${lockDir}/holder.json`))?.mode).toBe(0o600);
      await lock.release();
      expect(await ssh.files.stat(lockDir)).toBeUndefined();
    });

    it('removes the temporary file when the rename fails, and says which file', async () => {
      const target = `${remoteDir}/is-a-dir`;
      await ssh.run({ argv: ['mkdir', '-p', `${target}/inner`] });
      const err = await failure(ssh.files.writeFileAtomic(target, 'x', 0o600));
      expect(err).toBeInstanceOf(WorkError);
      expect(err.message).toContain(target);
      expect((await ssh.run({ argv: ['ls', '-A', remoteDir] })).stdout).not.toMatch(/\.tmp/);
      const missingDir = await failure(ssh.files.writeFileAtomic(`${remoteDir}/no/such/dir/f`, 'x', 0o600));
      expect(missingDir).toBeInstanceOf(WorkError);
    });
  });

  describe('host keys', () => {
    it('refuses an unknown host, naming it and its SHA256 fingerprint, with the --accept-new hint', async () => {
      const dir = await localTemp();
      const knownHosts = join(dir, 'known_hosts');
      writeFileSync(knownHosts, `# nothing yet\n`);
      const err = await failure(connectSsh(optionsFor(server, { knownHosts })));
      expect(err).toBeInstanceOf(InputError);
      expect(err.exitCode).toBe(2);
      const fp = fingerprint(server.hostKeyPub.split(' ')[1] ?? '');
      const keygenFp = execFileSync('ssh-keygen', ['-lf', join(server.dir, 'host_ed25519.pub')], {
        encoding: 'utf8',
      }).split(' ')[1];
      expect(fp).toBe(keygenFp);
      expect(err.message).toContain(`[127.0.0.1]:${server.port}`);
      expect(err.message).toContain(fp);
      expect(err.hint).toContain('--accept-new');
      expect(readFileSync(knownHosts, 'utf8')).toBe('# nothing yet\n');
    });

    it('records an unknown host with acceptNew as ssh does, and knows it next time', async () => {
      const dir = await localTemp();
      const knownHosts = join(dir, 'new', '.ssh', 'known_hosts');
      const first = await connectSsh(optionsFor(server, { knownHosts, acceptNew: true }));
      expect(first.hostKey).toMatchObject({ type: 'ssh-ed25519', added: true });
      await first.close();
      const [type, key] = server.hostKeyPub.split(' ');
      expect(readFileSync(knownHosts, 'utf8')).toBe(`[127.0.0.1]:${server.port} ${type} ${key}\n`);
      expect(statSync(knownHosts).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'new', '.ssh')).mode & 0o777).toBe(0o700);

      const second = await connectSsh(optionsFor(server, { knownHosts }));
      expect(second.hostKey.added).toBe(false);
      expect((await second.run({ argv: ['echo', 'ok'] })).stdout).toBe('ok\n');
      await second.close();

      // OpenSSH's own client accepts the file we wrote, with strict checking.
      const out = execFileSync(
        'ssh',
        [
          ...[
            '-p',
            String(server.port),
            '-i',
            server.identity,
            '-o',
            'IdentitiesOnly=yes',
            '-o',
            'BatchMode=yes',
          ],
          ...['-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-F', '/dev/null'],
          `${server.user}@127.0.0.1`,
          'echo via-openssh',
        ],
        { encoding: 'utf8', stdio: 'pipe' },
      );
      expect(out).toBe('via-openssh\n');
    });

    it('reads hashed entries (ssh-keygen -H) and can write hashed ones', async () => {
      const dir = await localTemp();
      const knownHosts = join(dir, 'known_hosts');
      copyFileSync(server.knownHosts, knownHosts);
      execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts], { stdio: 'pipe' });
      expect(readFileSync(knownHosts, 'utf8')).toMatch(/^\|1\|/);
      const viaHashed = await connectSsh(optionsFor(server, { knownHosts }));
      expect(viaHashed.hostKey.added).toBe(false);
      await viaHashed.close();

      const fresh = join(dir, 'fresh');
      await (
        await connectSsh(optionsFor(server, { knownHosts: fresh, acceptNew: true, hashKnownHosts: true }))
      ).close();
      expect(readFileSync(fresh, 'utf8')).toMatch(/^\|1\|\S+ ssh-ed25519 \S+\n$/);
      await (await connectSsh(optionsFor(server, { knownHosts: fresh }))).close();
    });

    it('refuses a key marked @revoked', async () => {
      const dir = await localTemp();
      const knownHosts = join(dir, 'known_hosts');
      copyFileSync(server.knownHosts, knownHosts);
      const [type, key] = server.hostKeyPub.split(' ');
      await appendFile(knownHosts, `@revoked * ${type} ${key}\n`);
      const err = await failure(connectSsh(optionsFor(server, { knownHosts, acceptNew: true })));
      expect(err).toBeInstanceOf(InputError);
      expect(err.message).toMatch(/@revoked.*line 2/);
    });
  });

  describe('connection and login failures', () => {
    it('says "connection refused" at once for a closed port, not at the connect deadline', async () => {
      const port = await freePort();
      // A deadline far past the test's own timeout: an answer at all means it came from the refusal.
      const err = await failure(connectSsh(optionsFor(server, { port, connectTimeoutMs: 600_000 })));
      expect(err).toBeInstanceOf(WorkError);
      expect(err.message).toBe(`ssh ${server.user}@127.0.0.1:${port}: connection refused`);
      expect(err.hint).toMatch(/sshd/);
    });

    it('gives up at the connect deadline when the server never speaks', async () => {
      // Order, not duration: the silent server got the connection, the deadline ended the attempt, and
      // the client closed its socket.
      let closed: Promise<void> | undefined;
      const silent = createServer((socket) => {
        closed = new Promise((res) => socket.on('close', () => res()));
        socket.resume(); // read (and drop) what the client sends, so that its end is seen
      });
      await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
      const addr = silent.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      try {
        const err = await failure(connectSsh(optionsFor(server, { port, connectTimeoutMs: 300 })));
        expect(closed).toBeDefined();
        await closed;
        expect(err).toBeInstanceOf(WorkError);
        expect(err.message).toMatch(/no SSH login within 0.3 s/);
      } finally {
        silent.close();
      }
    });

    it('reports a key the server does not accept, and a missing identity file', async () => {
      const dir = await localTemp();
      const stranger = join(dir, 'stranger');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger], { stdio: 'pipe' });
      const denied = await failure(connectSsh(optionsFor(server, { identity: stranger })));
      expect(denied).toBeInstanceOf(InputError);
      expect(denied.message).toMatch(/authentication failed \(tried the key .*stranger\)/);

      const missing = await failure(connectSsh(optionsFor(server, { identity: join(dir, 'nope') })));
      expect(missing).toBeInstanceOf(InputError);
      expect(missing.message).toContain(join(dir, 'nope'));

      const pub = await failure(connectSsh(optionsFor(server, { identity: `${stranger}.pub` })));
      expect(pub).toBeInstanceOf(InputError);
      expect(pub.message).toMatch(/public key/);
    });

    it('fails clearly without any credentials', async () => {
      const saved = process.env.SSH_AUTH_SOCK;
      delete process.env.SSH_AUTH_SOCK;
      try {
        const err = await failure(connectSsh(optionsFor(server, { identity: undefined })));
        expect(err).toBeInstanceOf(InputError);
        expect(err.message).toMatch(/no SSH credentials/);
      } finally {
        if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
      }
    });

    it('uses an encrypted key with its passphrase and never repeats the passphrase', async () => {
      const dir = await localTemp();
      const locked = join(dir, 'locked');
      const passphrase = 'pass-phrase-canary-7f3a';
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', locked], { stdio: 'pipe' });
      await appendFile(server.authorizedKeys, readFileSync(`${locked}.pub`));
      const ok = await connectSsh(optionsFor(server, { identity: locked, passphrase }));
      expect((await ok.run({ argv: ['echo', 'in'] })).stdout).toBe('in\n');
      await ok.close();
      for (const attempt of [undefined, 'wrong']) {
        const err = await failure(connectSsh(optionsFor(server, { identity: locked, passphrase: attempt })));
        expect(err).toBeInstanceOf(InputError);
        expect(err.message).toMatch(/passphrase/);
        expect(`${err.message} ${err.hint}`).not.toContain(passphrase);
      }
    });

    it('refuses to run once closed', async () => {
      const conn = await connectSsh(optionsFor(server));
      await conn.close();
      await conn.close(); // twice is harmless
      await expect(conn.run({ argv: ['true'] })).rejects.toBeInstanceOf(WorkError);
    });
  });
});

// Its own server: regenerating the host key restarts sshd, which the tests above must not see.
describe.skipIf(!sshd)('a changed host key', () => {
  let server: SshdServer;
  beforeAll(async () => {
    server = await startSshd(sshd as string);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('is refused even with acceptNew, with both fingerprints, the file and line, and ssh-keygen -R', async () => {
    const dir = await localTemp();
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `# first line\n${readFileSync(server.knownHosts, 'utf8')}`);
    await (await connectSsh(optionsFor(server, { knownHosts }))).close();
    const oldFp = fingerprint(server.hostKeyPub.split(' ')[1] ?? '');

    await regenerateHostKey(server);
    const newFp = fingerprint(server.hostKeyPub.split(' ')[1] ?? '');
    expect(newFp).not.toBe(oldFp);
    const before = readFileSync(knownHosts, 'utf8');
    const err = await failure(connectSsh(optionsFor(server, { knownHosts, acceptNew: true })));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/HOST KEY CHANGED/);
    expect(err.message).toContain(oldFp);
    expect(err.message).toContain(newFp);
    expect(err.message).toContain(`${knownHosts} line 2`);
    expect(err.hint).toContain(`ssh-keygen -R '[127.0.0.1]:${server.port}'`);
    expect(readFileSync(knownHosts, 'utf8')).toBe(before);
    expect(existsSync(`${knownHosts}.old`)).toBe(false);
  });
});

// Its own server behind a proxy that can stop answering or drop: every SSH wait must end.
describe.skipIf(!sshd)('every SSH wait is bounded', () => {
  let server: SshdServer;
  let proxy: DropProxy;
  let knownHosts: string;
  beforeAll(async () => {
    server = await startSshd(sshd as string);
    proxy = await startDropProxy(server.port);
    knownHosts = join(await localTemp(), 'known_hosts');
    const [type, key] = server.hostKeyPub.split(' ');
    writeFileSync(knownHosts, `[127.0.0.1]:${proxy.port} ${type} ${key}\n`);
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });
  const viaProxy = () =>
    connectSsh(
      optionsFor(server, {
        port: proxy.port,
        knownHosts,
        channelTimeoutMs: 300,
        fileOpTimeoutMs: 300,
        keepaliveIntervalMs: 600_000,
      }),
    );

  it('a server that stops answering after login: channel open, SFTP open and SFTP requests each time out by name', async () => {
    const conn = await viaProxy();
    try {
      const file = join(await localTemp(), 'f.txt');
      writeFileSync(file, 'x');
      if (process.getuid?.() === 0) execFileSync('chmod', ['-R', 'a+rX', join(file, '..')]);
      // One SFTP session before the silence, so a request on an open session is tested too.
      expect(await conn.files.readFile(file)).toBe('x');
      proxy.pause();
      const run = await failure(conn.run({ argv: ['true'] }));
      expect(run).toBeInstanceOf(WorkError);
      expect(run.message).toMatch(/no answer to opening a channel for true within 300 ms/);
      const read = await failure(conn.files.readFile(file));
      expect(read.message).toMatch(/no answer to SFTP (?:stat|read) of .*f\.txt within 300 ms/);
      const write = await failure(conn.files.writeFileAtomic(`${file}.new`, 'y', 0o600));
      expect(write.message).toMatch(/no answer to SFTP open of .*within 300 ms/);
    } finally {
      proxy.drop();
      proxy.resume();
      await conn.close();
    }
    // A fresh connection (no SFTP session yet) to a silent server: the subsystem open times out.
    const fresh = await viaProxy();
    try {
      proxy.pause();
      const open = await failure(fresh.files.stat('/'));
      expect(open.message).toMatch(/no answer to opening the SFTP subsystem within 300 ms/);
    } finally {
      proxy.drop();
      proxy.resume();
      await fresh.close();
    }
  });

  it('a dropped connection fails the pending command and file operation at once, naming the drop', async () => {
    const conn = await viaProxy();
    const started = conn.run({
      argv: ['sh', '-c', 'echo started; exec sleep 30'],
      onOutput: () => proxy.drop(),
    });
    const err = await failure(started);
    expect(err.message).toMatch(/^the SSH connection to \S+@127\.0\.0\.1:\d+ dropped while running sh: /);
    const after = await failure(conn.files.readFile('/etc/hostname'));
    expect(after.message).toMatch(/dropped while opening the SFTP subsystem/);
    await conn.close();
  });
});

describe.skipIf(!sshd)(
  'an aborted stream on a forced-command account (sshd refuses signal requests there)',
  () => {
    let server: SshdServer;
    beforeAll(async () => {
      server = await startSshd(sshd as string, { forceCommand: true });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('still ends, with everything it started: its stdin closing is its stop', async () => {
      const ssh = await connectSsh(optionsFor(server));
      try {
        const tag = `forced-${process.pid}-${Date.now()}`;
        const stop = new AbortController();
        const running = ssh.run({
          argv: ['bash', '-c', `bash -c 'sleep 300; :' ${tag}; :`],
          signal: stop.signal,
        });
        expect(await eventuallyRunning(tag)).toBe(true);
        stop.abort();
        await running;
        expect(await eventuallyGone(tag)).toBe(true);
      } finally {
        await ssh.close();
      }
    });
  },
);
