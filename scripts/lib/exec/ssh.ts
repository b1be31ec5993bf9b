/**
 * The SSH executor: one ssh2 connection carries every command (an exec channel each) and every file
 * operation (one SFTP session), so a provisioning run pays for one handshake, not one per step
 * (webpod does the same; a fresh `ssh` process costs ~250 ms here, an exec on an open connection ~10 ms).
 *
 * Host keys are checked against the operator's OpenSSH known_hosts (known-hosts.ts), with ssh's
 * `StrictHostKeyChecking=accept-new` as the most permissive mode: a changed key is always refused.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir, constants as osConstants } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel, ConnectConfig, ServerHostKeyAlgorithm, SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';
import { InputError, WorkError } from '../errors.ts';
import {
  type Command,
  type CommandResult,
  type Executor,
  type FileOps,
  type FileStat,
  formatCommand,
  shellQuote,
} from './executor.ts';
import {
  appendKnownHostsLine,
  checkHostKey,
  fingerprint,
  formatKnownHostsLine,
  type KnownHostsEntry,
  keyTypeOfBlob,
  knownHostKeyAlgorithms,
  lookupName,
  readKnownHosts,
} from './known-hosts.ts';

export interface SshOptions {
  host: string;
  /** Default 22. */
  port?: number;
  /** Default $USER, else root. */
  user?: string;
  /** Private key file. Without it, the agent at `agent` (default SSH_AUTH_SOCK) authenticates. */
  identity?: string;
  /** For an encrypted identity; never prompted for. */
  passphrase?: string;
  agent?: string;
  /** Default ~/.ssh/known_hosts. */
  knownHosts?: string;
  /** Record an unknown host's key (ssh's accept-new). A changed key is refused regardless. */
  acceptNew?: boolean;
  /** Write accepted hosts hashed (`HashKnownHosts yes`). Default: plain, readable names. */
  hashKnownHosts?: boolean;
  /** Deadline for TCP connect, handshake and authentication together. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default 15 s; three missed replies end the connection, so a dead host fails runs instead of hanging. */
  keepaliveIntervalMs?: number;
}

/** What the server proved it is, for the caller to report ("added host key SHA256:..."). */
export interface HostKeyInfo {
  type: string;
  fingerprint: string;
  /** True when this connection recorded the key (accept-new). */
  added: boolean;
}

// Host key algorithms ssh2 can negotiate; known_hosts may name others (certificates, security keys).
const SSH2_HOST_KEY_ALGS = new Set<string>([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
  'ssh-dss',
]);

/** SFTP status code for "no such file" (draft-ietf-secsh-filexfer-02 §7). */
const SFTP_NO_SUCH_FILE = 2;

/** After a deadline's kill signal: when to close the channel ourselves, then when to stop waiting for it. */
const KILL_CLOSE_MS = 1000;
const KILL_GRACE_MS = 5000;

export async function connectSsh(opts: SshOptions): Promise<SshExecutor> {
  const port = opts.port ?? 22;
  const user = opts.user ?? process.env.USER ?? 'root';
  const where = `ssh ${user}@${opts.host}:${port}`;
  const auth = await loadAuth(opts, where);
  const knownHostsFile = opts.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
  let entries: KnownHostsEntry[];
  try {
    entries = await readKnownHosts(knownHostsFile);
  } catch (err) {
    throw new InputError(`${where}: cannot read ${knownHostsFile}: ${(err as Error).message}`);
  }
  const verifier = new HostKeyVerifier(where, opts, port, knownHostsFile, entries);
  const knownAlgs = knownHostKeyAlgorithms(entries, opts.host, port).filter(
    (a): a is ServerHostKeyAlgorithm => SSH2_HOST_KEY_ALGS.has(a),
  );
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;

  const client = new ssh2.Client();
  const config: ConnectConfig = {
    host: opts.host,
    port,
    username: user,
    ...auth.config,
    hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
      verifier.verify(key).then(verify, () => verify(false));
    },
    // ssh2's deadline covers DNS, TCP connect, key exchange and authentication.
    readyTimeout: timeoutMs,
    keepaliveInterval: opts.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: 3,
    // Known key types first, so a server with several host keys shows the one on file (see known-hosts.ts).
    ...(knownAlgs.length
      ? { algorithms: { serverHostKey: { remove: knownAlgs, prepend: knownAlgs, append: [] } } }
      : {}),
  };

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.destroy();
      reject(err);
    };
    client.once('ready', () => {
      settled = true;
      resolve();
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      fail(verifier.failure ?? connectError(err, where, timeoutMs, auth.tried));
    });
    client.once('close', () =>
      fail(new WorkError(`${where}: the server closed the connection during login`)),
    );
    client.connect(config);
    // Nagle plus delayed ACKs add ~40 ms to every small exec round trip (lab notes: 52 ms -> 10 ms).
    client.setNoDelay(true);
  });
  const hostKey = verifier.accepted;
  if (!hostKey) throw new WorkError(`${where}: connected without a host key check`); // ssh2 always verifies
  return new SshExecutor(client, where, hostKey);
}

