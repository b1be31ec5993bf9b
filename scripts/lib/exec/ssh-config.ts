/**
 * What `ssh` makes of a destination: `user@host:port` specs (`[v6]:port`, `ssh://` URIs) and the
 * operator's ~/.ssh/config (parsed by the `ssh-config` package), resolved into one target per hop.
 * Command-line flags win over the config file, as with `ssh`.
 *
 * `Include` is expanded in place (globs in the file name part; relative paths from ~/.ssh), which is
 * what ssh does except that a Host/Match block opened inside an included file stays open after it.
 * Not evaluated from the config: `Match exec` (it would run a shell command with no deadline while
 * reading a host name; every wait is bounded), `HostKeyAlias`. `ProxyCommand` is run as ssh runs
 * it (proxy-command.ts), under the connection's deadline.
 */
import { readdir } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { InputError } from '../core/errors.ts';
import { readBoundedText } from '../core/read-bounded.ts';

export interface HostSpec {
  user?: string;
  host: string;
  port?: number;
}

/** Why OpenSSH's `StrictHostKeyChecking` values map as they do: see `hostKeyPolicy`. */
export type HostKeyPolicy = 'strict' | 'accept-new';

export interface ResolvedTarget {
  /** The host as given (an alias, or the host itself). */
  alias: string;
  /** Where to connect: the config's HostName, else the alias. */
  host: string;
  port: number;
  user: string;
  /** Identity files from --identity or IdentityFile, `~` and `%` tokens expanded. */
  identityFiles: string[];
  /** Where identityFiles came from, for messages: '--identity', the config file, or undefined. */
  identitySource?: string;
  identitiesOnly: boolean;
  knownHosts: string;
  policy: HostKeyPolicy;
  /** Set when the config asks for a mode this tool does not honour as written. */
  policyNote?: string;
  jump?: ResolvedTarget;
  /** ProxyCommand with its tokens expanded; never set together with `jump`. */
  proxyCommand?: string;
}

export interface TargetFlags {
  host: string;
  port?: string;
  user?: string;
  identity?: string;
  'known-hosts'?: string;
  'accept-new'?: boolean;
  'ssh-config'?: string;
  jump?: string;
}

/** The default identities, in the order ssh tries them (see `defaultIdentityFiles`). */
export const DEFAULT_IDENTITY_NAMES = ['id_rsa', 'id_ecdsa', 'id_ed25519'] as const;

const MAX_HOPS = 8;

function bad(spec: string, what: string, problem: string, parsed: string): InputError {
  return new InputError(
    `${what} "${spec}": ${problem} (read as ${parsed})`,
    'give HOST, USER@HOST, HOST:PORT, USER@HOST:PORT, [IPv6]:PORT or an alias from ~/.ssh/config',
  );
}

function parsePort(value: string, onError: (problem: string) => InputError): number {
  if (value === '') throw onError('the port after ":" is empty');
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw onError(`the port "${value}" is not a TCP port (1-65535)`);
  }
  return Number(value);
}

/**
 * `[user@]host[:port]`, `[user@][v6addr]:port`, a bare IPv6 address, or `ssh://[user@]host[:port]`.
 * The user is everything before the last `@`, as ssh reads it.
 */
export function parseHostSpec(spec: string, what = '--host'): HostSpec {
  let rest = spec.trim();
  if (/^ssh:\/\//i.test(rest)) rest = rest.slice(6).replace(/\/$/, '');
  const describe = (user: string | undefined, host: string, port: string | undefined) =>
    [user !== undefined ? `user "${user}"` : '', `host "${host}"`, port !== undefined ? `port "${port}"` : '']
      .filter(Boolean)
      .join(', ');
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  let host = rest;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0)
      throw bad(spec, what, 'no "]" closes the bracketed address', describe(user, rest, undefined));
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) {
        throw bad(spec, what, `"${after}" after "]" is not ":PORT"`, describe(user, host, undefined));
      }
      portText = after.slice(1);
    }
  } else if (rest.split(':').length === 2) {
    [host, portText] = rest.split(':') as [string, string];
  }
  // More than one ':' without brackets: a bare IPv6 address, no port (as ssh reads it).
  const fail = (problem: string) => bad(spec, what, problem, describe(user, host, portText));
  if (user === '') throw fail('the user before "@" is empty');
  if (host === '') throw fail('the host is empty');
  if (/\s/.test(host) || (user !== undefined && /\s/.test(user))) throw fail('it contains white space');
  // ssh refuses these too: a host starting with "-" would be read as an option by any tool it reaches.
  if (host.startsWith('-')) throw fail('the host starts with "-"');
  const result: HostSpec = { host };
  if (user !== undefined) result.user = user;
  if (portText !== undefined) result.port = parsePort(portText, fail);
  return result;
}

