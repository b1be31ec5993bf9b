/**
 * ProxyCommand from the ssh config is run as ssh runs it ($SHELL -c "exec COMMAND", %h %p %r %n %%
 * expanded), never bypassed: the target's HostName here does not resolve, so only the proxy (a node
 * relay to the loopback sshd) can reach it. The host key is still checked against that HostName; a
 * proxy that exits at once is named with its status and its last stderr line; no proxy is left running
 * after the command; the proxy's environment holds no age key. Which of ProxyJump and ProxyCommand
 * applies follows ssh (the first one in the config; --jump over both).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { redactor } from '../scripts/lib/core/redact.ts';
import { beginRun } from '../scripts/lib/core/run-context.ts';
import { startProxyCommand } from '../scripts/lib/exec/proxy-command.ts';
import { resolveTarget } from '../scripts/lib/exec/ssh-config.ts';
import { findSshd, type SshdServer, startSshd } from './harness/sshd.ts';
import { bifrostSecrets, makeBundle } from './helpers/bifrost-fixture.ts';
import { alive } from './helpers/process.ts';
import { runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { killWatchedRuns, signalRun, startScript } from './helpers/watched-run.ts';

/**
 * Records its arguments, pid and environment names to `record`, then relays stdin/stdout to
 * 127.0.0.1:PORT. It never exits on its own (an interval keeps it alive): only a kill ends it, so a
 * proxy left behind shows.
 */
const RELAY = `
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
const [record, port, ...expanded] = process.argv.slice(2);
writeFileSync(record, JSON.stringify({ expanded, pid: process.pid, env: Object.keys(process.env) }));
const socket = connect(Number(port), '127.0.0.1');
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', () => {});
setInterval(() => {}, 1 << 30);
`;

/** Records its pid, says so on stderr, then carries nothing: a proxy that never reaches a server. */
const SILENT = `
import { writeFileSync } from 'node:fs';
writeFileSync(process.argv[2], JSON.stringify({ pid: process.pid }));
process.stderr.write('proxy: waiting\\n');
process.stdin.resume();
setInterval(() => {}, 1 << 30);
`;

const AGE_CANARY = 'AGE-SECRET-KEY-1CANARYPROXYENV0000000000000000000000000000000000000000000';

const sshd = findSshd('ProxyCommand over a loopback sshd');

