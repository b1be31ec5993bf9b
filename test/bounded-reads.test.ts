/**
 * Every local configuration file is refused unless it is a regular file, before it is opened: a FIFO
 * given as --identity, --known-hosts, --ssh-config, an Include, --kubeconfig or KUBECONFIG ends the
 * command at once with exit 2 naming it (no writer ever opens the FIFO, so an open would block for
 * good, and a blocked open is out of reach of SIGINT and SIGTERM); `Include /dev/zero` is refused
 * rather than read forever. Each run only ends because nothing blocked: the test awaits its exit under
 * runScript's own timeout, and nothing times it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, WorkError } from '../scripts/lib/core/errors.ts';
import { appendKnownHostsLine } from '../scripts/lib/exec/known-hosts.ts';
import { localFiles } from '../scripts/lib/exec/local.ts';
import { findToken } from '../scripts/lib/runtime/openbao-setup.ts';
import { sampleSecrets } from '../scripts/lib/sandbox/sample-secrets.ts';
import { loadAgeIdentities } from '../scripts/lib/secrets/sops/age-keys.ts';
import { creationRuleFor } from '../scripts/lib/secrets/sops-config.ts';
import { type BifrostTestHost, startBifrostTestHost } from './harness/bifrost-host.ts';
import { findSshd, sshCliArgs } from './harness/sshd.ts';
import { kubectlEnv, makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

function fifo(dir: string, name: string): string {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  return path;
}

/** A HOME with ~/.ssh, a usable key and an empty known_hosts; nothing listens on the port given. */
function sshHome() {
  const home = tempDir('sf-reads-');
  const ssh = join(home, '.ssh');
  mkdirSync(ssh, { mode: 0o700 });
  const key = join(ssh, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', key], { stdio: 'pipe' });
  const knownHosts = join(ssh, 'known_hosts');
  writeFileSync(knownHosts, '');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, NO_COLOR: '1' };
  return { home, ssh, key, knownHosts, env };
}

/** bifrost-bootstrap --dry-run against a port nothing listens on: every refusal here comes before connecting. */
function bootstrap(args: string[], env: Record<string, string>) {
  return runScript('bifrost-bootstrap.ts', ['--dir', '/srv/bifrost', '--dry-run', ...args], env);
}

describe('a local SSH configuration file that is not a regular file is refused before it is opened', () => {
  it.each([
    ['--identity', 'the identity file'],
    ['--known-hosts', 'the known_hosts file'],
    ['--ssh-config', 'the ssh config'],
  ])('%s naming a FIFO: exit 2 naming it', async (flag, what) => {
    const h = sshHome();
    const pipe = fifo(h.home, 'pipe');
    const flags: Record<string, string> = { '--identity': h.key, '--known-hosts': h.knownHosts };
    flags[flag] = pipe;
    const r = await bootstrap(['--host', 'sftest@127.0.0.1:1', ...Object.entries(flags).flat()], h.env);
    expect(r.stderr).toContain(`error: ${what} ${pipe} is a FIFO, not a regular file`);
    expect(r.stderr).toMatch(/^hint: /m);
    expect(r.exitCode, r.stderr).toBe(2);
    // Refused before any connection was tried (nothing listens on port 1: that would be a refusal).
    expect(r.stderr).not.toMatch(/connection refused/);
  });

  it('an IdentityFile of the ssh config naming a FIFO: exit 2, never skipped', async () => {
    const h = sshHome();
    const pipe = fifo(h.home, 'key-pipe');
    writeFileSync(
      join(h.ssh, 'config'),
      `Host box\n  HostName 127.0.0.1\n  Port 1\n  IdentityFile ${pipe}\n`,
    );
    const r = await bootstrap(['--host', 'box'], h.env);
    expect(r.stderr).toContain(`error: the identity file ${pipe} is a FIFO, not a regular file`);
    expect(r.exitCode, r.stderr).toBe(2);
  });

  it.each([
    ['a FIFO', 'FIFO', (dir: string) => fifo(dir, 'included')],
    ['/dev/zero', 'character device', () => '/dev/zero'],
    [
      'a directory, through a glob',
      'directory',
      (dir: string) => {
        mkdirSync(join(dir, 'conf.d', 'sub.conf'), { recursive: true });
        return join(dir, 'conf.d', '*.conf');
      },
    ],
  ])('an Include of %s: exit 2 naming it and the file that includes it', async (_name, kind, make) => {
    const h = sshHome();
    const pattern = make(h.home);
    const config = join(h.ssh, 'config');
    writeFileSync(config, `Include ${pattern}\nHost box\n  HostName 127.0.0.1\n`);
    const r = await bootstrap(['--host', 'box', '--port', '1'], h.env);
    const named = pattern.replace('*.conf', 'sub.conf');
    expect(r.stderr).toContain(
      `error: the ssh config Include (in ${config}) ${named} is a ${kind}, not a regular file`,
    );
    expect(r.exitCode, r.stderr).toBe(2);
  });

  it('a known_hosts file over its limit (64 MiB) is refused unread, naming the limit', async () => {
    const h = sshHome();
    // Sparse: no disk is used for it.
    execFileSync('truncate', ['-s', `${64 * 1024 * 1024 + 1}`, h.knownHosts]);
    const r = await bootstrap(
      ['--host', 'sftest@127.0.0.1:1', '--identity', h.key, '--known-hosts', h.knownHosts],
      h.env,
    );
    expect(r.stderr).toContain(
      `error: the known_hosts file ${h.knownHosts} is 67108865 bytes, larger than a known_hosts file may be here (limit: 67108864 bytes, 64 MiB)`,
    );
    expect(r.exitCode, r.stderr).toBe(2);
  });
});

