/**
 * The SSH flags every host command shares (bifrost-bootstrap, provision-bifrost, the recovery
 * commands), and connecting from them the way `ssh` would: `--host` takes what ssh takes (an alias from
 * ~/.ssh/config, USER@HOST:PORT, [IPv6]:PORT), ProxyJump and --jump go through the jump host, and
 * without --identity the agent and then ssh's default identities are offered in one connection.
 * An encrypted key gets a passphrase prompt on a terminal; without one it is skipped with a note.
 */
import { statSync } from 'node:fs';
import { InputError } from '../core/errors.ts';
import { printable } from '../core/printable.ts';
import { ask } from '../core/prompt.ts';
import { type IdentityKey, loadSsh2, readIdentityFile, type SshExecutor, type SshOptions } from './ssh.ts';
import {
  defaultIdentityFiles,
  localEnv,
  type ResolvedTarget,
  resolveTarget,
  type TargetFlags,
} from './ssh-config.ts';

export const SSH_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  user: { type: 'string' },
  identity: { type: 'string' },
  'known-hosts': { type: 'string' },
  'accept-new': { type: 'boolean' },
  'ssh-config': { type: 'string' },
  jump: { type: 'string' },
} as const;

/** The SSH flags as parsed: a TargetFlags (ssh-config.ts) whose --host may still be missing. */
export type SshFlags = Partial<TargetFlags>;

/** The --help lines for SSH_OPTIONS, for every command that takes them. */
export const SSH_OPTIONS_HELP = `  --host DEST        where to connect, as ssh takes it: an alias from ~/.ssh/config (HostName, Port,
                     User, IdentityFile, IdentitiesOnly, UserKnownHostsFile, StrictHostKeyChecking,
                     ProxyJump, ProxyCommand run as ssh runs it), HOST, USER@HOST, HOST:PORT,
                     USER@HOST:PORT, [IPv6]:PORT
  --port N           SSH port (default: from --host, the ssh config, else 22)
  --user NAME        login user (default: from --host, the ssh config, else $USER)
  --identity FILE    private key (default: the agent at SSH_AUTH_SOCK, then the ssh config's
                     IdentityFile, else ~/.ssh/id_rsa, id_ecdsa, id_ed25519 as ssh tries them;
                     an encrypted key asks for its passphrase on a terminal, else is skipped)
  --known-hosts FILE known_hosts file for every hop (default: UserKnownHostsFile, else
                     ~/.ssh/known_hosts)
  --accept-new       record an unknown host key (ssh's StrictHostKeyChecking=accept-new); a changed
                     key is always refused, and StrictHostKeyChecking no is taken as accept-new
  --jump [USER@]HOST[:PORT][,...]  connect through this jump host, as ssh -J (default: ProxyJump);
                     its host key is checked the same way
  --ssh-config FILE  ssh config file to read (default ~/.ssh/config; a missing default is fine)`;

export interface ConnectIo {
  /** Where notes go (a skipped key, a config setting taken differently). Default: stderr. */
  warn?: (line: string) => void;
}

export async function connectFromFlags(
  flags: SshFlags & { host: string },
  io: ConnectIo = {},
): Promise<SshExecutor> {
  const { connectSsh } = await import('./ssh.ts');
  const warn = io.warn ?? ((line: string) => process.stderr.write(`note: ${printable(line)}\n`));
  const env = localEnv();
  const target = await resolveTarget(flags, env);
  return connectSsh(await optionsFor(target, env.home, warn));
}

/** A usable agent socket: SSH_AUTH_SOCK set and naming a socket. */
function agentSocket(): string | undefined {
  const sock = process.env.SSH_AUTH_SOCK;
  if (!sock) return undefined;
  try {
    return statSync(sock).isSocket() ? sock : undefined;
  } catch {
    return undefined;
  }
}

