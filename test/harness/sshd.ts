/**
 * A real OpenSSH sshd for tests: 127.0.0.1, an ephemeral port, its own host key,
 * config and authorized_keys in a temp dir, run in the foreground (-D -e) and stopped by its process id.
 *
 * As root it logs in a dedicated user whose shell is /bin/sh (`sft-` and 8 hex digits, one per server,
 * created with useradd and removed with userdel by stop()): root's ~/.bashrc on these machines runs a slow
 * init for every session. As another user, sshd runs unprivileged and can only log that same user in.
 * A worker that exits without stop() still kills sshd and removes the user and the dir (exit hook).
 *
 * The SFTP server runs with `-u 000`, the most permissive umask, so tests prove that file modes come
 * from the client's open request and not from a friendly umask on the server.
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { recordCreated } from '../helpers/leak-ledger.ts';
import { uidOf } from '../helpers/process.ts';
import { requireTool } from '../helpers/tiers.ts';
import { CrashStops } from './crash-stop.ts';

/** As root, each server logs in a user of its own: this prefix and 8 hex digits. */
export const TEST_USER_PREFIX = 'sft-';

export interface SshdServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: string;
  /** Client private key (ed25519, no passphrase) whose public half is in authorizedKeys. */
  readonly identity: string;
  /** A known_hosts file holding the server's key as `[127.0.0.1]:port`. */
  readonly knownHosts: string;
  /** The server's public key line (`ssh-ed25519 AAAA... comment`); changes with regenerateHostKey. */
  readonly hostKeyPub: string;
  readonly authorizedKeys: string;
  /** The temp dir holding all of the above. */
  readonly dir: string;
  readonly pid: number;
  /** What sshd logged so far (its stderr, at the LogLevel given to startSshd; capped at 4 MiB). */
  readonly log: string;
  /** What the SFTP server logged so far (with `sftpLog`; else empty): one line per file opened. */
  sftpLog(): string;
  stop(): Promise<void>;
}

export interface SshdStartOptions {
  /** sshd's LogLevel; DEBUG1 shows forwarded (direct-tcpip) channels. Default INFO. */
  logLevel?: 'INFO' | 'VERBOSE' | 'DEBUG1';
  /**
   * Every session runs through a ForceCommand that runs the requested command, as restricted deploy
   * accounts do. OpenSSH then refuses the client's signal requests (session.c `session_signal_req`).
   */
  forceCommand?: boolean;
  /**
   * The SFTP server (OpenSSH's sftp-server rather than internal-sftp, which logs to syslog only) writes
   * each file it opens into `sftpLog` (`open "PATH" flags READ …`): a test sees what a client read.
   */
  sftpLog?: boolean;
}

/** OpenSSH's sftp-server program, where the distributions put it. */
const SFTP_SERVERS = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/libexec/sftp-server',
];

/** The sshd binary, or undefined after a printed skip (a failure under CI). */
export function findSshd(purpose: string): string | undefined {
  // /usr/sbin is often missing from a normal user's PATH; sshd insists on an absolute path anyway.
  const sshd = existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : requireTool('sshd', purpose);
  return sshd && requireTool('ssh-keygen', purpose) ? sshd : undefined;
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: 'pipe' });
}

