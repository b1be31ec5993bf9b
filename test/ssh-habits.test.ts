/**
 * OpenSSH habits, through a real entry point (bifrost-bootstrap --dry-run reads the bundle
 * over SFTP) against loopback sshds: ~/.ssh/config aliases, flags over the config, user@host:port,
 * ssh's default identities, an encrypted one without a terminal, ProxyJump/--jump through a second
 * sshd, a changed jump host key, StrictHostKeyChecking no, and the exit-2 message for a bad host spec.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WorkError } from '../scripts/lib/core/errors.ts';
import { beginRun } from '../scripts/lib/core/run-context.ts';
import { fingerprint } from '../scripts/lib/exec/known-hosts.ts';
import { connectSsh, type SshOptions } from '../scripts/lib/exec/ssh.ts';
import { type DropProxy, startDropProxy } from './harness/drop-proxy.ts';
import { findSshd, type SshdServer, startSshd } from './harness/sshd.ts';
import { bifrostSecrets, makeBundle } from './helpers/bifrost-fixture.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { scriptArgv } from './helpers/script-bundles.ts';

const SCRIPT = 'bifrost-bootstrap.ts';
const temps: string[] = [];

function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** A HOME with an empty ~/.ssh; the env has no SSH_AUTH_SOCK (runScript passes exactly this env). */
function freshHome(): { home: string; ssh: string; env: Record<string, string> } {
  const home = temp('sf-home-');
  const ssh = join(home, '.ssh');
  mkdirSync(ssh, { mode: 0o700 });
  return { home, ssh, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, NO_COLOR: '1' } };
}

function keygen(file: string, type: 'ed25519' | 'ecdsa', passphrase = ''): void {
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', 'test', '-f', file], {
    stdio: 'pipe',
  });
}

afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe('--host spec errors (exit 2, naming what was parsed)', () => {
  it.each([
    [
      'sftest@127.0.0.1:',
      [],
      'the port after ":" is empty (read as user "sftest", host "127.0.0.1", port "")',
    ],
    [
      'h:99999',
      [],
      '--host "h:99999": the port "99999" is not a TCP port (1-65535) (read as host "h", port "99999")',
    ],
    ['h:2222', ['--port', '22'], '--host "h:2222" names port 2222 but --port says 22'],
  ])('--host %s %j', async (spec, extra, message) => {
    const { env } = freshHome();
    const r = await runScript(SCRIPT, ['--host', spec, ...extra, '--dir', '/srv/bifrost', '--dry-run'], env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toMatch(/hint: /);
  });
});

const sshd = findSshd('ssh habits over loopback sshd');

describe.skipIf(!sshd)('OpenSSH habits against loopback sshds', () => {
  let target: SshdServer;
  let jump: SshdServer;
  let bundle: string;
  beforeAll(async () => {
    [target, jump] = await Promise.all([
      startSshd(sshd as string),
      // DEBUG1 logs each direct-tcpip channel: the proof that a connection went through the jump host.
      startSshd(sshd as string, { logLevel: 'DEBUG1' }),
    ]);
    const b = makeBundle(bifrostSecrets({ NB_BIFROST_SETUP_KEY: undefined }));
    if (process.getuid?.() === 0) {
      execFileSync('chown', ['-R', target.user, dirname(b.dir)]);
      chmodSync(dirname(b.dir), 0o700);
    }
    bundle = b.dir;
  });
  afterAll(async () => {
    await Promise.all([target?.stop(), jump?.stop()]);
  });

  const run = (args: string[], env: Record<string, string>) =>
    runScript(SCRIPT, [...args, '--dir', bundle, '--dry-run'], env);
  const onTarget = () => `on ssh ${target.user}@127.0.0.1:${target.port}`;
  const bothKnown = () =>
    `${readFileSync(target.knownHosts, 'utf8')}${readFileSync(jump.knownHosts, 'utf8')}`;

  it('a Host alias from ~/.ssh/config: HostName, Port, User, IdentityFile, UserKnownHostsFile with tokens', async () => {
    const { ssh, env } = freshHome();
    writeFileSync(
      join(ssh, 'config'),
      `Host bifrost-test
  HostName 127.0.0.1
  Port ${target.port}
  User ${target.user}
  IdentityFile ${target.identity}
  IdentitiesOnly yes
  UserKnownHostsFile ~/.ssh/kh_%h_%p
`,
    );
    copyFileSync(target.knownHosts, join(ssh, `kh_127.0.0.1_${target.port}`));
    const r = await run(['--host', 'bifrost-test'], env);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(onTarget());
  });

  it('flags override the config file', async () => {
    const { ssh, env } = freshHome();
    writeFileSync(
      join(ssh, 'config'),
      `Host bifrost-test\n  HostName 127.0.0.1\n  Port 1\n  User nobody\n  IdentityFile ~/.ssh/absent\n`,
    );
    const flags = ['--port', String(target.port), '--user', target.user, '--identity', target.identity];
    const ok = await run(['--host', 'bifrost-test', ...flags, '--known-hosts', target.knownHosts], env);
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toContain(onTarget());
    // The same alias without the flags follows the config, and fails.
    const fromConfig = await run(['--host', 'bifrost-test', '--known-hosts', target.knownHosts], env);
    expect(fromConfig.exitCode).toBe(2);
    expect(fromConfig.stderr).toContain('ssh nobody@127.0.0.1:1: no SSH credentials');
    expect(fromConfig.stderr).toContain(
      `skipping the identity ${join(ssh, 'absent')}: cannot read it (ENOENT)`,
    );
  });

  it('user@host:port with a default identity (~/.ssh/id_ed25519), no --identity and no agent', async () => {
    const { ssh, env } = freshHome();
    // id_rsa comes first in ssh's order; this one is not authorized, so the second key must be offered
    // in the same run.
    keygen(join(ssh, 'id_rsa'), 'ed25519');
    copyFileSync(target.identity, join(ssh, 'id_ed25519'));
    chmodSync(join(ssh, 'id_ed25519'), 0o600);
    copyFileSync(target.knownHosts, join(ssh, 'known_hosts'));
    const r = await run(['--host', `${target.user}@127.0.0.1:${target.port}`], env);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(onTarget());
  });

  it('skips an encrypted default identity without a terminal, with a note', async () => {
    const { ssh, env } = freshHome();
    keygen(join(ssh, 'id_ecdsa'), 'ecdsa', 'canary-passphrase-4711');
    copyFileSync(target.knownHosts, join(ssh, 'known_hosts'));
    const r = await run(['--host', `${target.user}@127.0.0.1:${target.port}`], env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(
      `skipping the identity ${join(ssh, 'id_ecdsa')}: it is encrypted and there is no terminal to ask for its passphrase`,
    );
    expect(r.stderr).toContain('no SSH credentials');
    expect(r.stderr).toContain(join(ssh, 'id_ed25519'));
    // With a usable key next to it, the run goes on, and the note still says what was skipped.
    copyFileSync(target.identity, join(ssh, 'id_ed25519'));
    const ok = await run(['--host', `${target.user}@127.0.0.1:${target.port}`], env);
    expect(ok.exitCode).toBe(0);
    expect(ok.stderr).toMatch(/note: skipping the identity .*id_ecdsa: it is encrypted/);
  });

  /**
   * The dry run against the target on a terminal (script(1)); `keys` is typed once the passphrase prompt
   * shows, as a person would (typed earlier, the terminal itself would echo it before echo is turned off).
   */
  async function atPassphrasePrompt(env: NodeJS.ProcessEnv, keys: string) {
    const cli = [
      process.execPath,
      ...scriptArgv(SCRIPT, 'tsx'),
      '--host',
      `${target.user}@127.0.0.1:${target.port}`,
      '--dir',
      bundle,
      '--dry-run',
    ].join(' ');
    const child = execa('script', ['-qec', cli, '/dev/null'], {
      env,
      extendEnv: false,
      cwd: PROJECT_ROOT,
      stdin: 'pipe',
      reject: false,
      timeout: 60_000,
    });
    let out = '';
    let typed = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!typed && out.includes('Enter passphrase')) {
        typed = true;
        child.stdin?.write(keys);
      }
    });
    const r = await child;
    return { out, exitCode: r.exitCode, timedOut: r.timedOut };
  }

  it('asks for the passphrase of an encrypted default identity on a terminal, without echoing it', async () => {
    const { ssh, env } = freshHome();
    const passphrase = 'canary-passphrase-0815';
    keygen(join(ssh, 'id_ed25519'), 'ed25519', passphrase);
    const authorized = readFileSync(target.authorizedKeys, 'utf8');
    writeFileSync(target.authorizedKeys, `${authorized}${readFileSync(join(ssh, 'id_ed25519.pub'), 'utf8')}`);
    copyFileSync(target.knownHosts, join(ssh, 'known_hosts'));
    try {
      const r = await atPassphrasePrompt(env, `${passphrase}\r`);
      expect(r.out).toContain(`Enter passphrase for key '${join(ssh, 'id_ed25519')}':`);
      expect(r.out).toContain(onTarget());
      expect(r.out).not.toContain(passphrase);
      expect(r.exitCode).toBe(0);
    } finally {
      writeFileSync(target.authorizedKeys, authorized);
    }
  });

  it('Ctrl-C at the passphrase prompt interrupts the command (exit 130), and nothing was typed', async () => {
    const { ssh, env } = freshHome();
    keygen(join(ssh, 'id_ed25519'), 'ed25519', 'canary-passphrase-4711');
    copyFileSync(target.knownHosts, join(ssh, 'known_hosts'));
    const r = await atPassphrasePrompt(env, '\x03');
    // A prompt that swallowed Ctrl-C would sit paused until the 60 s bound kills it.
    expect(r.timedOut).toBe(false);
    expect(r.out).toMatch(/interrupted by SIGINT during connecting/);
    expect(r.out).not.toMatch(/no correct passphrase|no SSH credentials/);
    expect(r.exitCode).toBe(130);
  });

  /** ~/.ssh/config with the jump host as an alias, and the target behind it. */
  function jumpHome(): ReturnType<typeof freshHome> {
    const h = freshHome();
    writeFileSync(
      join(h.ssh, 'config'),
      `Host jumpbox
  HostName 127.0.0.1
  Port ${jump.port}
  User ${jump.user}
  IdentityFile ${jump.identity}

Host behind
  HostName 127.0.0.1
  Port ${target.port}
  User ${target.user}
  IdentityFile ${target.identity}
  ProxyJump jumpbox
`,
    );
    writeFileSync(join(h.ssh, 'known_hosts'), bothKnown());
    return h;
  }
  /** How many direct-tcpip channels to the target the jump sshd opened (its DEBUG1 log, CRLF lines). */
  const forwarded = (log: string) =>
    (
      log.match(
        new RegExp(`server_request_direct_tcpip: [^\\n]* target 127\\.0\\.0\\.1 port ${target.port}\\b`, 'g'),
      ) ?? []
    ).length;
  /** sshd's log reaches the test through a pipe: wait (bounded) for the line to arrive. */
  const expectForwards = (count: number) =>
    vi.waitFor(() => expect(forwarded(jump.log), jump.log.slice(-2000)).toBe(count), { timeout: 5000 });

  it('ProxyJump: reaches the target through the jump sshd (its log shows the forward)', async () => {
    const { env } = jumpHome();
    const before = forwarded(jump.log);
    const r = await run(['--host', 'behind'], env);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`${onTarget()} via ${jump.user}@127.0.0.1:${jump.port}`);
    await expectForwards(before + 1);
  });

  it('--jump HOST, as ssh -J, with the target given by flags', async () => {
    const { ssh, env } = jumpHome();
    const before = forwarded(jump.log);
    const r = await run(
      [
        '--host',
        `127.0.0.1:${target.port}`,
        '--user',
        target.user,
        '--identity',
        target.identity,
        '--known-hosts',
        join(ssh, 'known_hosts'),
        '--jump',
        'jumpbox',
      ],
      env,
    );
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`${onTarget()} via ${jump.user}@127.0.0.1:${jump.port}`);
    await expectForwards(before + 1);
  });

  it('refuses a jump host whose key changed, even with --accept-new, and opens no forward', async () => {
    const { ssh, env } = jumpHome();
    const other = join(temp('sf-key-'), 'k');
    keygen(other, 'ed25519');
    const [type, key] = readFileSync(`${other}.pub`, 'utf8').split(' ');
    writeFileSync(
      join(ssh, 'known_hosts'),
      `${readFileSync(target.knownHosts, 'utf8')}[127.0.0.1]:${jump.port} ${type} ${key}\n`,
    );
    const before = forwarded(jump.log);
    for (const extra of [[], ['--accept-new']]) {
      const r = await run(['--host', 'behind', ...extra], env);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain(
        `ssh ${jump.user}@127.0.0.1:${jump.port}: HOST KEY CHANGED for [127.0.0.1]:${jump.port}`,
      );
      expect(r.stdout).not.toContain('on ssh');
    }
    expect(forwarded(jump.log)).toBe(before);
  });

  it('refuses an unknown jump host key without --accept-new, leaving known_hosts as it was; records it with --accept-new', async () => {
    const { ssh, env } = jumpHome();
    const kh = join(ssh, 'known_hosts');
    // The target is known; the jump host is not. The target's own policy (accept-new, as its Host block
    // says) is the target's: ssh applies a hop's config to that hop alone.
    writeFileSync(kh, readFileSync(target.knownHosts));
    writeFileSync(
      join(ssh, 'config'),
      readFileSync(join(ssh, 'config'), 'utf8').replace(
        '  ProxyJump jumpbox\n',
        '  ProxyJump jumpbox\n  StrictHostKeyChecking accept-new\n',
      ),
    );
    const before = readFileSync(kh);
    const forwards = forwarded(jump.log);
    const [type, key] = jump.hostKeyPub.split(' ');
    const jumpName = `[127.0.0.1]:${jump.port}`;
    const refused = await run(['--host', 'behind'], env);
    expect(refused.exitCode, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(
      `ssh ${jump.user}@127.0.0.1:${jump.port}: unknown host: ${jumpName} offers ${type} key ${fingerprint(key ?? '')}, which is not in ${kh}`,
    );
    expect(refused.stderr).toMatch(/hint: .*re-run with --accept-new to record it/);
    expect(refused.stdout).not.toContain('on ssh');
    expect(readFileSync(kh).equals(before)).toBe(true);
    expect(forwarded(jump.log)).toBe(forwards);

    const accepted = await run(['--host', 'behind', '--accept-new'], env);
    expect(accepted.exitCode, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain(`${onTarget()} via ${jump.user}@127.0.0.1:${jump.port}`);
    // Appended to what was there, as ssh records it.
    expect(readFileSync(kh, 'utf8')).toBe(`${before.toString('utf8')}${jumpName} ${type} ${key}\n`);
    await expectForwards(forwards + 1);
  });

  it('StrictHostKeyChecking no is taken as accept-new: an unknown key is recorded, a changed one refused', async () => {
    const { ssh, env } = freshHome();
    const kh = join(ssh, 'known_hosts');
    writeFileSync(
      join(ssh, 'config'),
      `Host lax\n  HostName 127.0.0.1\n  Port ${target.port}\n  User ${target.user}\n  IdentityFile ${target.identity}\n  StrictHostKeyChecking no\n`,
    );
    const first = await run(['--host', 'lax'], env);
    expect(first.exitCode).toBe(0);
    expect(first.stderr).toMatch(/StrictHostKeyChecking no is taken as accept-new/);
    expect(readFileSync(kh, 'utf8')).toContain(target.hostKeyPub.split(' ')[1]);
    const other = join(temp('sf-key-'), 'k');
    keygen(other, 'ed25519');
    const [type, key] = readFileSync(`${other}.pub`, 'utf8').split(' ');
    writeFileSync(kh, `[127.0.0.1]:${target.port} ${type} ${key}\n`);
    const changed = await run(['--host', 'lax'], env);
    expect(changed.exitCode).toBe(2);
    expect(changed.stderr).toContain('HOST KEY CHANGED');
  });

  it('a malformed ~/.ssh/config is an exit-2 error naming the file', async () => {
    const { ssh, env } = freshHome();
    writeFileSync(join(ssh, 'config'), 'Host broken\n  Port\n');
    const r = await run(['--host', 'broken'], env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`the ssh config ${join(ssh, 'config')} is malformed`);
  });
});