type Computed = Record<string, string | string[]>;

export interface SshConfigFile {
  /** The file read, or undefined when the default one does not exist. */
  path: string | undefined;
  compute(host: string, user?: string): Computed;
}

/** The config at `explicit` (must exist) or ~/.ssh/config (may be missing). */
export async function loadSshConfig(explicit: string | undefined, home: string): Promise<SshConfigFile> {
  const path = explicit ?? join(home, '.ssh', 'config');
  let text: string;
  try {
    text = await readBoundedText(path, {
      what: 'the ssh config',
      kind: 'sshConfig',
      hint: 'point --ssh-config at an ssh_config file',
    });
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && explicit === undefined) return { path: undefined, compute: () => ({}) };
    throw new InputError(
      `cannot read the ssh config ${path} (${code ?? (err as Error).message})`,
      explicit === undefined
        ? 'make ~/.ssh/config readable, or point --ssh-config at another file'
        : 'give --ssh-config the path of a readable ssh_config file',
    );
  }
  const { parse } = (await import('ssh-config')).default;
  const expanded = await expandIncludes(text, path, home, 0);
  let config: ReturnType<typeof parse>;
  try {
    config = parse(expanded);
  } catch (err) {
    throw malformed(path, (err as Error).message);
  }
  return {
    path,
    compute(host, user) {
      // Match exec off: see the file comment.
      const computed = config.compute(user === undefined ? { Host: host } : { Host: host, User: user }, {
        ignoreCase: true,
        matchExec: false,
      });
      for (const [key, value] of Object.entries(computed)) {
        const values = Array.isArray(value) ? value : [value];
        if (!/^[a-z0-9]+$/.test(key) || values.some((v) => v === '')) {
          throw malformed(path, `cannot read the directive "${key.split('\n')[0]}"`);
        }
      }
      return computed;
    },
  };
}

const MAX_INCLUDE_DEPTH = 16;

/** The text with each `Include` line replaced by the files it names, in order (ssh_config(5) Include). */
async function expandIncludes(text: string, file: string, home: string, depth: number): Promise<string> {
  if (depth > MAX_INCLUDE_DEPTH) throw malformed(file, `Include nested more than ${MAX_INCLUDE_DEPTH} deep`);
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const include = /^\s*include(?:\s+|\s*=\s*)(.+?)\s*$/i.exec(line);
    if (!include) {
      out.push(line);
      continue;
    }
    for (const pattern of (include[1] as string).split(/\s+/).map((p) => p.replace(/^"(.*)"$/, '$1'))) {
      let path = pattern.startsWith('~/') ? join(home, pattern.slice(2)) : pattern;
      if (!isAbsolute(path)) path = join(home, '.ssh', path);
      for (const match of await globFiles(path)) {
        let included: string;
        try {
          included = await readBoundedText(match, {
            what: `the ssh config Include (in ${file})`,
            kind: 'sshConfig',
            hint: 'make it name ssh_config files, or remove the Include',
          });
        } catch (err) {
          if (err instanceof InputError) throw err;
          const code = (err as NodeJS.ErrnoException).code;
          // ssh skips an Include that matches nothing; one it cannot read is an error.
          if (code === 'ENOENT') continue;
          throw new InputError(
            `cannot read ${match}, included by ${file} (${code ?? (err as Error).message})`,
            'make it readable or remove the Include',
          );
        }
        out.push(await expandIncludes(included, match, home, depth + 1));
      }
    }
  }
  return out.join('\n');
}