describe('the apps table', () => {
  it('--apps naming a FIFO: exit 2 naming it', async () => {
    const dir = tempDir('sf-apps-');
    const pipe = fifo(dir, 'apps.yaml');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, NO_COLOR: '1' };
    const r = await runScript('runtime.ts', ['setup', '--apps', pipe, '--dry-run'], env);
    expect(r.stderr).toContain(`error: the apps table ${pipe} is a FIFO, not a regular file`);
    expect(r.exitCode, r.stderr).toBe(2);
  });
});

describe('the library paths the commands above go through', () => {
  it('appending to a known_hosts that is a FIFO is refused, nothing written to it', async () => {
    const dir = tempDir('sf-kh-');
    const pipe = fifo(dir, 'known_hosts');
    await expect(appendKnownHostsLine(pipe, '[h]:2222 ssh-ed25519 AAAA')).rejects.toThrow(
      `the known_hosts file ${pipe} is a FIFO, not a regular file`,
    );
  });

  it('~/.vault-token that is a FIFO is refused (exit 2), not opened', () => {
    const home = tempDir('sf-vault-');
    const pipe = fifo(home, '.vault-token');
    expect(() => findToken({ HOME: home })).toThrow(`the token file ${pipe} is a FIFO, not a regular file`);
  });

  it("the local executor's host files: a FIFO or /dev/zero is bad host state (WorkError), never opened", async () => {
    const dir = tempDir('sf-local-host-');
    const record = join(dir, '.deployed.json');
    symlinkSync('/dev/zero', record);
    const pipe = fifo(dir, '.secrets.env');
    for (const [path, kind] of [
      [record, 'a character device'],
      [pipe, 'a FIFO'],
    ] as const) {
      const err = await localFiles.readFile(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkError);
      expect((err as Error).message).toBe(`the host's file ${path} is ${kind}, not a regular file`);
    }
  });
});