interface AuthConfig {
  config: Pick<ConnectConfig, 'privateKey' | 'passphrase' | 'agent'>;
  /** For the authentication-failure message: what was offered, never a secret. */
  tried: string;
}

async function loadAuth(opts: SshOptions, where: string): Promise<AuthConfig> {
  const agent = opts.agent ?? (opts.identity ? undefined : process.env.SSH_AUTH_SOCK);
  const tried: string[] = [];
  const config: AuthConfig['config'] = {};
  if (opts.identity) {
    let key: Buffer;
    try {
      key = await readFile(opts.identity);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new InputError(
        `${where}: cannot read the identity file ${opts.identity} (${code})`,
        'give the path of a readable private key, e.g. ~/.ssh/id_ed25519',
      );
    }
    // Parsed here, not inside ssh2's connect, to report a bad key as the operator's input.
    const parsed = ssh2.utils.parseKey(key, opts.passphrase);
    if (parsed instanceof Error) {
      const encrypted = /passphrase|encrypted/i.test(parsed.message);
      throw new InputError(
        `${where}: cannot use the identity file ${opts.identity}: ${parsed.message}`,
        encrypted
          ? 'load the key into ssh-agent (ssh-add) and connect without an identity file, or give its passphrase'
          : 'give an OpenSSH or PEM private key file',
      );
    }
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!first?.isPrivateKey()) {
      throw new InputError(
        `${where}: ${opts.identity} holds a public key`,
        'give the private key file (without .pub)',
      );
    }
    config.privateKey = key;
    if (opts.passphrase !== undefined) config.passphrase = opts.passphrase;
    tried.push(`the key ${opts.identity}`);
  }
  if (agent) {
    config.agent = agent;
    tried.push(`the agent at ${agent}`);
  }
  if (!tried.length) {
    throw new InputError(
      `${where}: no SSH credentials: no identity file given and SSH_AUTH_SOCK is not set`,
      'give an identity file or start ssh-agent and add your key (ssh-add)',
    );
  }
  return { config, tried: tried.join(' and ') };
}