async function optionsFor(
  hop: ResolvedTarget,
  home: string,
  warn: (line: string) => void,
): Promise<SshOptions> {
  if (hop.policyNote) warn(hop.policyNote);
  const opts: SshOptions = {
    host: hop.host,
    port: hop.port,
    user: hop.user,
    knownHosts: hop.knownHosts,
    acceptNew: hop.policy === 'accept-new',
  };
  if (hop.jump) opts.jump = await optionsFor(hop.jump, home, warn);
  if (hop.proxyCommand !== undefined) opts.proxyCommand = hop.proxyCommand;
  const where = `ssh ${hop.user}@${hop.host.includes(':') ? `[${hop.host}]` : hop.host}:${hop.port}`;

  if (hop.identitySource === '--identity') {
    // As before: the one key given, a prompt for its passphrase on a terminal, no agent.
    const file = hop.identityFiles[0] as string;
    opts.identity = file;
    const ssh2 = await loadSsh2();
    const key = await readIdentityFile(file).catch((err: unknown) => {
      if (err instanceof InputError) throw err;
      return undefined;
    });
    const parsed = key ? ssh2.utils.parseKey(key) : undefined;
    if (parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message) && process.stdin.isTTY) {
      opts.passphrase = await ask(`Passphrase for ${file}: `, { hidden: true });
    }
    return opts;
  }

  // IdentitiesOnly: ssh would still offer the agent's copies of the configured keys; ssh2 cannot pick
  // keys out of an agent, so the agent is left out and only the files are offered.
  const agent = hop.identitiesOnly ? undefined : agentSocket();
  opts.agent = agent ?? false;
  const fromConfig = hop.identityFiles.length > 0;
  // ssh adds its defaults only when no IdentityFile is configured (readconf.c fill_default_options).
  const candidates = fromConfig ? hop.identityFiles : defaultIdentityFiles(home);
  const { keys, skipped } = await loadKeys(candidates, fromConfig, Boolean(agent), warn);
  opts.keys = keys;
  const lookedFor = fromConfig
    ? `IdentityFile ${candidates.join(', ')} from ${hop.identitySource}`
    : `the default identities ${candidates.join(', ')}`;
  opts.noCredentialsHint =
    `looked for ${lookedFor}${skipped.length ? ` (skipped: ${skipped.join('; ')})` : ''}; ` +
    'give --identity FILE, set IdentityFile in ~/.ssh/config, or start ssh-agent and add your key (ssh-add)';
  if (!keys.length && !agent) {
    throw new InputError(
      `${where}: no SSH credentials: no --identity, no usable identity file, and no agent (SSH_AUTH_SOCK)`,
      opts.noCredentialsHint,
    );
  }
  return opts;
}

/**
 * Reads each candidate key. Missing default files are skipped quietly (ssh does the same); an encrypted
 * key is decrypted with a passphrase asked on the terminal, or skipped: quietly when an agent is there
 * (it likely holds the key), with a note otherwise.
 */
async function loadKeys(
  files: string[],
  configured: boolean,
  haveAgent: boolean,
  warn: (line: string) => void,
): Promise<{ keys: IdentityKey[]; skipped: string[] }> {
  const ssh2 = await loadSsh2();
  const keys: IdentityKey[] = [];
  const skipped: string[] = [];
  const skip = (file: string, why: string, quiet = false) => {
    skipped.push(`${file}: ${why}`);
    if (!quiet) warn(`skipping the identity ${file}: ${why}`);
  };
  for (const file of files) {
    let key: Buffer;
    try {
      key = await readIdentityFile(file);
    } catch (err) {
      // Not a regular file, or too large: refused, never skipped (exit 2, naming it).
      if (err instanceof InputError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      if (code !== 'ENOENT' || configured)
        skip(file, `cannot read it (${code})`, code === 'ENOENT' && !configured);
      continue;
    }
    let parsed = ssh2.utils.parseKey(key);
    let passphrase: string | undefined;
    if (parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message)) {
      if (haveAgent) {
        skip(file, 'encrypted (the agent is used instead)', true);
        continue;
      }
      if (!process.stdin.isTTY) {
        skip(
          file,
          'it is encrypted and there is no terminal to ask for its passphrase; load it with ssh-add',
        );
        continue;
      }
      for (let attempt = 1; attempt <= 3 && parsed instanceof Error; attempt++) {
        passphrase = await ask(`Enter passphrase for key '${file}': `, { hidden: true });
        if (passphrase === '') break;
        parsed = ssh2.utils.parseKey(key, passphrase);
      }
      if (parsed instanceof Error) {
        skip(file, 'no correct passphrase given');
        continue;
      }
    }
    if (parsed instanceof Error) {
      skip(file, `not a key ssh2 can use (${parsed.message})`);
      continue;
    }
    const firstKey = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!firstKey?.isPrivateKey()) {
      skip(file, 'it holds a public key');
      continue;
    }
    keys.push(passphrase === undefined ? { label: file, key } : { label: file, key, passphrase });
  }
  return { keys, skipped };
}