describe.skipIf(!sshd)('connectSsh through a jump host (library)', () => {
  let target: SshdServer;
  let jump: SshdServer;
  let proxy: DropProxy;
  let knownHosts: string;
  beforeAll(async () => {
    [target, jump] = await Promise.all([startSshd(sshd as string), startSshd(sshd as string)]);
    // The jump connection runs through a proxy the test can cut.
    proxy = await startDropProxy(jump.port);
    const [type, key] = jump.hostKeyPub.split(' ');
    knownHosts = join(temp('sf-kh-'), 'known_hosts');
    writeFileSync(
      knownHosts,
      `${readFileSync(target.knownHosts, 'utf8')}[127.0.0.1]:${proxy.port} ${type} ${key}\n`,
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([target?.stop(), jump?.stop()]);
  });

  const options = (): SshOptions => ({
    host: '127.0.0.1',
    port: target.port,
    user: target.user,
    identity: target.identity,
    knownHosts,
    jump: { host: '127.0.0.1', port: proxy.port, user: jump.user, identity: jump.identity, knownHosts },
  });

  it('runs commands on the target, names the jump in `where`, and close() ends both connections', async () => {
    const ssh = await connectSsh(options());
    expect(ssh.where).toBe(
      `ssh ${target.user}@127.0.0.1:${target.port} via ${jump.user}@127.0.0.1:${proxy.port}`,
    );
    // The command runs on the target: its sshd's port is in SSH_CONNECTION.
    const r = await ssh.run({ argv: ['sh', '-c', 'echo $SSH_CONNECTION'] });
    expect(r.stdout.trim().split(' ')[3]).toBe(String(target.port));
    await ssh.close();
    await expect(ssh.jump?.run({ argv: ['true'] })).rejects.toThrow(/the connection is closed/);
  });

  it('reports a dropped jump connection as such', async () => {
    beginRun();
    const ssh = await connectSsh(options());
    try {
      expect((await ssh.run({ argv: ['echo', 'up'] })).stdout).toBe('up\n');
      proxy.drop();
      const err = await ssh.run({ argv: ['sleep', '5'] }).then(
        () => new Error('expected a failure'),
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(WorkError);
      expect(err.message).toContain(`the jump host ${jump.user}@127.0.0.1:${proxy.port} dropped`);
    } finally {
      await ssh.close();
      beginRun();
    }
  });
});