function connectError(
  err: Error & { level?: string; code?: string },
  where: string,
  timeoutMs: number,
  tried: string,
): Error {
  if (err.level === 'client-timeout') {
    return new WorkError(
      `${where}: no SSH login within ${timeoutMs / 1000} s`,
      'check the host and port, that sshd runs there and that no firewall drops the packets',
    );
  }
  if (err.level === 'client-authentication') {
    return new InputError(
      `${where}: authentication failed (tried ${tried})`,
      "check the user name and that the public key is in the user's ~/.ssh/authorized_keys on the server",
    );
  }
  switch (err.code) {
    case 'ECONNREFUSED':
      return new WorkError(
        `${where}: connection refused`,
        'nothing listens on that port: check the port and that sshd runs on the host',
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new WorkError(`${where}: cannot resolve the host name`, 'check the host name and DNS');
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return new WorkError(`${where}: host unreachable (${err.code})`, 'check the address and the network');
    case 'ECONNRESET':
      return new WorkError(
        `${where}: the server reset the connection during login`,
        'sshd may be limiting connections (MaxStartups) or blocking this address',
      );
  }
  return new WorkError(`${where}: ${err.message}`);
}

/** The known_hosts decision for the key the server offers; the reason is kept for the error ssh2 reports. */
class HostKeyVerifier {
  failure: InputError | undefined;
  accepted: HostKeyInfo | undefined;

  constructor(
    private readonly where: string,
    private readonly opts: SshOptions,
    private readonly port: number,
    private readonly file: string,
    private readonly entries: readonly KnownHostsEntry[],
  ) {}

  async verify(blob: Buffer): Promise<boolean> {
    const type = keyTypeOfBlob(blob);
    const key = blob.toString('base64');
    const offered = fingerprint(blob);
    const { host } = this.opts;
    const name = lookupName(host, this.port);
    const check = checkHostKey(this.entries, host, this.port, type, key);
    const removeHint =
      `if the server's key really changed, confirm the new fingerprint with its administrator, remove the old ` +
      `entry with: ssh-keygen -R ${shellQuote(name)} -f ${shellQuote(this.file)}, and re-run with --accept-new`;
    switch (check.status) {
      case 'known':
        this.accepted = { type, fingerprint: offered, added: false };
        return true;
      case 'revoked':
        this.failure = new InputError(
          `${this.where}: the server's ${type} host key ${offered} is marked @revoked in ${this.file} ` +
            `line ${check.entry.line}; refusing to connect`,
          'the server needs a new host key; do not remove the @revoked line',
        );
        return false;
      case 'changed':
      case 'other-types': {
        const known = check.known
          .map((e) => `${e.keyType} ${fingerprint(e.key)} (${this.file} line ${e.line})`)
          .join(', ');
        this.failure = new InputError(
          `${this.where}: HOST KEY CHANGED for ${name}: the server offers ${type} ${offered} but known_hosts ` +
            `has ${known}. Someone may be intercepting the connection, or the server was reinstalled. ` +
            'Refusing to connect.',
          removeHint,
        );
        return false;
      }
      case 'unknown':
        if (!this.opts.acceptNew) {
          this.failure = new InputError(
            `${this.where}: unknown host: ${name} offers ${type} key ${offered}, which is not in ${this.file}`,
            'verify that fingerprint on the server (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) or with its ' +
              'administrator, then re-run with --accept-new to record it',
          );
          return false;
        }
        try {
          const line = formatKnownHostsLine(host, this.port, type, key, { hash: this.opts.hashKnownHosts });
          await appendKnownHostsLine(this.file, line);
        } catch (err) {
          this.failure = new InputError(
            `${this.where}: cannot record the host key in ${this.file}: ${(err as Error).message}`,
            `make ${dirname(this.file)} writable or give another known_hosts file`,
          );
          return false;
        }
        this.accepted = { type, fingerprint: offered, added: true };
        return true;
    }
  }
}

/** The remote command line: argv quoted for the login shell, env as an `env K=V` prefix. */
export function remoteCommandLine(cmd: Pick<Command, 'argv' | 'env'>): string {
  const env = Object.entries(cmd.env ?? {});
  for (const [name] of env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name: ${name}`);
  }
  const command = formatCommand(cmd.argv);
  return env.length ? `env ${env.map(([k, v]) => shellQuote(`${k}=${v}`)).join(' ')} ${command}` : command;
}

/** ssh2 internals used to signal a channel whose stdin is already closed (Channel.signal refuses then). */
interface SignalableChannel {
  outgoing: { id: number; state: string };
}
interface ClientInternals {
  _protocol?: { signal(channelId: number, signal: string): void };
}

export class SshExecutor implements Executor {
  readonly files: FileOps;
  private closed = false;
  private lost: Error | undefined;

  constructor(
    private readonly client: InstanceType<typeof ssh2.Client>,
    readonly where: string,
    readonly hostKey: HostKeyInfo,
  ) {
    this.files = new SftpFiles(client, where, () => !this.closed);
    // After login, errors surface through the channels; this keeps a late one from crashing the process.
    client.on('error', (err: Error) => {
      this.lost = err;
    });
    client.on('close', () => {
      this.closed = true;
    });
  }

  run(cmd: Command): Promise<CommandResult> {
    const program = cmd.argv[0];
    if (program === undefined) return Promise.reject(new Error('empty command'));
    let line: string;
    try {
      line = remoteCommandLine(cmd);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const lostError = (reason: string) =>
        new WorkError(
          `${this.where}: ${reason} while running ${program}${this.lost ? `: ${this.lost.message}` : ''}`,
          'check the network and the server, then re-run: the steps are safe to repeat',
        );
      if (this.closed) return reject(lostError('the connection is closed'));
      try {
        this.client.exec(line, (err, stream) => {
          if (err) {
            reject(
              new WorkError(
                `${this.where}: cannot start ${program}: ${err.message}`,
                'the connection may have dropped, or sshd refused another session (MaxSessions)',
              ),
            );
            return;
          }
          this.collect(stream, cmd, resolve, () => reject(lostError('the connection was lost')));
        });
      } catch (err) {
        // ssh2 throws synchronously when the socket is already gone.
        reject(lostError((err as Error).message));
      }
    });
  }

  private collect(
    stream: ClientChannel,
    cmd: Command,
    resolve: (r: CommandResult) => void,
    lost: () => void,
  ): void {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // Decoders so a multi-byte character split across packets reaches onOutput whole.
    const outText = new StringDecoder('utf8');
    const errText = new StringDecoder('utf8');
    let exitCode: number | undefined;
    let timedOut = false;
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;

    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(grace);
      if (exitCode === undefined && !timedOut && this.closed) return lost();
      resolve({
        // No status at all: killed at the deadline (SIGKILL), else 255 as ssh reports a broken session.
        exitCode: exitCode ?? (timedOut ? 128 + osConstants.signals.SIGKILL : 255),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    };

    stream.on('data', (chunk: Buffer) => {
      out.push(chunk);
      if (cmd.onOutput) emit(cmd.onOutput, outText.write(chunk), 'stdout');
    });
    stream.stderr.on('data', (chunk: Buffer) => {
      err.push(chunk);
      if (cmd.onOutput) emit(cmd.onOutput, errText.write(chunk), 'stderr');
    });
    stream.on('exit', (code: number | null, signal?: string) => {
      const signo = signal ? osConstants.signals[signal as NodeJS.Signals] : undefined;
      exitCode = code ?? 128 + (signo ?? 0);
    });
    stream.on('close', () => {
      if (cmd.onOutput) {
        emit(cmd.onOutput, outText.end(), 'stdout');
        emit(cmd.onOutput, errText.end(), 'stderr');
      }
      settle();
    });
    // A command that exits without reading stdin closes the channel under our write; that is its business.
    stream.on('error', () => {});

    if (cmd.timeoutMs !== undefined) {
      deadline = setTimeout(() => {
        timedOut = true;
        this.kill(stream);
        // The killed process's exit closes the channel; closing it ourselves first would race the
        // exit status. A server that ignores the signal gets the channel closed after a moment, and one
        // that never confirms the close must not hold the caller past its deadline for long.
        grace = setTimeout(() => {
          stream.close();
          grace = setTimeout(settle, KILL_GRACE_MS);
        }, KILL_CLOSE_MS);
      }, cmd.timeoutMs);
    }
    stream.end(cmd.input ?? '');
  }

  /**
   * Closing a channel does not stop the remote process (sshd leaves it running); a "signal" request
   * does: OpenSSH >= 7.9 sends it to the session's whole process group. Channel.signal() refuses once
   * stdin is closed, which it always is here, so the request goes through ssh2's protocol object.
   */
  private kill(stream: ClientChannel): void {
    const chan = stream as unknown as SignalableChannel;
    const protocol = (this.client as unknown as ClientInternals)._protocol;
    try {
      // 'eof' is the state after our stdin closed: the channel is still open for requests.
      const state = chan.outgoing?.state;
      if (protocol && (state === 'open' || state === 'eof')) protocol.signal(chan.outgoing.id, 'KILL');
      else stream.signal('KILL');
    } catch {
      // The channel is already closing; the close below ends it either way.
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2000);
      this.client.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      this.client.end();
    });
  }
}

function emit(onOutput: NonNullable<Command['onOutput']>, text: string, stream: 'stdout' | 'stderr'): void {
  if (text) onOutput(text, stream);
}

type SftpError = Error & { code?: number | string };

/** FileOps over one SFTP session on the executor's connection, opened on first use. */
class SftpFiles implements FileOps {
  private session: Promise<SFTPWrapper> | undefined;

  constructor(
    private readonly client: InstanceType<typeof ssh2.Client>,
    private readonly where: string,
    /** Whether the connection is still up: requests on a dropped one are never answered. */
    private readonly connected: () => boolean,
  ) {}

  private sftp(): Promise<SFTPWrapper> {
    if (!this.session) {
      const session = new Promise<SFTPWrapper>((resolve, reject) => {
        try {
          this.client.sftp((err, sftp) => {
            if (err)
              return reject(this.error('cannot start SFTP', err, 'the server needs an sftp Subsystem'));
            // A session that ends (server restart, channel error) is reopened on the next call.
            sftp.on('close', () => {
              if (this.session === session) this.session = undefined;
            });
            resolve(sftp);
          });
        } catch (err) {
          reject(this.error('cannot start SFTP', err as Error));
        }
      });
      session.catch(() => {
        if (this.session === session) this.session = undefined;
      });
      this.session = session;
    }
    return this.session;
  }

  private error(what: string, err: Error, hint?: string): WorkError {
    return new WorkError(`${this.where}: ${what}: ${err.message}`, hint);
  }

  async readFile(path: string): Promise<string | undefined> {
    const sftp = await this.sftp();
    return new Promise((resolve, reject) => {
      sftp.readFile(path, (err: SftpError | undefined, data: Buffer) => {
        if (!err) return resolve(data.toString('utf8'));
        if (err.code === SFTP_NO_SUCH_FILE) return resolve(undefined);
        reject(this.error(`cannot read ${path}`, err));
      });
    });
  }

  async stat(path: string): Promise<FileStat | undefined> {
    const sftp = await this.sftp();
    return new Promise((resolve, reject) => {
      sftp.stat(path, (err: SftpError | undefined, s) => {
        if (!err) return resolve({ size: s.size, mode: s.mode & 0o7777, mtimeMs: s.mtime * 1000 });
        if (err.code === SFTP_NO_SUCH_FILE) return resolve(undefined);
        reject(this.error(`cannot stat ${path}`, err));
      });
    });
  }

  /**
   * The temporary file is opened with O_CREAT|O_EXCL and `mode` in the same request, so it is never
   * readable by others, whatever the server's umask (umask only removes bits). Its mode is then set
   * exactly while it is still empty (a umask of 077 must not turn a wanted 0644 into 0600), the content
   * written and fsynced, and posix-rename moves it over the target in one step: readers see the old
   * file or the new one, never a half-written one. On failure the temporary file is removed.
   */
  async writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
    const sftp = await this.sftp();
    const temp = posix.join(
      posix.dirname(path),
      `.${posix.basename(path)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    const call = <T>(fn: (cb: (err: Error | undefined | null, value?: T) => void) => void) =>
      new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
    let handle: Buffer | undefined;
    try {
      handle = await call<Buffer>((cb) => sftp.open(temp, 'wx', { mode }, cb));
      const h = handle;
      await call((cb) => sftp.fsetstat(h, { mode }, cb));
      const data = Buffer.from(content, 'utf8');
      if (data.length) await call((cb) => sftp.write(h, data, 0, data.length, 0, cb));
      // fsync@openssh.com when offered: the renamed file must hold its content after a crash.
      await call((cb) => sftp.ext_openssh_fsync(h, cb)).catch(() => {});
      handle = undefined;
      await call((cb) => sftp.close(h, cb));
      await call((cb) => sftp.ext_openssh_rename(temp, path, cb));
    } catch (err) {
      const h = handle;
      // Clean-up only on a live connection: after a drop ssh2 never answers these requests, and
      // waiting would hang. The next upload removes leftovers anyway.
      if (this.connected()) {
        const briefly = (p: Promise<unknown>) =>
          Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
        if (h) await briefly(call((cb) => sftp.close(h, cb)));
        await briefly(call((cb) => sftp.unlink(temp, cb)));
      }
      const message = (err as Error).message;
      const hint = /does not support/.test(message)
        ? 'the server lacks the posix-rename@openssh.com SFTP extension (OpenSSH has it)'
        : undefined;
      throw this.error(`cannot write ${path}`, err as Error, hint);
    }
  }
}
