/**
 * The SSH executor: one ssh2 connection carries every command (an exec channel each) and every file
 * operation (one SFTP session), so a provisioning run pays for one handshake, not one per step
 * (webpod does the same; a fresh `ssh` process costs ~250 ms here, an exec on an open connection ~10 ms).
 *
 * Host keys are checked against the operator's OpenSSH known_hosts (known-hosts.ts), with ssh's
 * `StrictHostKeyChecking=accept-new` as the most permissive mode: a changed key is always refused.
 */
import { randomBytes } from 'node:crypto';
import { homedir, constants as osConstants } from 'node:os';
import { dirname, join, posix } from 'node:path';
import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type {
  Client,
  ClientChannel,
  ConnectConfig,
  ServerHostKeyAlgorithm,
  SFTPWrapper,
  Stats as SftpStats,
} from 'ssh2';
import { InputError, WorkError } from '../core/errors.ts';
import { notRegular } from '../core/file-kind.ts';
import { notRegularError, READ_LIMITS, readBounded, tooLargeError } from '../core/read-bounded.ts';
import { InterruptedError, runContext } from '../core/run-context.ts';
import {
  badHostFile,
  type Command,
  type CommandResult,
  type Executor,
  type FileOps,
  type FileStat,
  formatCommand,
  HOST_FILE_READ,
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
import { abortedBeforeStart } from './local.ts';
import { type ProxyProcess, startProxyCommand } from './proxy-command.ts';
import { droppedPrefix, noteDropped } from './ssh-dropped.ts';

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
  /**
   * More private keys (already read and decrypted by the caller), offered after the agent and
   * `identity` in the same connection, in this order, as ssh offers its identity files.
   */
  keys?: IdentityKey[];
  /** An agent socket; `false`: no agent even when SSH_AUTH_SOCK is set (IdentitiesOnly). */
  agent?: string | false;
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
  /**
   * Deadline for the server to open a channel: an exec session, the SFTP subsystem. Default 30 s.
   * ssh2 never answers a request on a dead connection, so every wait needs one.
   */
  channelTimeoutMs?: number;
  /** Deadline for each SFTP request; a write gets 1 s more per 64 KiB. Default 60 s. */
  fileOpTimeoutMs?: number;
  /**
   * Reach the host through this one first (ssh's ProxyJump): a direct-tcpip channel on the jump
   * connection carries the target's SSH connection. Its host key is checked the same way.
   */
  jump?: SshOptions;
  /**
   * Reach the host through this command's stdin and stdout (ssh's ProxyCommand, tokens expanded); not
   * with `jump`. The host key is checked against `host` all the same.
   */
  proxyCommand?: string;
  /** Hint for the no-credentials error (what the caller looked for). */
  noCredentialsHint?: string;
}

export interface IdentityKey {
  /** The file, for messages. */
  label: string;
  key: Buffer;
  passphrase?: string;
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

/** What one SFTP read asks for (ssh2 splits it to the server's limit). */
const SFTP_READ_CHUNK = 256 * 1024;

/** SFTP status code for "no such file" (draft-ietf-secsh-filexfer-02 §7). */
const SFTP_NO_SUCH_FILE = 2;

/** After a deadline's kill signal: when to close the channel ourselves, then when to stop waiting for it. */
const KILL_CLOSE_MS = 1000;
const KILL_GRACE_MS = 5000;
const CHANNEL_TIMEOUT_MS = 30_000;
/** How long a closed proxy stream waits for the ProxyCommand's exit status, for the message. */
const PROXY_EXIT_WAIT_MS = 2000;
const FILE_OP_TIMEOUT_MS = 60_000;
const NEVER_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
]);
const RERUN_HINT = 'check the network and the server, then re-run: the steps are safe to repeat';

/**
 * ssh2, loaded on first use: loading it compiles its protocol code and instantiates its WebAssembly
 * (~70 ms of CPU), which every command that never connects (`--help`, the local and kubectl paths) would
 * pay at start.
 */
export async function loadSsh2(): Promise<typeof import('ssh2')> {
  return (await import('ssh2')).default;
}