/** Files matching `*` and `?` in the last path component, sorted as ssh's glob(3) returns them. */
async function globFiles(path: string): Promise<string[]> {
  const name = basename(path);
  if (!/[*?[]/.test(name)) return [path];
  const dir = dirname(path);
  const re = new RegExp(
    `^${name
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => re.test(n) && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n));
}

function malformed(path: string, why: string): InputError {
  return new InputError(
    `the ssh config ${path} is malformed: ${why}`,
    'fix the file (`ssh -G HOST` shows how ssh reads it), or point --ssh-config at another file',
  );
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function list(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

export interface TokenContext {
  home: string;
  localUser: string;
  host: string;
  port: number;
  user: string;
  alias: string;
}

/**
 * `~` and the `%` tokens ssh expands in IdentityFile and UserKnownHostsFile (ssh_config(5) TOKENS):
 * %% %d %h %p %r %u %n %l %L %i. Relative paths are taken from ~/.ssh, as ssh does for IdentityFile.
 */
export function expandPath(value: string, ctx: TokenContext, directive: string, source: string): string {
  let text = value;
  if (text === '~' || text.startsWith('~/')) text = ctx.home + text.slice(1);
  else if (text.startsWith('~')) {
    throw new InputError(
      `${source}: ${directive} ${value}: "~user" paths are not supported`,
      'write the path out in full',
    );
  }
  const local = hostname();
  const tokens: Record<string, string> = {
    '%': '%',
    d: ctx.home,
    h: ctx.host,
    p: String(ctx.port),
    r: ctx.user,
    u: ctx.localUser,
    n: ctx.alias,
    l: local,
    L: local.split('.')[0] ?? local,
    i: String(process.getuid?.() ?? ''),
  };
  text = text.replace(/%(.?)/g, (whole, token: string) => {
    const replacement = tokens[token];
    if (replacement === undefined) {
      throw new InputError(
        `${source}: ${directive} ${value}: the token "${whole}" is not supported here`,
        'use %d %h %p %r %u %n %l %L %i or %%, or write the path out',
      );
    }
    return replacement;
  });
  return isAbsolute(text) ? text : join(ctx.home, '.ssh', text);
}

/**
 * ProxyCommand's tokens as ssh expands them: %%, %h (the HostName), %n (the name given), %p, %r
 * (ssh_config(5) TOKENS: "ProxyCommand and ProxyJump accept the tokens %%, %h, %n, %p, and %r"), and
 * %k, which expand_proxy_command also expands (the HostKeyAlias, which this tool does not read, else
 * the name given) (openssh/openssh-portable@V_9_2_P1:ssh_config.5, sshconnect.c). Any other token is
 * refused, as ssh's percent_expand refuses it.
 */
export function expandProxyCommand(value: string, ctx: TokenContext, source: string): string {
  const tokens: Record<string, string> = {
    '%': '%',
    h: ctx.host,
    n: ctx.alias,
    k: ctx.alias,
    p: String(ctx.port),
    r: ctx.user,
  };
  return value.replace(/%(.?)/g, (whole, token: string) => {
    const replacement = tokens[token];
    if (replacement === undefined) {
      throw new InputError(
        `${source}: ProxyCommand ${value}: the token "${whole}" is not one ssh expands there`,
        'use %h %n %p %r %k or %% (ssh_config(5) TOKENS), or write the value out',
      );
    }
    return replacement;
  });
}

/**
 * StrictHostKeyChecking, for an operator who is about to send production secrets over the connection:
 * - unset, `yes`, `ask`: an unknown host key is refused (there is no prompt here; the error names the
 *   fingerprint and the --accept-new flag);
 * - `accept-new`: an unknown key is recorded (like --accept-new);
 * - `no`/`off`: ssh would connect even to a CHANGED key, which is how secrets reach an impostor. This
 *   tool never does that: it is treated as accept-new, and a note says so. A changed key is always
 *   refused, whatever the config or flags say.
 */
export function hostKeyPolicy(
  value: string | undefined,
  acceptNewFlag: boolean | undefined,
  source: string,
): { policy: HostKeyPolicy; note?: string } {
  if (acceptNewFlag) return { policy: 'accept-new' };
  const v = value?.toLowerCase();
  if (v === undefined || v === 'yes' || v === 'ask') return { policy: 'strict' };
  if (v === 'accept-new') return { policy: 'accept-new' };
  if (v === 'no' || v === 'off') {
    return {
      policy: 'accept-new',
      note:
        `${source}: StrictHostKeyChecking ${value} is taken as accept-new: an unknown host key is recorded, ` +
        'a changed one is still refused',
    };
  }
  throw new InputError(
    `${source}: StrictHostKeyChecking "${value}" is not one of yes, accept-new, no, off, ask`,
    'fix the ssh config',
  );
}

interface Env {
  home: string;
  localUser: string;
}

export function localEnv(env: NodeJS.ProcessEnv = process.env): Env {
  let localUser = env.USER;
  if (!localUser) {
    try {
      localUser = userInfo().username;
    } catch {
      localUser = 'root';
    }
  }
  return { home: env.HOME || userInfo().homedir, localUser };
}

/** Overrides that apply to every hop (--known-hosts, --accept-new) or to the target only. */
interface HopFlags {
  port?: number;
  user?: string;
  identity?: string;
  knownHosts?: string;
  acceptNew?: boolean;
}

function resolveHop(
  spec: string,
  what: string,
  config: SshConfigFile,
  env: Env,
  flags: HopFlags,
  jumpOverride: string | undefined,
  depth: number,
): ResolvedTarget {
  if (depth > MAX_HOPS) {
    throw new InputError(
      `more than ${MAX_HOPS} ProxyJump hops reaching ${spec}`,
      'check the ssh config for a ProxyJump loop',
    );
  }
  const parsed = parseHostSpec(spec, what);
  const source = config.path ?? 'ssh config';
  const c = config.compute(parsed.host, parsed.user ?? flags.user);
  const host = first(c.hostname) ?? parsed.host;
  const configPort = first(c.port);
  let port = parsed.port ?? flags.port;
  if (port === undefined && configPort !== undefined) {
    port = parsePort(
      configPort,
      (p) => new InputError(`${source}: Port of ${parsed.host}: ${p}`, 'fix the ssh config'),
    );
  }
  port ??= 22;
  const user = flags.user ?? parsed.user ?? first(c.user) ?? env.localUser;
  const ctx: TokenContext = {
    home: env.home,
    localUser: env.localUser,
    host,
    port,
    user,
    alias: parsed.host,
  };

  let identityFiles: string[] = [];
  let identitySource: string | undefined;
  if (flags.identity !== undefined) {
    identityFiles = [flags.identity];
    identitySource = '--identity';
  } else {
    const files = list(c.identityfile).filter((f) => f.toLowerCase() !== 'none');
    identityFiles = files.map((f) => expandPath(f, ctx, 'IdentityFile', source));
    if (identityFiles.length) identitySource = source;
  }
  const identitiesOnly = first(c.identitiesonly)?.toLowerCase() === 'yes';

  let knownHosts = flags.knownHosts;
  if (knownHosts === undefined) {
    const configured = list(c.userknownhostsfile)[0];
    knownHosts =
      configured === undefined || configured.toLowerCase() === 'none'
        ? join(env.home, '.ssh', 'known_hosts')
        : expandPath(configured, ctx, 'UserKnownHostsFile', source);
  }
  const { policy, note } = hostKeyPolicy(first(c.stricthostkeychecking), flags.acceptNew, source);

  const target: ResolvedTarget = {
    alias: parsed.host,
    host,
    port,
    user,
    identityFiles,
    identitiesOnly,
    knownHosts,
    policy,
  };
  if (identitySource) target.identitySource = identitySource;
  if (note) target.policyNote = note;

  let jumpValue = jumpOverride ?? first(c.proxyjump);
  const proxyCommand = first(c.proxycommand);
  // ssh -J overrides ProxyCommand (ssh.c sets it to "none"); in the config, whichever of ProxyJump and
  // ProxyCommand comes first wins, `none` included (readconf.c oProxyCommand and parse_jump); the
  // computed config keeps the order in which directives were first obtained.
  if (jumpOverride === undefined && proxyCommand !== undefined) {
    const keys = Object.keys(c);
    if (jumpValue === undefined || keys.indexOf('proxycommand') < keys.indexOf('proxyjump')) {
      jumpValue = undefined;
      if (proxyCommand.toLowerCase() !== 'none') {
        // Such a command hands back a connected socket (sendmsg) rather than carrying the bytes.
        if (first(c.proxyusefdpass)?.toLowerCase() === 'yes') {
          throw new InputError(
            `${source}: ProxyUseFdpass yes (for ${parsed.host}) is not supported: its ProxyCommand passes a socket back`,
            'set ProxyUseFdpass no for this host, with a ProxyCommand that carries the connection on its stdin and stdout',
          );
        }
        target.proxyCommand = expandProxyCommand(proxyCommand, ctx, source);
      }
    }
  }
  if (jumpValue !== undefined && jumpValue.toLowerCase() !== 'none') {
    const hops = jumpValue.split(',').map((h) => h.trim());
    if (hops.some((h) => h === '')) {
      throw new InputError(`ProxyJump "${jumpValue}" has an empty hop`, 'list hops as HOST1,HOST2');
    }
    // ssh -J a,b: a is reached first, b through a, the target through b.
    const last = hops.at(-1) as string;
    const rest = hops.slice(0, -1);
    const jumpWhat = jumpOverride !== undefined && depth === 0 ? '--jump' : `ProxyJump of ${parsed.host}`;
    target.jump = resolveHop(
      last,
      jumpWhat,
      config,
      env,
      { knownHosts: flags.knownHosts, acceptNew: flags.acceptNew },
      rest.length ? rest.join(',') : undefined,
      depth + 1,
    );
  }
  return target;
}

/** The target of --host with its flags, config and ProxyJump chain resolved. */
export async function resolveTarget(flags: TargetFlags, env = localEnv()): Promise<ResolvedTarget> {
  const spec = parseHostSpec(flags.host);
  let port: number | undefined;
  if (flags.port !== undefined) {
    port = parsePort(
      flags.port,
      (p) => new InputError(`--port "${flags.port}": ${p}`, 'give a port from 1 to 65535'),
    );
    if (spec.port !== undefined && spec.port !== port) {
      throw new InputError(
        `--host "${flags.host}" names port ${spec.port} but --port says ${port}`,
        'give the port once: in --host or with --port',
      );
    }
  }
  if (flags.user !== undefined && spec.user !== undefined && spec.user !== flags.user) {
    throw new InputError(
      `--host "${flags.host}" names user "${spec.user}" but --user says "${flags.user}"`,
      'give the user once: in --host or with --user',
    );
  }
  if (flags.user === '') throw new InputError('--user is empty', 'give a user name');
  const config = await loadSshConfig(flags['ssh-config'], env.home);
  const hop: HopFlags = {};
  if (port !== undefined) hop.port = port;
  if (flags.user !== undefined) hop.user = flags.user;
  if (flags.identity !== undefined) hop.identity = flags.identity;
  if (flags['known-hosts'] !== undefined) hop.knownHosts = flags['known-hosts'];
  if (flags['accept-new']) hop.acceptNew = true;
  if (flags.jump !== undefined && flags.jump.trim() === '') {
    throw new InputError('--jump is empty', 'give the jump host as [USER@]HOST[:PORT]');
  }
  return resolveHop(flags.host, '--host', config, env, hop, flags.jump, 0);
}

/**
 * The identities ssh tries when none is configured, in its order: OpenSSH readconf.c
 * fill_default_options() adds id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, id_xmss and
 * (only when built WITH_DSA, removed in OpenSSH 10.0) id_dsa. ssh2 cannot use the security-key (_sk)
 * and XMSS ones, so they are left out.
 */
export function defaultIdentityFiles(home: string): string[] {
  return DEFAULT_IDENTITY_NAMES.map((name) => join(home, '.ssh', name));
}