describe.skipIf(!sshd)('ProxyCommand is honoured as ssh runs it', () => {
  let target: SshdServer;
  let bundle: string;
  let relay: string;
  let silent: string;
  const started: number[] = [];

  beforeAll(async () => {
    target = await startSshd(sshd as string);
    const b = makeBundle(bifrostSecrets({ NB_BIFROST_SETUP_KEY: undefined }));
    if (process.getuid?.() === 0) {
      execFileSync('chown', ['-R', target.user, dirname(b.dir)]);
      chmodSync(dirname(b.dir), 0o700);
    }
    bundle = b.dir;
    relay = join(tempDir('sf-relay-'), 'relay.mjs');
    writeFileSync(relay, RELAY);
    silent = join(dirname(relay), 'silent.mjs');
    writeFileSync(silent, SILENT);
  });
  afterAll(async () => {
    killWatchedRuns();
    // Nothing left behind even when an assertion failed.
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await target?.stop();
  });

  /** A HOME whose config reaches `viaproxy` only through `proxy`; known_hosts has the key under its HostName. */
  function proxyHome(proxy: string | ((record: string) => string)) {
    const home = tempDir('sf-proxy-home-');
    const record = join(home, 'record.json');
    const ssh = join(home, '.ssh');
    mkdirSync(ssh, { mode: 0o700 });
    const [type, key] = target.hostKeyPub.split(' ');
    writeFileSync(join(ssh, 'known_hosts'), `[bifrost.invalid]:${target.port} ${type} ${key}\n`);
    writeFileSync(
      join(ssh, 'config'),
      `Host viaproxy
  HostName bifrost.invalid
  Port ${target.port}
  User ${target.user}
  IdentityFile ${target.identity}
  ProxyCommand ${typeof proxy === 'string' ? proxy : proxy(record)}
`,
    );
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      NO_COLOR: '1',
      SHELL: '/bin/sh',
      SOPS_AGE_KEY: AGE_CANARY,
    };
    return { home, ssh, record, env };
  }

  const relayCommand = (record: string) =>
    `${process.execPath} ${relay} ${record} ${target.port} %h %p %r %n %%`;
  const run = (args: string[], env: Record<string, string>) =>
    runScript('bifrost-bootstrap.ts', [...args, '--dir', bundle, '--dry-run'], env);

  it('connects through the proxy with %h %p %r %n %% expanded, and the proxy is gone after the command', async () => {
    const h = proxyHome(relayCommand);
    const r = await run(['--host', 'viaproxy'], h.env);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`on ssh ${target.user}@bifrost.invalid:${target.port} via ProxyCommand`);
    const recorded = JSON.parse(readFileSync(h.record, 'utf8'));
    started.push(recorded.pid);
    expect(recorded.expanded).toEqual(['bifrost.invalid', String(target.port), target.user, 'viaproxy', '%']);
    // No age key in the proxy's environment (the rest of it is the operator's).
    expect(recorded.env).not.toContain('SOPS_AGE_KEY');
    expect(recorded.env).toContain('HOME');
    // The relay never ends on its own: only the command's stop ends it.
    await vi.waitFor(() => expect(alive(recorded.pid)).toBe(false), { timeout: 5000 });
  });

  it('the host key is checked against the HostName, through the proxy too', async () => {
    const h = proxyHome(relayCommand);
    // The key on record for another name only: unknown under bifrost.invalid.
    writeFileSync(join(h.ssh, 'known_hosts'), readFileSync(target.knownHosts, 'utf8'));
    const r = await run(['--host', 'viaproxy'], h.env);
    started.push(JSON.parse(readFileSync(h.record, 'utf8')).pid);
    expect(r.stderr).toContain(`unknown host: [bifrost.invalid]:${target.port} offers`);
    expect(r.exitCode).toBe(2);
  });

  it('a ProxyCommand that exits at once: exit 1 naming it, its status and its last stderr line', async () => {
    const h = proxyHome(`sh -c 'echo "proxy: no route to %h" >&2; exit 3'`);
    const r = await run(['--host', 'viaproxy'], h.env);
    expect(r.stderr).toContain('proxy: no route to bifrost.invalid\n');
    expect(r.stderr).toContain(
      `the ProxyCommand exited with status 3: proxy: no route to bifrost.invalid, before the SSH login`,
    );
    expect(r.stderr).toMatch(/^hint: run the ProxyCommand by hand/m);
    expect(r.exitCode).toBe(1);
  });

  it('SIGTERM while the proxy carries nothing: exit 143, and the proxy is ended with the command', async () => {
    const h = proxyHome((record) => `${process.execPath} ${silent} ${record}`);
    const r = startScript(
      'bifrost-bootstrap.ts',
      ['--host', 'viaproxy', '--dir', bundle, '--dry-run'],
      h.env,
    );
    // Its stderr is passed on: the line is the proof that the proxy runs and the login waits on it.
    await r.line(/^proxy: waiting$/);
    const { pid } = JSON.parse(readFileSync(h.record, 'utf8'));
    started.push(pid);
    signalRun(r, 'SIGTERM');
    const done = await r.done;
    expect(done.stderr).toMatch(/interrupted/i);
    expect(done.exitCode).toBe(143);
    await vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 5000 });
  });

  it('a token ssh does not expand in ProxyCommand is refused (exit 2), nothing run', async () => {
    const ran = join(tempDir('sf-proxy-ran-'), 'ran');
    const h = proxyHome(`touch ${ran} %C`);
    const r = await run(['--host', 'viaproxy'], h.env);
    expect(r.stderr).toContain('ProxyCommand touch');
    expect(r.stderr).toContain('the token "%C" is not one ssh expands there');
    expect(r.exitCode).toBe(2);
    expect(existsSync(ran)).toBe(false);
  });

  it('ProxyCommand before ProxyJump wins, and the reverse; --jump overrides ProxyCommand; none disables it; ProxyUseFdpass is refused', async () => {
    const h = proxyHome('nc %h %p');
    const config = join(h.ssh, 'config');
    const resolve = (host: string, jump?: string) =>
      resolveTarget(
        { host, 'ssh-config': config, ...(jump ? { jump } : {}) },
        { home: h.home, localUser: 'me' },
      );
    writeFileSync(
      config,
      `Host cmdfirst\n  ProxyCommand nc %h %p\n  ProxyJump jumper\nHost jumpfirst\n  ProxyJump jumper\n  ProxyCommand nc %h %p\nHost off\n  ProxyCommand none\n  ProxyJump jumper\nHost fdpass\n  ProxyUseFdpass yes\nHost *\n  ProxyCommand nc -x proxy %h %p\n`,
    );
    const cmdFirst = await resolve('cmdfirst');
    expect(cmdFirst.proxyCommand).toBe('nc cmdfirst 22');
    expect(cmdFirst.jump).toBeUndefined();
    const jumpFirst = await resolve('jumpfirst');
    expect(jumpFirst.jump?.host).toBe('jumper');
    expect(jumpFirst.proxyCommand).toBeUndefined();
    // The jump host itself gets the Host * ProxyCommand, as ssh -W would.
    expect(jumpFirst.jump?.proxyCommand).toBe('nc -x proxy jumper 22');
    const off = await resolve('off');
    expect(off.proxyCommand).toBeUndefined();
    expect(off.jump).toBeUndefined();
    // ssh would take a socket back from such a command: refused, never run as a relay.
    await expect(resolve('fdpass')).rejects.toThrow('ProxyUseFdpass yes (for fdpass) is not supported');
    const flag = await resolve('cmdfirst', 'other');
    expect(flag.proxyCommand).toBeUndefined();
    expect(flag.jump?.host).toBe('other');
    expect(existsSync(join(h.home, 'record.json'))).toBe(false);
  });
});

describe('the ProxyCommand process itself', () => {
  afterEach(() => void beginRun());

  it('gets no registered secret and no age key in its environment; its stderr is redacted', async () => {
    const canary = `CANARY-proxy-${Date.now().toString(36)}-value`;
    redactor.register(canary, 'NB_RELAY_SECRET');
    const stderr: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr.push(String(chunk));
      return true;
    });
    try {
      const proxy = startProxyCommand(`sh -c 'env; echo "proxy says ${canary}" >&2'`, {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        SHELL: '/bin/sh',
        KEPT: 'kept-value',
        COPY_OF_A_SECRET: canary,
        SOPS_AGE_KEY: AGE_CANARY,
      });
      let out = '';
      proxy.stream.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      // Its stdin is never written: the stream may end as a premature close, which is no matter here.
      proxy.stream.on('error', () => {});
      await Promise.all([new Promise((resolve) => proxy.stream.on('close', resolve)), proxy.ended]);
      expect(out).toContain('KEPT=kept-value');
      expect(out).not.toContain(canary);
      expect(out).not.toContain('SOPS_AGE_KEY');
      expect(stderr.join('')).toContain('proxy says [REDACTED:NB_RELAY_SECRET]');
      expect(stderr.join('')).not.toContain(canary);
    } finally {
      write.mockRestore();
    }
  });
});