export async function connectSsh(opts: SshOptions): Promise<SshExecutor> {
  const port = opts.port ?? 22;
  const user = opts.user ?? process.env.USER ?? 'root';
  const base = `ssh ${connectionName(user, opts.host, port)}`;
  // Bad input is reported before any connection is made, the jump's included.
  const auth = await loadAuth(opts, base);
  const knownHostsFile = opts.knownHosts ?? join(homedir(), '.ssh', 'known_hosts');
  let entries: KnownHostsEntry[];
  try {
    entries = await readKnownHosts(knownHostsFile);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${base}: cannot read ${knownHostsFile}: ${(err as Error).message}`);
  }
  let jump: SshExecutor | undefined;
  let proxy: ProxyProcess | undefined;
  let sock: Duplex | undefined;
  if (opts.jump) {
    jump = await connectSsh(opts.jump);
    try {
      sock = await jump.forwardOut(opts.host, port);
    } catch (err) {
      await jump.close();
      throw err;
    }
  } else if (opts.proxyCommand !== undefined) {
    proxy = startProxyCommand(opts.proxyCommand);
    sock = proxy.stream;
  }
  const where = jump
    ? `${base} via ${jump.where.replace(/^ssh /, '')}`
    : proxy
      ? `${base} via ProxyCommand`
      : base;
  /** Before login: a proxy that exited is the reason, whatever ssh2 makes of the closed stream. */
  const proxyFailure = (p: ProxyProcess): Promise<WorkError | undefined> =>
    new Promise((resolve) => {
      // Its stdout closes before its exit status arrives: a short, bounded wait for it.
      const timer = setTimeout(() => resolve(undefined), PROXY_EXIT_WAIT_MS);
      void p.ended.then((why) => {
        clearTimeout(timer);
        resolve(
          new WorkError(
            `${where}: the ProxyCommand ${why}, before the SSH login (${opts.proxyCommand})`,
            'run the ProxyCommand by hand to see why it fails, or fix it in the ssh config',
          ),
        );
      });
    });
  const verifier = new HostKeyVerifier(where, opts, port, knownHostsFile, entries);
  const knownAlgs = knownHostKeyAlgorithms(entries, opts.host, port).filter(
    (a): a is ServerHostKeyAlgorithm => SSH2_HOST_KEY_ALGS.has(a),
  );
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;

  const client = new (await loadSsh2()).Client();
  const config: ConnectConfig = {
    host: opts.host,
    port,
    username: user,
    ...(sock ? { sock } : {}),
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

  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      let offStop = () => {};
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        offStop();
        client.destroy();
        const p = proxy;
        // Our own verdicts stand (an interrupt, a refused host key, a refused login); a deadline waits
        // the same short while for a proxy that is still running, and stands too.
        if (!p || err instanceof InterruptedError || err instanceof InputError) {
          p?.stop();
          return reject(err);
        }
        void proxyFailure(p).then((better) => {
          p.stop();
          reject(better ?? err);
        });
      };
      offStop = runContext.onStop(() => fail(new InterruptedError(runContext.interrupted ?? 'SIGINT')));
      client.once('ready', () => {
        settled = true;
        offStop();
        resolve();
      });
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        // Connected, then lost before login finished (not refused, not unresolvable, not a login failure).
        const neverConnected = NEVER_CONNECTED.has(err.code ?? '');
        if (
          !verifier.failure &&
          !neverConnected &&
          err.level !== 'client-authentication' &&
          err.level !== 'client-timeout'
        ) {
          noteDropped(connectionName(user, opts.host, port), err.message);
        }
        fail(verifier.failure ?? connectError(err, where, timeoutMs, auth.tried));
      });
      client.once('close', () => {
        if (settled) return;
        const jumpLost = jump?.lostReason;
        const reason = jumpLost ? `the jump host dropped: ${jumpLost}` : 'closed during login';
        noteDropped(connectionName(user, opts.host, port), reason);
        fail(
          new WorkError(
            jumpLost
              ? `${where}: the jump host ${jump?.name} dropped during login: ${jumpLost}`
              : `${where}: the server closed the connection during login`,
          ),
        );
      });
      client.connect(config);
      // Nagle plus delayed ACKs add ~40 ms to every small exec round trip (lab notes: 52 ms -> 10 ms).
      if (!sock) client.setNoDelay(true);
    });
  } catch (err) {
    await jump?.close();
    proxy?.stop();
    throw err;
  }
  const hostKey = verifier.accepted;
  if (!hostKey) throw new WorkError(`${where}: connected without a host key check`); // ssh2 always verifies
  return new SshExecutor(client, where, hostKey, {
    name: connectionName(user, opts.host, port),
    channelTimeoutMs: opts.channelTimeoutMs ?? CHANNEL_TIMEOUT_MS,
    fileOpTimeoutMs: opts.fileOpTimeoutMs ?? FILE_OP_TIMEOUT_MS,
    ...(jump ? { jump } : {}),
    ...(proxy ? { proxy } : {}),
  });
}

/** "deploy@vps.example:22", as messages about the connection name it. */
function connectionName(user: string, host: string, port: number): string {
  // An IPv6 address in brackets, so the port stays readable: root@[::1]:22.
  return `${user}@${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * A private key file's bytes, through the bounded reader: a FIFO or a device given as a key is refused
 * (exit 2) before it is opened. Other errors (ENOENT, EACCES) are the fs error, for the caller to word.
 */
export async function readIdentityFile(file: string): Promise<Buffer> {
  const { data } = await readBounded(file, {
    what: 'the identity file',
    kind: 'identity',
    hint: 'give the path of a private key file, e.g. ~/.ssh/id_ed25519',
  });
  return data;
}

interface AuthConfig {
  config: Pick<ConnectConfig, 'authHandler'>;
  /** For the authentication-failure message: what was offered, never a secret. */
  tried: string;
}

async function loadAuth(opts: SshOptions, where: string): Promise<AuthConfig> {
  const agent =
    opts.agent === false
      ? undefined
      : (opts.agent ?? (opts.identity ? undefined : process.env.SSH_AUTH_SOCK));
  const tried: string[] = [];
  const username = opts.user ?? process.env.USER ?? 'root';
  // One connection, several publickey attempts, as ssh does: the agent's keys, then the files in order.
  const methods: NonNullable<ConnectConfig['authHandler']> & unknown[] = [];
  if (agent) {
    methods.push({ type: 'agent', username, agent });
    tried.push(`the agent at ${agent}`);
  }
  if (opts.identity) {
    let key: Buffer;
    try {
      key = await readIdentityFile(opts.identity);
    } catch (err) {
      if (err instanceof InputError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new InputError(
        `${where}: cannot read the identity file ${opts.identity} (${code})`,
        'give the path of a readable private key, e.g. ~/.ssh/id_ed25519',
      );
    }
    // Parsed here, not inside ssh2's connect, to report a bad key as the operator's input.
    const parsed = (await loadSsh2()).utils.parseKey(key, opts.passphrase);
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
    methods.push({
      type: 'publickey',
      username,
      key,
      ...(opts.passphrase !== undefined ? { passphrase: opts.passphrase } : {}),
    });
    tried.push(`the key ${opts.identity}`);
  }
  for (const k of opts.keys ?? []) {
    methods.push({
      type: 'publickey',
      username,
      key: k.key,
      ...(k.passphrase !== undefined ? { passphrase: k.passphrase } : {}),
    });
    tried.push(`the key ${k.label}`);
  }
  if (!tried.length) {
    throw new InputError(
      `${where}: no SSH credentials: no identity file given and SSH_AUTH_SOCK is not set`,
      opts.noCredentialsHint ?? 'give an identity file or start ssh-agent and add your key (ssh-add)',
    );
  }
  return { config: { authHandler: methods }, tried: tried.join(', ') };
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

/**
 * The remote line of an abortable command (a `docker events` stream). It must end when we stop it, and when
 * the connection ends, whatever sshd does with signals: OpenSSH refuses the signal request of a forced-command
 * session (session.c `session_signal_req`), and a dropped link sends none. So a small POSIX shell, the
 * session's leader for as long as the command runs, holds the channel's stdin open and, once it reads EOF
 * there (our `end()` on abort, or sshd closing the session), sends SIGTERM to its whole process group (the
 * session's: the command and whatever it started). The command itself reads nothing (its stdin is
 * /dev/null); its exit status is the shell's. The shell ignores SIGTERM from its first word (the command and
 * the reader put the default back before they run, so neither inherits it): it stays the group's leader
 * until the command is gone, so a command that ignores SIGTERM is still reached by the SIGKILL that follows,
 * however early the stop comes.
 */
export function supervisedCommandLine(cmd: Pick<Command, 'argv' | 'env'>): string {
  const script =
    'trap "" TERM; exec 3<&0; (trap - TERM; exec "$@") </dev/null & p=$!; ' +
    '{ trap - TERM; read -r _ <&3; kill 0; } 2>/dev/null & r=$!; wait "$p"; s=$?; kill "$r" 2>/dev/null; exit "$s"';
  return `exec sh -c ${shellQuote(script)} sh ${remoteCommandLine(cmd)}`;
}

/** ssh2 internals used to signal a channel whose stdin is already closed (Channel.signal refuses then). */
interface SignalableChannel {
  outgoing: { id: number; state: string };
}
interface ClientInternals {
  _protocol?: { signal(channelId: number, signal: string): void };
}

interface Limits {
  /** user@host:port, for "the SSH connection to ... dropped". */
  name: string;
  channelTimeoutMs: number;
  fileOpTimeoutMs: number;
  /** The jump host's connection this one runs through; closed with it. */
  jump?: SshExecutor;
  /** The ProxyCommand this one runs through; stopped when the connection ends. */
  proxy?: ProxyProcess;
}

/**
 * Waits for one ssh2 request. ssh2 answers nothing once the connection is dead, so each wait ends at
 * the first of: the answer, its deadline, the connection dropping, or an interrupt (see run-context.ts).
 */
type Request = <T>(
  what: string,
  deadlineMs: number,
  start: (cb: (err: Error | undefined | null, value?: T) => void) => void,
  /** Gets what arrives after the wait was given up (a channel opened late), to close it. */
  late?: (value: T) => void,
) => Promise<T>;

interface Collecting {
  result: Promise<CommandResult>;
  begin: () => void;
}

/** A wait for the server that ran out: a WorkError naming the request. */
export class SshWaitError extends WorkError {}

export class SshExecutor implements Executor {
  readonly files: FileOps;
  private closed = false;
  private closing = false;
  private lost: Error | undefined;
  private readonly down = new Set<(reason: string) => void>();
  private readonly unregister: () => void;
  private readonly limits: Limits;
  /** The connection to the jump host (ProxyJump), if this one runs through it. */
  readonly jump: SshExecutor | undefined;
  private readonly proxy: ProxyProcess | undefined;

  constructor(
    private readonly client: Client,
    readonly where: string,
    readonly hostKey: HostKeyInfo,
    limits: Partial<Limits> = {},
  ) {
    this.limits = {
      name: limits.name ?? where.replace(/^ssh /, ''),
      channelTimeoutMs: limits.channelTimeoutMs ?? CHANNEL_TIMEOUT_MS,
      fileOpTimeoutMs: limits.fileOpTimeoutMs ?? FILE_OP_TIMEOUT_MS,
    };
    this.jump = limits.jump;
    this.proxy = limits.proxy;
    this.files = new SftpFiles(client, where, () => !this.closed, this.request, this.limits);
    // After login, errors surface through the channels; this keeps a late one from crashing the process.
    client.on('error', (err: Error) => {
      this.lost = err;
    });
    client.on('close', () => {
      this.closed = true;
      this.proxy?.stop();
      if (this.closing) return;
      const jumpLost = this.jump?.lostReason;
      const reason = jumpLost
        ? `the jump host ${this.jump?.name} dropped: ${jumpLost}`
        : (this.lost?.message ?? 'the server closed it');
      this.lost ??= new Error(reason);
      // The jump connection is of no use without this one.
      if (this.jump) void this.jump.close();
      noteDropped(this.limits.name, reason);
      for (const fn of [...this.down]) fn(reason);
    });
    // After an interrupt, the clean-up closes the connection, after the host lock is released.
    this.unregister = runContext.onCleanup({ what: 'closing the SSH connection', run: () => this.close() });
  }

  /** user@host:port of this connection. */
  get name(): string {
    return this.limits.name;
  }

  /** Why the connection dropped, once it has (undefined while up or after close()). */
  get lostReason(): string | undefined {
    if (!this.closed || this.closing) return undefined;
    return this.lost?.message ?? 'the server closed it';
  }

  /**
   * A direct-tcpip channel from the server to host:port (what ssh -J opens on the jump host), as a
   * stream for the next ssh2 Client's `sock`. Bounded by the channel deadline.
   */
  async forwardOut(host: string, port: number): Promise<Duplex> {
    try {
      return await this.request<ClientChannel>(
        `opening a tunnel to ${host}:${port}`,
        this.limits.channelTimeoutMs,
        (cb) => this.client.forwardOut('127.0.0.1', 0, host, port, cb),
        (late) => late.close(),
      );
    } catch (err) {
      if (err instanceof WorkError || err instanceof InterruptedError) throw err;
      throw new WorkError(
        `${this.where}: the jump host cannot reach ${host}:${port}: ${(err as Error).message}`,
        'check the target host and port as the jump host sees them, and that its sshd allows TCP forwarding (AllowTcpForwarding)',
      );
    }
  }

  private droppedError(reason: string, during?: string): WorkError {
    return new WorkError(
      `${droppedPrefix(this.limits.name)}${during ? ` while ${during}` : ''}: ${reason}`,
      RERUN_HINT,
    );
  }

  /** Calls `fn` when the connection drops; returns the unsubscribe. */
  private onDown(fn: (reason: string) => void): () => void {
    this.down.add(fn);
    return () => this.down.delete(fn);
  }

  private readonly request: Request = (what, deadlineMs, start, late) =>
    new Promise((resolve, reject) => {
      if (runContext.stopped()) return reject(new InterruptedError(runContext.interrupted ?? 'SIGINT'));
      if (this.closing) return reject(new WorkError(`${this.where}: the connection is closed (${what})`));
      if (this.closed) return reject(this.droppedError(this.lost?.message ?? 'the server closed it', what));
      let settled = false;
      let offDown = () => {};
      let offStop = () => {};
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        offDown();
        offStop();
      };
      const fail = (err: Error) => {
        if (settled) return;
        finish();
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new SshWaitError(
              `${this.where}: no answer to ${what} within ${formatSeconds(deadlineMs)}`,
              'the server or the network stopped answering; check them, then re-run: the steps are safe to repeat',
            ),
          ),
        deadlineMs,
      );
      offDown = this.onDown((reason) => fail(this.droppedError(reason, what)));
      offStop = runContext.onStop(() => fail(new InterruptedError(runContext.interrupted ?? 'SIGINT')));
      try {
        start((err, value) => {
          if (settled) {
            if (!err && value !== undefined) late?.(value);
            return;
          }
          finish();
          if (err) reject(err);
          else resolve(value as never);
        });
      } catch (err) {
        // ssh2 throws synchronously when the socket is already gone.
        fail(this.droppedError((err as Error).message, what));
      }
    });

  async run(cmd: Command): Promise<CommandResult> {
    const program = cmd.argv[0];
    if (program === undefined) throw new Error('empty command');
    if (cmd.signal?.aborted) return abortedBeforeStart();
    // An abortable command holds its channel's stdin open as its stop line, so it takes no input.
    if (cmd.signal && cmd.input !== undefined) throw new Error('an abortable command takes no stdin');
    const line = cmd.signal ? supervisedCommandLine(cmd) : remoteCommandLine(cmd);
    let collecting: Collecting | undefined;
    // Decided now, in the caller's scope: ssh2 calls back from its socket, outside any clean-up scope.
    const onStop = runContext.stopHook();
    try {
      await this.request<ClientChannel>(
        `opening a channel for ${program}`,
        this.limits.channelTimeoutMs,
        (cb) =>
          this.client.exec(line, (err, stream) => {
            // Listeners go on at once: a fast command's output, exit and close can arrive in the same
            // packet batch as the channel confirmation, before any promise continuation runs.
            if (!err) collecting = this.collect(stream, cmd, program, onStop);
            cb(err, stream);
          }),
        (late) => {
          collecting?.result.catch(() => {});
          late.close();
        },
      );
    } catch (err) {
      if (err instanceof WorkError || err instanceof InterruptedError) throw err;
      throw new WorkError(
        `${this.where}: cannot start ${program}: ${(err as Error).message}`,
        'the connection may have dropped, or sshd refused another session (MaxSessions)',
      );
    }
    if (!collecting) throw new Error('ssh2 opened a channel without a stream');
    collecting.begin();
    return collecting.result;
  }

  /** Listens to the channel now; `begin` sends stdin and starts the deadline. */
  private collect(
    stream: ClientChannel,
    cmd: Command,
    program: string,
    onStop: ReturnType<typeof runContext.stopHook>,
  ): Collecting {
    let begin = () => {};
    const result = new Promise<CommandResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      // Decoders so a multi-byte character split across packets reaches onOutput whole.
      const outText = new StringDecoder('utf8');
      const errText = new StringDecoder('utf8');
      let exitCode: number | undefined;
      let timedOut = false;
      let aborted = false;
      let settled = false;
      let deadline: NodeJS.Timeout | undefined;
      let grace: NodeJS.Timeout | undefined;
      let offDown = () => {};
      let offStop = () => {};
      let offAbort = () => {};

      const finish = () => {
        if (settled) return false;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(grace);
        offDown();
        offStop();
        offAbort();
        return true;
      };
      const fail = (e: Error) => {
        if (finish()) reject(e);
      };
      const settle = () => {
        if (exitCode === undefined && !timedOut && !aborted && this.closed) {
          return fail(this.droppedError(this.lost?.message ?? 'the server closed it', `running ${program}`));
        }
        if (!finish()) return;
        resolve({
          // No status at all: killed at the deadline (SIGKILL) or aborted (SIGTERM), else 255 as ssh
          // reports a broken session.
          exitCode:
            exitCode ??
            (timedOut
              ? 128 + osConstants.signals.SIGKILL
              : aborted
                ? 128 + osConstants.signals.SIGTERM
                : 255),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          timedOut,
        });
      };
      offDown = this.onDown((reason) => fail(this.droppedError(reason, `running ${program}`)));
      // An interrupt kills the remote command (its whole process group) and stops waiting for it.
      offStop = onStop(() => {
        if (cmd.signal) stream.end();
        this.kill(stream);
        fail(new InterruptedError(runContext.interrupted ?? 'SIGINT'));
      });
      // An abort ends the channel's stdin (the supervising shell then kills the command) and sends the
      // remote process group SIGTERM; its exit closes the channel and the command resolves with what came.
      // One that outlives the grace gets SIGKILL, then, as at a deadline, the channel is closed after a
      // moment (closing at once would lose the exit status).
      const onAbort = () => {
        if (settled || aborted) return;
        aborted = true;
        clearTimeout(deadline);
        clearTimeout(grace);
        stream.end();
        this.kill(stream, 'TERM');
        grace = setTimeout(() => {
          this.kill(stream);
          grace = setTimeout(() => {
            stream.close();
            grace = setTimeout(settle, KILL_GRACE_MS);
          }, KILL_CLOSE_MS);
        }, KILL_CLOSE_MS);
      };
      if (cmd.signal) {
        const signal = cmd.signal;
        signal.addEventListener('abort', onAbort, { once: true });
        offAbort = () => signal.removeEventListener('abort', onAbort);
        // Aborted while the channel was opening.
        if (signal.aborted) onAbort();
      }

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
        if (cmd.onOutput && !settled) {
          emit(cmd.onOutput, outText.end(), 'stdout');
          emit(cmd.onOutput, errText.end(), 'stderr');
        }
        settle();
      });
      // A command that exits without reading stdin closes the channel under our write; that is its business.
      stream.on('error', () => {});

      begin = () => {
        // A command that needs no stdin may have finished already: no deadline to start then.
        if (settled) return;
        // An abortable command's stdin is its stop line: it stays open until the abort (or the end).
        if (cmd.signal) return;
        if (cmd.timeoutMs === undefined || aborted) return void stream.end(cmd.input ?? '');
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
        stream.end(cmd.input ?? '');
      };
    });
    return { result, begin: () => begin() };
  }

  /**
   * Closing a channel does not stop the remote process (sshd leaves it running); a "signal" request
   * does: OpenSSH >= 7.9 sends it to the session's whole process group. Channel.signal() refuses once
   * stdin is closed, which it always is here, so the request goes through ssh2's protocol object.
   */
  private kill(stream: ClientChannel, signal: 'KILL' | 'TERM' = 'KILL'): void {
    const chan = stream as unknown as SignalableChannel;
    const protocol = (this.client as unknown as ClientInternals)._protocol;
    try {
      // 'eof' is the state after our stdin closed: the channel is still open for requests.
      const state = chan.outgoing?.state;
      if (protocol && (state === 'open' || state === 'eof')) protocol.signal(chan.outgoing.id, signal);
      else stream.signal(signal);
    } catch {
      // The channel is already closing; the close below ends it either way.
    }
  }

  /**
   * Ends the connection (bounded: a dead one is destroyed after 2 s). After an interrupt, only the
   * clean-up closes it, after releasing the host lock over it.
   */
  async close(): Promise<void> {
    await this.closeOwn();
    this.proxy?.stop();
    await this.jump?.close();
  }

  private closeOwn(): Promise<void> {
    if (runContext.stopped()) return Promise.resolve();
    this.unregister();
    if (this.closed) return Promise.resolve();
    this.closing = true;
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

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function emit(onOutput: NonNullable<Command['onOutput']>, text: string, stream: 'stdout' | 'stderr'): void {
  if (text) onOutput(text, stream);
}

type SftpError = Error & { code?: number | string };

/** Errors of our own waits (deadline, drop, interrupt) pass through; ssh2's are named for the file. */
function ours(err: unknown): boolean {
  return err instanceof WorkError || err instanceof InterruptedError;
}

/** FileOps over one SFTP session on the executor's connection, opened on first use. */
class SftpFiles implements FileOps {
  private session: Promise<SFTPWrapper> | undefined;

  constructor(
    private readonly client: Client,
    private readonly where: string,
    /** Whether the connection is still up: requests on a dropped one are never answered. */
    private readonly connected: () => boolean,
    private readonly request: Request,
    private readonly limits: Limits,
  ) {}

  private sftp(): Promise<SFTPWrapper> {
    if (!this.session) {
      const session = this.request<SFTPWrapper>(
        'opening the SFTP subsystem',
        this.limits.channelTimeoutMs,
        (cb) => this.client.sftp(cb),
        (late) => late.end(),
      ).then(
        (sftp) => {
          // A session that ends (server restart, channel error) is reopened on the next call.
          sftp.on('close', () => {
            if (this.session === session) this.session = undefined;
          });
          return sftp;
        },
        (err: Error) => {
          throw ours(err) ? err : this.error('cannot start SFTP', err, 'the server needs an sftp Subsystem');
        },
      );
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

  /** One SFTP request under the file-operation deadline (plus 1 s per 64 KiB of `bytes`). */
  private op<T>(
    sftp: SFTPWrapper,
    what: string,
    start: (s: SFTPWrapper, cb: (err: Error | undefined | null, value?: T) => void) => void,
    bytes = 0,
  ): Promise<T> {
    const deadline = this.limits.fileOpTimeoutMs + Math.ceil(bytes / 65_536) * 1000;
    return this.request<T>(`SFTP ${what}`, deadline, (cb) => start(sftp, cb));
  }

  /**
   * Bounded as a local read is (read-bounded.ts): the path is stat'ed and refused unless a regular file
   * within HOST_FILE_READ's limit (opening a FIFO would hold the server's sftp-server; /dev/zero never
   * ends), the open handle checked again, and reading stops past the limit (a file that grows meanwhile).
   */
  async readFile(path: string): Promise<string | undefined> {
    const sftp = await this.sftp();
    const limit = READ_LIMITS[HOST_FILE_READ.kind].bytes;
    const check = (st: SftpStats) => {
      const kind = notRegular(st);
      if (kind) throw notRegularError(path, HOST_FILE_READ.what, kind, HOST_FILE_READ.hint);
      if (st.size > limit) throw tooLargeError(path, HOST_FILE_READ, st.size);
    };
    let handle: Buffer | undefined;
    try {
      check(await this.op<SftpStats>(sftp, `stat of ${path}`, (s, cb) => s.stat(path, cb)));
      handle = await this.op<Buffer>(sftp, `open of ${path}`, (s, cb) => s.open(path, 'r', cb));
      const h = handle;
      check(await this.op<SftpStats>(sftp, `fstat of ${path}`, (s, cb) => s.fstat(h, cb)));
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const buffer = Buffer.alloc(SFTP_READ_CHUNK);
        const read = await this.op<number>(
          sftp,
          `read of ${path}`,
          (s, cb) => s.read(h, buffer, 0, buffer.length, total, (err, n) => cb(err, n)),
          buffer.length,
        );
        if (read === 0) break;
        total += read;
        if (total > limit) throw tooLargeError(path, HOST_FILE_READ, total);
        chunks.push(buffer.subarray(0, read));
      }
      return Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      if (ours(err)) throw err;
      if (err instanceof InputError) throw badHostFile(err, this.where);
      if ((err as SftpError).code === SFTP_NO_SUCH_FILE) return undefined;
      throw this.error(`cannot read ${path}`, err as Error);
    } finally {
      const h = handle;
      // Briefly, and not after an interrupt: a server that stopped answering must not hold the caller twice.
      if (h && this.connected() && !runContext.stopped()) {
        await this.request(`SFTP close of ${path}`, Math.min(2000, this.limits.fileOpTimeoutMs), (cb) =>
          sftp.close(h, cb),
        ).catch(() => {});
      }
    }
  }

  async stat(path: string): Promise<FileStat | undefined> {
    const sftp = await this.sftp();
    try {
      const s = await this.op<{ size: number; mode: number; mtime: number }>(
        sftp,
        `stat of ${path}`,
        (w, cb) => w.stat(path, cb),
      );
      return { size: s.size, mode: s.mode & 0o7777, mtimeMs: s.mtime * 1000 };
    } catch (err) {
      if (ours(err)) throw err;
      if ((err as SftpError).code === SFTP_NO_SUCH_FILE) return undefined;
      throw this.error(`cannot stat ${path}`, err as Error);
    }
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
    let handle: Buffer | undefined;
    try {
      handle = await this.op<Buffer>(sftp, `open of ${temp}`, (s, cb) => s.open(temp, 'wx', { mode }, cb));
      const h = handle;
      await this.op(sftp, `setstat of ${temp}`, (s, cb) => s.fsetstat(h, { mode }, cb));
      const data = Buffer.from(content, 'utf8');
      if (data.length) {
        await this.op(
          sftp,
          `write of ${temp}`,
          (s, cb) => s.write(h, data, 0, data.length, 0, cb),
          data.length,
        );
      }
      // fsync@openssh.com when offered: the renamed file must hold its content after a crash.
      await this.op(sftp, `fsync of ${temp}`, (s, cb) => s.ext_openssh_fsync(h, cb)).catch((err) => {
        if (ours(err)) throw err;
      });
      handle = undefined;
      await this.op(sftp, `close of ${temp}`, (s, cb) => s.close(h, cb));
      await this.op(sftp, `rename of ${temp}`, (s, cb) => s.ext_openssh_rename(temp, path, cb));
    } catch (err) {
      const h = handle;
      // Clean-up only on a live connection, not after an interrupt (the next upload removes leftovers),
      // and briefly: a server that stopped answering must not hold the caller.
      if (this.connected() && !runContext.stopped()) {
        const briefly = <T>(what: string, start: Parameters<typeof this.op<T>>[2]) =>
          this.request<T>(`SFTP ${what}`, Math.min(2000, this.limits.fileOpTimeoutMs), (cb) =>
            start(sftp, cb),
          ).catch(() => {});
        if (h) await briefly(`close of ${temp}`, (s, cb) => s.close(h, cb));
        await briefly(`removal of ${temp}`, (s, cb) => s.unlink(temp, cb));
      }
      if (ours(err)) throw err;
      const message = (err as Error).message;
      const hint = /does not support/.test(message)
        ? 'the server lacks the posix-rename@openssh.com SFTP extension (OpenSSH has it)'
        : undefined;
      throw this.error(`cannot write ${path}`, err as Error, hint);
    }
  }
}
