/**
 * A real OpenSSH sshd for tests (DESIGN.md "Tests"): 127.0.0.1, an ephemeral port, its own host key,
 * config and authorized_keys in a temp dir, run in the foreground (-D -e) and stopped by its process id.
 *
 * As root it logs in a dedicated user whose shell is /bin/sh (`sftest`, created with useradd when
 * missing): root's ~/.bashrc on these machines runs a slow init for every session. As another user,
 * sshd runs unprivileged and can only log that same user in.
 *
 * The SFTP server runs with `-u 000`, the most permissive umask, so tests prove that file modes come
 * from the client's open request and not from a friendly umask on the server.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../helpers/tiers.ts';

export const TEST_USER = 'sftest';

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
  stop(): Promise<void>;
}

export interface SshdStartOptions {
  /** sshd's LogLevel; DEBUG1 shows forwarded (direct-tcpip) channels. Default INFO. */
  logLevel?: 'INFO' | 'VERBOSE' | 'DEBUG1';
}

/** The sshd binary, or undefined after a printed skip (a failure under CI). */
export function findSshd(purpose: string): string | undefined {
  // /usr/sbin is often missing from a normal user's PATH; sshd insists on an absolute path anyway.
  const sshd = existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : requireTool('sshd', purpose);
  return sshd && requireTool('ssh-keygen', purpose) ? sshd : undefined;
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: 'pipe' });
}

/** The login user: root's slow shell init is avoided with a /bin/sh user created on first use. */
function ensureTestUser(): string {
  if (process.getuid?.() !== 0) return userInfo().username;
  const passwd = readFileSync('/etc/passwd', 'utf8');
  if (!passwd.split('\n').some((l) => l.startsWith(`${TEST_USER}:`))) {
    try {
      // -p '*': no password but not locked; with UsePAM no, sshd refuses accounts locked with '!'.
      execFileSync('useradd', ['-m', '-s', '/bin/sh', '-p', '*', TEST_USER], { stdio: 'pipe' });
    } catch (err) {
      // Another test worker may have created it in the meantime (useradd exit 9: already exists).
      if ((err as { status?: number }).status !== 9) throw err;
    }
  }
  const shadow = readFileSync('/etc/shadow', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${TEST_USER}:`));
  if (shadow?.split(':')[1]?.startsWith('!')) execFileSync('usermod', ['-p', '*', TEST_USER]);
  return TEST_USER;
}

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

function config(dir: string, port: number, user: string, logLevel: string): string {
  return `Port ${port}
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
Subsystem sftp internal-sftp -u 000
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
  ) {}

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

  /** Starts on `port`, or on a fresh ephemeral port (retrying when another process takes it first). */
  async start(port?: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.port = port ?? (await freePort());
      const configFile = join(this.dir, 'sshd_config');
      await writeFile(configFile, config(this.dir, this.port, this.user, this.logLevel));
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
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts sshd (the path from findSshd); call stop() when done. */
export async function startSshd(sshdPath: string, options: SshdStartOptions = {}): Promise<SshdServer> {
  const user = ensureTestUser();
  // The privilege separation directory sshd insists on when run as root.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), 'sshd-'));
  // sshd reads authorized_keys as the logging-in user: the dir must be traversable and the file readable.
  await chmod(dir, 0o711);
  keygen(join(dir, 'host_ed25519'), 'test-host');
  keygen(join(dir, 'client_ed25519'), 'test-client');
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client_ed25519.pub')), {
    mode: 0o644,
  });
  const server = new Sshd(sshdPath, dir, user, options.logLevel);
  try {
    await server.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
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
export function sshCliArgs(server: SshdServer, knownHosts = server.knownHosts): string[] {
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