/** useradd / userdel, retried while another process holds /etc/passwd's lock (exit 10). */
function userTool(args: string[]): void {
  for (let attempt = 1; ; attempt++) {
    try {
      execFileSync(args[0] as string, args.slice(1), { stdio: 'pipe' });
      return;
    } catch (err) {
      if ((err as { status?: number }).status !== 10 || attempt >= 50) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

/**
 * The login user. As root, a /bin/sh user of this server's own (root's slow shell init is avoided),
 * removed by stop(): no other server, worker or run shares it, so removing it never pulls it from under
 * another test. Otherwise the current user.
 */
function createTestUser(): { name: string; created: boolean } {
  if (process.getuid?.() !== 0) return { name: userInfo().username, created: false };
  const name = `${TEST_USER_PREFIX}${randomBytes(4).toString('hex')}`;
  // -p '*': no password but not locked; with UsePAM no, sshd refuses accounts locked with '!'.
  userTool(['useradd', '-m', '-s', '/bin/sh', '-p', '*', name]);
  recordCreated('user', name);
  return { name, created: true };
}

/** SIGKILLs every process running as `uid` (sessions sshd left), by pid. */
function killUserProcesses(uid: number): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = (() => {
      try {
        return readFileSync(`/proc/${entry}/status`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1) !== uid) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Removes the test user (and its home), its processes first: userdel refuses a user still running. */
function removeTestUser(user: string): void {
  const uid = uidOf(user);
  if (uid === undefined) return;
  for (let attempt = 1; ; attempt++) {
    killUserProcesses(uid);
    try {
      userTool(['userdel', '-r', user]);
      return;
    } catch (err) {
      // exit 8: still logged in (a killed process not reaped yet); 12: home not removed (mail spool missing).
      const status = (err as { status?: number }).status;
      if (status === 12 || uidOf(user) === undefined) return;
      if (status !== 8 || attempt >= 20) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

/** Servers not stopped yet: stopped synchronously (sshd by pid, the user, the temp dir) if the worker dies first. */
const liveServers = new CrashStops<Sshd>((server) => server.stopNow());

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function config(
  dir: string,
  port: number,
  user: string,
  logLevel: string,
  forceCommand: boolean,
  sftp: string,
): string {
  return `${forceCommand ? 'ForceCommand /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n' : ''}Port ${port}
ListenAddress 127.0.0.1
HostKey ${join(dir, 'host_ed25519')}
PidFile ${join(dir, 'sshd.pid')}
AuthorizedKeysFile ${join(dir, 'authorized_keys')}
AllowUsers ${user}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin ${user === 'root' ? 'prohibit-password' : 'no'}
Subsystem sftp ${sftp}
MaxStartups 100:30:200
MaxSessions 50
LogLevel ${logLevel}
`;
}

class Sshd implements SshdServer {
  readonly host = '127.0.0.1' as const;
  port = 0;
  hostKeyPub = '';
  log = '';
  private child: ChildProcess | undefined;

  constructor(
    private readonly sshd: string,
    readonly dir: string,
    readonly user: string,
    private readonly logLevel = 'INFO',
    /** The user was made for this server: stop() removes it. */
    private readonly ownsUser = false,
    private readonly forceCommand = false,
    /** The SFTP server logs the files it opens into sftpLogFile. */
    private readonly logSftp = false,
  ) {
    liveServers.add(this);
  }

  get identity(): string {
    return join(this.dir, 'client_ed25519');
  }
  get knownHosts(): string {
    return join(this.dir, 'known_hosts');
  }
  get authorizedKeys(): string {
    return join(this.dir, 'authorized_keys');
  }
  get pid(): number {
    return this.child?.pid ?? 0;
  }
  private get sftpLogFile(): string {
    return join(this.dir, 'sftp.log');
  }

  sftpLog(): string {
    return this.logSftp ? readFileSync(this.sftpLogFile, 'utf8') : '';
  }

  /** The Subsystem command: internal-sftp, or sftp-server logging every open through a wrapper. */
  private async sftpSubsystem(): Promise<string> {
    if (!this.logSftp) return 'internal-sftp -u 000';
    const server = SFTP_SERVERS.find((p) => existsSync(p));
    if (!server)
      throw new Error(`sftpLog needs OpenSSH's sftp-server (looked in ${SFTP_SERVERS.join(', ')})`);
    // The logged-in user appends to the log: it is born writable by all (a test's own temp dir).
    await writeFile(this.sftpLogFile, '', { mode: 0o666 });
    await chmod(this.sftpLogFile, 0o666);
    const wrapper = join(this.dir, 'sftp-logged');
    await writeFile(wrapper, `#!/bin/sh\nexec ${server} -u 000 -e -l INFO 2>>${this.sftpLogFile}\n`, {
      mode: 0o755,
    });
    await chmod(wrapper, 0o755);
    return wrapper;
  }

  /** Starts on `port`, or on a fresh ephemeral port (retrying when another process takes it first). */
  async start(port?: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.port = port ?? (await freePort());
      const configFile = join(this.dir, 'sshd_config');
      const sftp = await this.sftpSubsystem();
      await writeFile(
        configFile,
        config(this.dir, this.port, this.user, this.logLevel, this.forceCommand, sftp),
      );
      const result = await this.launch(configFile);
      if (result === 'ok') break;
      if (!/Address already in use/.test(result) || attempt >= 5) {
        throw new Error(`sshd did not start on 127.0.0.1:${this.port}:\n${result}`);
      }
      if (port !== undefined) await new Promise((r) => setTimeout(r, 200));
    }
    this.hostKeyPub = (await readFile(join(this.dir, 'host_ed25519.pub'), 'utf8')).trim();
  }

  /** 'ok' once sshd logs that it listens; else its stderr after it exits or misses the deadline. */
  private launch(configFile: string): Promise<string> {
    return new Promise((resolve) => {
      const child = spawn(this.sshd, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      const deadline = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(`no "Server listening" within 10 s:\n${stderr}`);
      }, 10_000);
      const onData = (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('Server listening on')) {
          clearTimeout(deadline);
          this.child = child;
          this.log += stderr;
          // Keep draining sshd's log so a full pipe never blocks it; keep it for tests that read it.
          child.stderr?.off('data', onData).on('data', (more: Buffer) => {
            if (this.log.length < 4 << 20) this.log += more.toString();
          });
          resolve('ok');
        }
      };
      child.stderr?.on('data', onData);
      child.once('exit', () => {
        clearTimeout(deadline);
        if (this.child !== child) resolve(stderr || 'sshd exited without output');
      });
    });
  }

  async stopDaemon(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.stopDaemon();
    this.removeRest();
  }

  /** For the exit hook: SIGKILL sshd, then what stop() removes. */
  stopNow(): void {
    const pid = this.child?.pid;
    this.child = undefined;
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.removeRest();
  }

  private removeRest(): void {
    liveServers.delete(this);
    if (this.ownsUser) removeTestUser(this.user);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts sshd (the path from findSshd); call stop() when done. */
export async function startSshd(sshdPath: string, options: SshdStartOptions = {}): Promise<SshdServer> {
  // The privilege separation directory sshd insists on when run as root.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), 'sshd-'));
  let user: { name: string; created: boolean };
  try {
    user = createTestUser();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // sshd reads authorized_keys as the logging-in user: the dir must be traversable and the file readable.
  await chmod(dir, 0o711);
  // From here on the server owns dir and user: stop() (or the exit hook) removes both.
  const server = new Sshd(
    sshdPath,
    dir,
    user.name,
    options.logLevel,
    user.created,
    options.forceCommand,
    options.sftpLog,
  );
  try {
    keygen(join(dir, 'host_ed25519'), 'test-host');
    keygen(join(dir, 'client_ed25519'), 'test-client');
    await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client_ed25519.pub')), {
      mode: 0o644,
    });
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  await writeKnownHosts(server);
  return server;
}

/** A known_hosts file with the server's current key, as `ssh` would have recorded it. */
async function writeKnownHosts(server: SshdServer): Promise<void> {
  const [type, key] = server.hostKeyPub.split(' ');
  await writeFile(server.knownHosts, `[127.0.0.1]:${server.port} ${type} ${key}\n`, { mode: 0o600 });
}

/**
 * Gives the server a new host key of the same type (a reinstalled server, or an impostor) and restarts
 * it on the same port. `server.knownHosts` keeps the old key, so clients using it see a changed key.
 */
export async function regenerateHostKey(server: SshdServer): Promise<void> {
  const sshd = server as Sshd;
  await sshd.stopDaemon();
  await rm(join(sshd.dir, 'host_ed25519'), { force: true });
  await rm(join(sshd.dir, 'host_ed25519.pub'), { force: true });
  keygen(join(sshd.dir, 'host_ed25519'), 'test-host-new');
  await sshd.start(sshd.port);
}

/** The SSH flags every host command takes, pointing at this server. */
export function sshCliArgs(
  server: Pick<SshdServer, 'host' | 'port' | 'user' | 'identity' | 'knownHosts'>,
  knownHosts = server.knownHosts,
): string[] {
  return [
    '--host',
    server.host,
    '--port',
    String(server.port),
    '--user',
    server.user,
    '--identity',
    server.identity,
    '--known-hosts',
    knownHosts,
  ];
}