describe('the SOPS side: an age keys file and .sops.yaml are read within their limits', () => {
  const MiB = 1024 * 1024;

  it('an age keys file over 1 MiB is a named problem, not read', async () => {
    const dir = tempDir('sf-age-');
    const file = join(dir, 'keys.txt');
    execFileSync('truncate', ['-s', `${MiB + 1}`, file]);
    const found = await loadAgeIdentities({ SOPS_AGE_KEY_FILE: file, HOME: dir, XDG_CONFIG_HOME: dir });
    expect(found.identities).toEqual([]);
    expect(found.problems).toContain(
      `${file} is ${MiB + 1} bytes, larger than an age keys file may be here (limit: ${MiB} bytes, 1 MiB)`,
    );
  });

  it('a .sops.yaml over 1 MiB is refused (exit 2), naming it', () => {
    const dir = tempDir('sf-sops-config-');
    const config = join(dir, '.sops.yaml');
    execFileSync('truncate', ['-s', `${MiB + 1}`, config]);
    let error: unknown;
    try {
      creationRuleFor('secrets.sops.yaml', dir);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toBe(
      `${config} is ${MiB + 1} bytes, larger than a .sops.yaml may be here (limit: ${MiB} bytes, 1 MiB)`,
    );
  });
});

describe('a kubeconfig that is not a regular file is refused before kubectl starts', () => {
  it.each([
    ['--kubeconfig', 'the kubeconfig (--kubeconfig)'],
    ['KUBECONFIG', 'the kubeconfig (KUBECONFIG)'],
  ])('%s naming a FIFO: exit 2 naming it, kubectl never run', async (how, what) => {
    const f = await makeBootstrapFixture();
    const dir = tempDir('sf-kube-');
    const pipe = fifo(dir, 'kubeconfig');
    const other = join(dir, 'other');
    writeFileSync(other, 'current-context: lab\n');
    const log = join(f.dir, 'kubectl-log');
    const env = {
      ...kubectlEnv(f, resolve(PROJECT_ROOT, 'scripts/lib/sandbox/fake-kubectl')),
      FAKE_KUBECTL_LOG: log,
    } as Record<string, string>;
    const args = ['--secrets-file', f.secretsFile];
    if (how === '--kubeconfig') args.push('--kubeconfig', pipe);
    // A list: the FIFO after a good file is still refused.
    else env.KUBECONFIG = `${other}:${pipe}`;
    const r = await runScript('create-bootstrap-secrets.ts', args, env);
    expect(r.stderr).toContain(`error: ${what} ${pipe} is a FIFO, not a regular file`);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(existsSync(log)).toBe(false);
  });
});

const sshd = findSshd('bounded reads of host files over a loopback sshd');

describe.skipIf(!sshd)(
  'a host file that is not a regular file, or too large, is refused unread (exit 1)',
  () => {
    let host: BifrostTestHost;
    beforeAll(async () => {
      host = await startBifrostTestHost(sshd as string, { prefix: 'sf-host-reads-' });
      // Enough of a bundle directory for verify to look further; never provisioned.
      mkdirSync(host.remoteDir);
      writeFileSync(join(host.remoteDir, 'docker-compose.yml'), 'services: {}\n');
    }, 30_000);
    afterAll(async () => {
      await host?.stop();
    });

    const verify = () =>
      runScript(
        'bifrost.ts',
        [
          'verify',
          ...sshCliArgs(host.server),
          '--remote-dir',
          host.remoteDir,
          '--bundle',
          host.bundle,
          '--from-env',
        ],
        {
          PATH: process.env.PATH ?? '',
          HOME: host.home,
          TMPDIR: host.tmp,
          NO_COLOR: '1',
          ...sampleSecrets(),
        } as Record<string, string>,
      );

    it('.deployed.json linked to /dev/zero: bifrost verify names it and ends', async () => {
      const record = join(host.remoteDir, '.deployed.json');
      symlinkSync('/dev/zero', record);
      try {
        const r = await verify();
        expect(r.stderr).toContain(`the host's file ${record} is a character device, not a regular file`);
        expect(r.stderr).toMatch(/^hint: check the host/m);
        expect(r.exitCode, r.stderr).toBe(1);
      } finally {
        rmSync(record);
      }
    }, 30_000);

    it('a .secrets.env over the 16 MiB limit: named with the limit, never read', async () => {
      const file = join(host.remoteDir, '.secrets.env');
      // Sparse: the size is on record, no disk is used.
      execFileSync('truncate', ['-s', `${16 * 1024 * 1024 + 1}`, file]);
      try {
        const r = await verify();
        expect(r.stderr).toContain(
          `the host's file ${file} is 16777217 bytes, larger than a file read from the host may be here (limit: 16777216 bytes, 16 MiB)`,
        );
        expect(r.exitCode, r.stderr).toBe(1);
      } finally {
        rmSync(file);
      }
    }, 30_000);
  },
);
