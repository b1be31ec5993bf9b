/**
 * The --host spec parser and the ~/.ssh/config resolution: what ssh accepts, flags over the
 * config, tokens, ProxyJump chains, StrictHostKeyChecking, and the exit-2 messages for bad input.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../scripts/lib/core/errors.ts';
import { SSH_OPTIONS, SSH_OPTIONS_HELP } from '../../scripts/lib/exec/ssh-cli.ts';
import {
  defaultIdentityFiles,
  hostKeyPolicy,
  parseHostSpec,
  resolveTarget,
} from '../../scripts/lib/exec/ssh-config.ts';
import { tempDir } from '../helpers/temp.ts';

const home = tempDir('sf-sshcfg-');
mkdirSync(join(home, '.ssh'));
const env = { home, localUser: 'me' };
afterAll(() => rmSync(home, { recursive: true, force: true }));

function writeConfig(text: string): void {
  writeFileSync(join(home, '.ssh', 'config'), text);
}

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

async function rejected(p: Promise<unknown>): Promise<InputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

describe('parseHostSpec', () => {
  it.each([
    ['h', { host: 'h' }],
    ['root@h', { user: 'root', host: 'h' }],
    ['h:2222', { host: 'h', port: 2222 }],
    ['root@h:2222', { user: 'root', host: 'h', port: 2222 }],
    ['me@corp@h', { user: 'me@corp', host: 'h' }],
    ['[::1]:22', { host: '::1', port: 22 }],
    ['u@[fe80::1]', { user: 'u', host: 'fe80::1' }],
    ['::1', { host: '::1' }],
    ['ssh://deploy@vps.example:2200', { user: 'deploy', host: 'vps.example', port: 2200 }],
  ])('%s', (spec, expected) => {
    expect(parseHostSpec(spec)).toEqual(expected);
  });

  it.each([
    ['h:', /the port after ":" is empty \(read as host "h", port ""\)/],
    ['h:0', /the port "0" is not a TCP port/],
    [
      'root@h:99999',
      /"root@h:99999": the port "99999" is not a TCP port \(1-65535\) \(read as user "root", host "h", port "99999"\)/,
    ],
    ['h:ssh', /the port "ssh" is not a TCP port/],
    ['@h', /the user before "@" is empty/],
    ['root@', /the host is empty/],
    ['[::1', /no "]" closes/],
    ['[::1]22', /"22" after "]" is not ":PORT"/],
    ['-oProxyCommand=x', /starts with "-"/],
  ])('refuses %s naming what was parsed', (spec, message) => {
    const err = inputError(() => parseHostSpec(spec));
    expect(err.message).toMatch(message);
    expect(err.hint).toMatch(/USER@HOST:PORT/);
  });
});

describe('resolveTarget', () => {
  it('without a config file: the spec, the local user, port 22, ~/.ssh/known_hosts, strict', async () => {
    rmSync(join(home, '.ssh', 'config'), { force: true });
    const t = await resolveTarget({ host: 'vps.example' }, env);
    expect(t).toMatchObject({
      host: 'vps.example',
      port: 22,
      user: 'me',
      identityFiles: [],
      knownHosts: join(home, '.ssh', 'known_hosts'),
      policy: 'strict',
    });
    expect(t.jump).toBeUndefined();
  });

  it('an alias: HostName, Port, User, IdentityFile with ~ and tokens, UserKnownHostsFile, IdentitiesOnly', async () => {
    writeConfig(`Host bifrost
  HostName 203.0.113.7
  Port 2222
  User deploy
  IdentityFile ~/.ssh/id_%h_%r
  IdentityFile keys/%n-%p
  IdentitiesOnly yes
  UserKnownHostsFile %d/kh/%u_%%
Host *
  User fallback
  Port 9
`);
    const t = await resolveTarget({ host: 'bifrost' }, env);
    expect(t).toMatchObject({
      alias: 'bifrost',
      host: '203.0.113.7',
      port: 2222,
      user: 'deploy',
      identityFiles: [join(home, '.ssh/id_203.0.113.7_deploy'), join(home, '.ssh/keys/bifrost-2222')],
      identitiesOnly: true,
      knownHosts: join(home, 'kh/me_%'),
    });
  });

  it('flags and the spec win over the config file', async () => {
    writeConfig('Host bifrost\n  HostName 203.0.113.7\n  Port 2222\n  User deploy\n  IdentityFile ~/k\n');
    const t = await resolveTarget(
      {
        host: 'bifrost',
        port: '22',
        user: 'root',
        identity: '/x/key',
        'known-hosts': '/x/kh',
        'accept-new': true,
      },
      env,
    );
    expect(t).toMatchObject({
      host: '203.0.113.7',
      port: 22,
      user: 'root',
      identityFiles: ['/x/key'],
      identitySource: '--identity',
      knownHosts: '/x/kh',
      policy: 'accept-new',
    });
    const spec = await resolveTarget({ host: 'ops@bifrost:2200' }, env);
    expect(spec).toMatchObject({ host: '203.0.113.7', port: 2200, user: 'ops' });
  });

  it('refuses a port or user given twice with different values (exit 2), naming both', async () => {
    const port = await rejected(resolveTarget({ host: 'h:2222', port: '22' }, env));
    expect(port.message).toBe('--host "h:2222" names port 2222 but --port says 22');
    expect(port.exitCode).toBe(2);
    const user = await rejected(resolveTarget({ host: 'root@h', user: 'deploy' }, env));
    expect(user.message).toMatch(/names user "root" but --user says "deploy"/);
    expect((await resolveTarget({ host: 'h:2222', port: '2222' }, env)).port).toBe(2222);
    const bad = await rejected(resolveTarget({ host: 'h', port: '70000' }, env));
    expect(bad.message).toMatch(/--port "70000": the port "70000" is not a TCP port/);
  });

  it('ProxyJump: an alias with its own config, a chain, --jump over the config, none', async () => {
    writeConfig(`Host target
  HostName 10.0.0.5
  ProxyJump gw
Host gw
  HostName gw.example
  User jumper
  Port 2022
  IdentityFile ~/.ssh/gw_key
Host chained
  ProxyJump a@first:1022,second
Host direct
  ProxyJump none
`);
    const t = await resolveTarget({ host: 'target', 'known-hosts': '/kh' }, env);
    expect(t.host).toBe('10.0.0.5');
    expect(t.jump).toMatchObject({
      host: 'gw.example',
      user: 'jumper',
      port: 2022,
      identityFiles: [join(home, '.ssh/gw_key')],
      knownHosts: '/kh',
    });
    const c = await resolveTarget({ host: 'chained' }, env);
    expect(c.jump?.host).toBe('second');
    expect(c.jump?.jump).toMatchObject({ host: 'first', user: 'a', port: 1022 });
    expect(c.jump?.jump?.jump).toBeUndefined();
    const flag = await resolveTarget({ host: 'target', jump: 'other:2' }, env);
    expect(flag.jump).toMatchObject({ host: 'other', port: 2 });
    expect((await resolveTarget({ host: 'direct' }, env)).jump).toBeUndefined();
    const badJump = await rejected(resolveTarget({ host: 'h', jump: 'j:' }, env));
    expect(badJump.message).toMatch(/--jump "j:": the port after ":" is empty/);
  });

  it('refuses a ProxyJump loop', async () => {
    writeConfig('Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n');
    const err = await rejected(resolveTarget({ host: 'a' }, env));
    expect(err.message).toMatch(/ProxyJump hops/);
  });

  it('StrictHostKeyChecking: yes/ask/unset strict, accept-new, no/off taken as accept-new with a note', async () => {
    expect(hostKeyPolicy(undefined, false, 'f')).toEqual({ policy: 'strict' });
    expect(hostKeyPolicy('yes', undefined, 'f')).toEqual({ policy: 'strict' });
    expect(hostKeyPolicy('ask', undefined, 'f')).toEqual({ policy: 'strict' });
    expect(hostKeyPolicy('accept-new', undefined, 'f')).toEqual({ policy: 'accept-new' });
    expect(hostKeyPolicy('yes', true, 'f')).toEqual({ policy: 'accept-new' });
    for (const v of ['no', 'off', 'No']) {
      const p = hostKeyPolicy(v, false, 'f');
      expect(p.policy).toBe('accept-new');
      expect(p.note).toMatch(/taken as accept-new.*a changed one is still refused/);
    }
    expect(inputError(() => hostKeyPolicy('maybe', false, 'f')).message).toMatch(/not one of/);
    writeConfig('Host lax\n  StrictHostKeyChecking no\n');
    expect(await resolveTarget({ host: 'lax' }, env)).toMatchObject({ policy: 'accept-new' });
  });

  it('config errors exit 2: a missing --ssh-config, a bad Port, an unknown token', async () => {
    const missing = await rejected(resolveTarget({ host: 'h', 'ssh-config': join(home, 'nope') }, env));
    expect(missing.message).toMatch(/cannot read the ssh config .*nope \(ENOENT\)/);
    writeConfig('Host h\n  Port twenty\n');
    expect((await rejected(resolveTarget({ host: 'h' }, env))).message).toMatch(
      /Port of h: the port "twenty"/,
    );
    writeConfig('Host h\n  IdentityFile ~/.ssh/%Z\n');
    expect((await rejected(resolveTarget({ host: 'h' }, env))).message).toMatch(
      /the token "%Z" is not supported/,
    );
    writeConfig('Host h\n  Port\n');
    expect((await rejected(resolveTarget({ host: 'h' }, env))).message).toMatch(/is malformed/);
    // An explicit file replaces ~/.ssh/config.
    const other = join(home, 'other_config');
    writeFileSync(other, 'Host h\n  HostName elsewhere\n');
    expect((await resolveTarget({ host: 'h', 'ssh-config': other }, env)).host).toBe('elsewhere');
  });

  it('Include: files and globs (relative to ~/.ssh) expanded in place', async () => {
    mkdirSync(join(home, '.ssh', 'config.d'), { recursive: true });
    writeFileSync(
      join(home, '.ssh', 'config.d', '10-bifrost.conf'),
      'Host bifrost\n  HostName 198.51.100.1\n',
    );
    writeFileSync(join(home, '.ssh', 'config.d', '20-other.conf'), 'Host bifrost other\n  Port 2200\n');
    writeConfig('Include config.d/*.conf ~/absent.conf\nHost *\n  User everyone\n');
    expect(await resolveTarget({ host: 'bifrost' }, env)).toMatchObject({
      host: '198.51.100.1',
      port: 2200,
      user: 'everyone',
    });
  });

  it('default identities in OpenSSH order (id_rsa, id_ecdsa, id_ed25519)', () => {
    expect(defaultIdentityFiles('/h')).toEqual(['/h/.ssh/id_rsa', '/h/.ssh/id_ecdsa', '/h/.ssh/id_ed25519']);
  });

  it('the help text names every SSH option', () => {
    for (const flag of Object.keys(SSH_OPTIONS)) expect(SSH_OPTIONS_HELP).toContain(`--${flag}`);
  });
});
