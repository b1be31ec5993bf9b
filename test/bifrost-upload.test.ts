/**
 * The bundle upload (scripts/lib/bifrost/upload.ts) and the host lock (lock.ts) against a real OpenSSH
 * sshd on 127.0.0.1 (test/harness/sshd.ts). The "remote" directories live on this machine, so the tests
 * check modes, inodes and contents with node:fs on the server side of the connection.
 */
import {
  chownSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acquireHostLock,
  breakHostLock,
  type LockHolder,
  readHostLock,
} from '../scripts/lib/bifrost/lock.ts';
import {
  type BundleFile,
  MANIFEST,
  parseManifest,
  planUpload,
  readLocalBundle,
  uploadBundle,
} from '../scripts/lib/bifrost/upload.ts';
import { WorkError } from '../scripts/lib/core/errors.ts';
import type { Command, Executor } from '../scripts/lib/exec/executor.ts';
import { connectSsh, type SshExecutor } from '../scripts/lib/exec/ssh.ts';
import { findSshd, type SshdServer, startSshd } from './harness/sshd.ts';
import { PROJECT_ROOT } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';
import { sha256, treeHashes } from './helpers/tree.ts';

const sshd = findSshd('the bundle upload tests (apt-get install openssh-server)');

// Canaries: if any of these shows up on a command line, contents leaked out of SFTP.
const CANARY_SECRET = 'CANARY-secret-9f3c1b7e0d';
const CANARY_DOTENV = 'CANARY-dotenv-51a2e8c4f6';
const CANARY_COMPOSE = 'CANARY-compose-7d0b93aa21';

/** A small bundle shaped like cloud/bifrost plus the two rendered secret files. */
function bundle(version: string, extra: BundleFile[] = []): BundleFile[] {
  return [
    { path: '.secrets.env', content: `AUTHENTIK_SECRET_KEY='${CANARY_SECRET}'\n`, mode: 0o600 },
    { path: '.env', content: `AUTHENTIK_POSTGRESQL_PASSWORD='${CANARY_DOTENV}'\n`, mode: 0o600 },
    { path: 'docker-compose.yml', content: `# ${CANARY_COMPOSE} ${version}\nservices: {}\n`, mode: 0o644 },
    { path: 'netbird/config.yaml.tmpl', content: 'relay: ${NB_RELAY_SECRET}\n', mode: 0o644 },
    { path: 'netbird/proxy.env', content: 'NB_PROXY=1\n', mode: 0o644 },
    { path: 'traefik/dynamic/services.yml', content: 'http: {}\n', mode: 0o644 },
    ...extra,
  ];
}

function hashesOf(files: BundleFile[]): Record<string, string> {
  return Object.fromEntries(files.map((f) => [f.path, sha256(f.content)]));
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Siblings of the live dir left by an upload (staging or previous trees). */
function leftovers(live: string): string[] {
  const name = live.slice(live.lastIndexOf('/') + 1);
  return readdirSync(dirname(live)).filter(
    (n) => n.startsWith(`${name}.staging-`) || n.startsWith(`${name}.prev-`),
  );
}

interface Recording {
  commands: Command[];
  writes: string[];
}

/** Delegates to `inner`, recording every command and every file write. */
function recording(inner: Executor, rec: Recording = { commands: [], writes: [] }): Executor & Recording {
  return {
    ...rec,
    where: inner.where,
    run: (cmd) => {
      rec.commands.push(cmd);
      return inner.run(cmd);
    },
    files: {
      readFile: (p) => inner.files.readFile(p),
      stat: (p) => inner.files.stat(p),
      writeFileAtomic: (p, c, m) => {
        rec.writes.push(p);
        return inner.files.writeFileAtomic(p, c, m);
      },
    },
    close: () => inner.close(),
  };
}

function uidOf(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  return { uid: Number(uid), gid: Number(gid) };
}

async function failure(p: Promise<unknown>): Promise<Error & { hint?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { hint?: string };
  }
  throw new Error('expected a failure');
}

describe.skipIf(!sshd)('bundle upload and host lock over OpenSSH sshd', () => {
  let server: SshdServer;
  let ssh: SshExecutor;
  /** Owned by the ssh login user; every test gets its own live dir inside. */
  let base: string;
  let counter = 0;
  const freshLive = () => join(base, `bifrost-${++counter}`);
  const connect = () =>
    connectSsh({
      host: server.host,
      port: server.port,
      user: server.user,
      identity: server.identity,
      knownHosts: server.knownHosts,
    });

  beforeAll(async () => {
    server = await startSshd(sshd as string);
    base = tempDir('bifrost-upload-');
    if (process.getuid?.() === 0) {
      const { uid, gid } = uidOf(server.user);
      chownSync(base, uid, gid);
    }
    ssh = await connect();
  });

  afterAll(async () => {
    await ssh?.close();
    await server?.stop();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('first deploy: every file with its mode, a private top dir, the manifest, nothing left over', async () => {
    const live = freshLive();
    const files = bundle('v1');
    const result = await uploadBundle(ssh, live, files);
    expect(result).toMatchObject({ swapped: true, unchanged: [], removed: [], remoteDir: live });
    expect(result.changed.sort()).toEqual(files.map((f) => f.path).sort());
    expect(result.bytesSent).toBe(files.reduce((n, f) => n + Buffer.byteLength(f.content), 0));

    const { [MANIFEST]: manifestHash, ...tree } = treeHashes(live);
    expect(manifestHash).toBeDefined();
    expect(tree).toEqual(hashesOf(files));
    for (const f of files) expect(modeOf(join(live, f.path)), f.path).toBe(f.mode);
    expect(modeOf(join(live, '.secrets.env'))).toBe(0o600);
    expect(modeOf(join(live, '.env'))).toBe(0o600);
    expect(modeOf(live) & 0o077).toBe(0);
    expect(modeOf(join(live, 'traefik'))).toBe(0o755);
    expect(modeOf(join(live, 'traefik/dynamic'))).toBe(0o755);

    const manifest = JSON.parse(readFileSync(join(live, MANIFEST), 'utf8'));
    expect(Object.keys(manifest.files).sort()).toEqual(files.map((f) => f.path).sort());
    expect(manifest.files['.secrets.env']).toEqual({ sha256: sha256(files[0]?.content ?? ''), mode: 0o600 });
    expect(modeOf(join(live, MANIFEST))).toBe(0o600);
    expect(leftovers(live)).toEqual([]);
  });

  it('re-run with nothing changed: nothing sent, the live dir untouched', async () => {
    const live = freshLive();
    await uploadBundle(ssh, live, bundle('v1'));
    const before = statSync(live);
    const rec = recording(ssh);
    const progress: string[] = [];
    const result = await uploadBundle(rec, live, bundle('v1'), { onProgress: (l) => progress.push(l) });
    expect(result).toMatchObject({ changed: [], removed: [], swapped: false, bytesSent: 0 });
    expect(result.unchanged).toHaveLength(6);
    expect(rec.writes).toEqual([]);
    // Only the recovery-and-listing shell ran: no mkdir, cp, mv or rm (a slow machine may add probes).
    expect(rec.commands.filter((c) => c.argv[0] !== 'true')).toHaveLength(1);
    const after = statSync(live);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect(progress.join('\n')).toMatch(/unchanged; nothing sent/);
    expect(await planUpload(ssh, live, bundle('v1'))).toEqual({
      changed: [],
      unchanged: result.unchanged,
      removed: [],
    });
  });

  it('one file changed: only it is sent; engine files survive the swap; a dropped file is deleted', async () => {
    const live = freshLive();
    await uploadBundle(ssh, live, bundle('v1'));
    // What the bootstrap engine writes on the host, including an in-place edit of an uploaded file.
    const engineEnv = `TRAEFIK_CF_TOKEN='engine-rendered'\n`;
    const state = '{"services":{}}\n';
    await ssh.run({ argv: ['mkdir', `${live}/env`] });
    await ssh.files.writeFileAtomic(`${live}/env/traefik.env`, engineEnv, 0o600);
    await ssh.files.writeFileAtomic(`${live}/.bifrost-state.json`, state, 0o600);
    const secrets = `${readFileSync(join(live, '.secrets.env'), 'utf8')}NB_IDP_MGMT_TOKEN='minted-on-host'\n`;
    await ssh.files.writeFileAtomic(`${live}/.secrets.env`, secrets, 0o600);
    const inodeBefore = statSync(live).ino;
    // A running container bind-mounts files by inode: unchanged files must keep theirs across the swap.
    const templateInode = statSync(join(live, 'netbird/config.yaml.tmpl')).ino;

    const next = bundle('v2').filter((f) => f.path !== 'netbird/proxy.env');
    expect(await planUpload(ssh, live, next)).toEqual({
      changed: ['docker-compose.yml'],
      unchanged: ['.secrets.env', '.env', 'netbird/config.yaml.tmpl', 'traefik/dynamic/services.yml'],
      removed: ['netbird/proxy.env'],
    });
    const rec = recording(ssh);
    const result = await uploadBundle(rec, live, next);
    expect(result).toMatchObject({
      changed: ['docker-compose.yml'],
      removed: ['netbird/proxy.env'],
      swapped: true,
    });
    expect(rec.writes.map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual(['docker-compose.yml', MANIFEST]);
    expect(result.bytesSent).toBe(Buffer.byteLength(next[2]?.content ?? ''));

    expect(statSync(live).ino).not.toBe(inodeBefore);
    expect(statSync(join(live, 'netbird/config.yaml.tmpl')).ino).toBe(templateInode);
    expect(readFileSync(join(live, 'docker-compose.yml'), 'utf8')).toContain('v2');
    expect(existsSync(join(live, 'netbird/proxy.env'))).toBe(false);
    expect(readFileSync(join(live, 'env/traefik.env'), 'utf8')).toBe(engineEnv);
    expect(modeOf(join(live, 'env/traefik.env'))).toBe(0o600);
    expect(readFileSync(join(live, '.bifrost-state.json'), 'utf8')).toBe(state);
    // The manifest, not the host's content, decides: the engine's token line is kept.
    expect(readFileSync(join(live, '.secrets.env'), 'utf8')).toBe(secrets);
    expect(leftovers(live)).toEqual([]);
  });

  it('a connection killed mid-upload leaves the old bundle live; a re-run converges', async () => {
    const live = freshLive();
    const oldFiles = bundle('v1');
    await uploadBundle(ssh, live, oldFiles);
    const oldTree = treeHashes(live);

    // Several MB, so the connection dies while this file is on the wire.
    const big: BundleFile = {
      path: 'traefik/big.yml',
      content: `# filler\n${'x'.repeat(79)}\n`.repeat(100_000),
      mode: 0o644,
    };
    const newFiles = bundle('v2', [big]);
    const victim = await connect();
    const client = (victim as unknown as { client: { destroy(): void } }).client;
    const killer = recording(victim);
    let writesStarted = 0;
    killer.files.writeFileAtomic = (p, c, m) => {
      if (c.length > 1_000_000) writesStarted++;
      return victim.files.writeFileAtomic(p, c, m);
    };
    // The connection dies when the server has acknowledged the big file's first SFTP WRITE and the
    // next one goes out: an event, not a timer (ssh2 sends a large write as a chain of WRITE requests,
    // each from the previous one's reply, through the session's own write()). Part of the file is in
    // the temporary file, the rest is not.
    const sftp = await (victim.files as unknown as { sftp(): Promise<SFTPWrapper> }).sftp();
    const write = sftp.write;
    let cutAt: number | undefined;
    sftp.write = function (this: SFTPWrapper, ...args: Parameters<SFTPWrapper['write']>) {
      const [, buf, off] = args;
      const sent = write.apply(this, args);
      if (cutAt === undefined && buf.length > 1_000_000 && off > 0) {
        cutAt = off;
        client.destroy();
      }
      return sent;
    };
    const err = await failure(uploadBundle(killer, live, newFiles));
    expect(err).toBeInstanceOf(WorkError);
    expect(err.message).toMatch(/upload step "[a-z -]+" failed for /);
    expect(err.hint).toMatch(/re-run/);
    console.log(`killed mid-upload: ${err.message}`);
    expect(writesStarted).toBe(1);
    expect(cutAt).toBeDefined();
    await victim.close();

    expect(treeHashes(live)).toEqual(oldTree);
    expect(leftovers(live).some((n) => n.includes('.staging-'))).toBe(true);

    const fresh = await connect();
    try {
      const progress: string[] = [];
      const result = await uploadBundle(fresh, live, newFiles, { onProgress: (l) => progress.push(l) });
      expect(result.swapped).toBe(true);
      expect(progress.join('\n')).toMatch(/removed .*\.staging-.*interrupted upload/);
      const { [MANIFEST]: _, ...tree } = treeHashes(live);
      expect(tree).toEqual(hashesOf(newFiles));
      expect(leftovers(live)).toEqual([]);
    } finally {
      await fresh.close();
    }
  });

  it('a drop between the two renames is recovered on the next run', async () => {
    const live = freshLive();
    const files = bundle('v1');
    await uploadBundle(ssh, live, files);
    const oldTree = treeHashes(live);
    renameSync(live, `${live}.prev-x`);
    await ssh.run({ argv: ['mkdir', `${live}.staging-y`] });

    const progress: string[] = [];
    const plan = await planUpload(ssh, live, files, { onProgress: (l) => progress.push(l) });
    expect(plan.changed).toEqual([]);
    expect(progress.join('\n')).toMatch(/restored .*\.prev-x as .*cut off between the two renames/);
    expect(treeHashes(live)).toEqual(oldTree);

    // The same drop again, now followed by a real upload.
    renameSync(live, `${live}.prev-z`);
    const next = bundle('v2');
    progress.length = 0;
    const result = await uploadBundle(ssh, live, next, { onProgress: (l) => progress.push(l) });
    expect(progress.join('\n')).toMatch(/restored .*\.prev-z/);
    expect(result).toMatchObject({ changed: ['docker-compose.yml'], swapped: true });
    const { [MANIFEST]: _, ...tree } = treeHashes(live);
    expect(tree).toEqual(hashesOf(next));
    expect(leftovers(live)).toEqual([]);
  });

  it('a swap whose second rename fails leaves the old tree live, not removed (never "remove live, then move")', async () => {
    const live = freshLive();
    const oldFiles = bundle('v1');
    await uploadBundle(ssh, live, oldFiles);
    const oldTree = treeHashes(live);

    // Fault: just before the swap's shell runs, its staging dir vanishes, so the rename of staging into
    // place fails after the live dir was moved aside (or, by a wrong swap, removed).
    const faulty = recording(ssh);
    let swaps = 0;
    faulty.run = async (cmd) => {
      const [sh, , script = '', , ...args] = cmd.argv;
      const staging = args.find((a) => a.startsWith(`${live}.staging-`));
      if (sh === 'sh' && /\bmv\b/.test(script) && staging) {
        swaps++;
        rmSync(staging, { recursive: true, force: true });
      }
      return ssh.run(cmd);
    };
    const err = await failure(uploadBundle(faulty, live, bundle('v2')));
    expect(swaps).toBe(1);
    expect(err).toBeInstanceOf(WorkError);
    expect(err.message).toMatch(/upload step "swap staging into place" failed for /);
    expect(existsSync(live), 'the live dir exists').toBe(true);
    expect(treeHashes(live)).toEqual(oldTree);
    expect(leftovers(live)).toEqual([]);

    // And the next run converges.
    const result = await uploadBundle(ssh, live, bundle('v2'));
    expect(result).toMatchObject({ changed: ['docker-compose.yml'], swapped: true });
    const { [MANIFEST]: _, ...tree } = treeHashes(live);
    expect(tree).toEqual(hashesOf(bundle('v2')));
  });

  it('no file content ever reaches a command line (canaries)', async () => {
    const live = freshLive();
    const rec = recording(ssh);
    const progress: string[] = [];
    const onProgress = (l: string) => progress.push(l);
    await uploadBundle(rec, live, bundle('v1'), { onProgress });
    await uploadBundle(rec, live, bundle('v2').slice(0, 4), { onProgress });
    await uploadBundle(rec, live, bundle('v2').slice(0, 4), { onProgress });
    await planUpload(rec, live, bundle('v3'), { onProgress });
    expect(rec.commands.length).toBeGreaterThan(5);
    const seen = JSON.stringify({ commands: rec.commands, progress });
    for (const canary of [CANARY_SECRET, CANARY_DOTENV, CANARY_COMPOSE]) expect(seen).not.toContain(canary);
    // And the contents did arrive (over SFTP).
    expect(readFileSync(join(live, '.secrets.env'), 'utf8')).toContain(CANARY_SECRET);
  });

  it('uploads cloud/bifrost with rendered secrets; prints timings', async () => {
    const live = freshLive();
    const local = await readLocalBundle(
      join(PROJECT_ROOT, 'cloud/bifrost'),
      (rel) => rel === 'env/README.md',
    );
    expect(local.map((f) => f.path)).toContain('docker-compose.yml');
    expect(local.map((f) => f.path)).not.toContain('env/README.md');
    expect(
      local.every((f) => f.mode === (f.path.endsWith('.secrets.env') || f.path === '.env' ? 0o600 : 0o644)),
    ).toBe(true);
    const files = [...local, { path: '.secrets.env', content: `X='${CANARY_SECRET}'\n`, mode: 0o600 }];

    let t = performance.now();
    const first = await uploadBundle(ssh, live, files);
    const firstMs = performance.now() - t;
    t = performance.now();
    const again = await uploadBundle(ssh, live, files);
    const againMs = performance.now() - t;
    expect(first.swapped).toBe(true);
    expect(again).toMatchObject({ swapped: false, changed: [] });
    console.log(
      `upload timings: first upload of cloud/bifrost (${files.length} files, ${first.bytesSent} bytes) ` +
        `${firstMs.toFixed(0)} ms; no-op re-run ${againMs.toFixed(0)} ms`,
    );
  });

  it('a poisoned manifest is not used: nothing outside the bundle is removed, every file is sent again', async () => {
    const live = freshLive();
    await uploadBundle(ssh, live, bundle('v1'));
    // `rm -f STAGING/../canary` would hit this file beside the live dir.
    const canary = `${live}-canary`;
    await ssh.files.writeFileAtomic(canary, 'keep me\n', 0o644);
    const manifest = JSON.parse(readFileSync(join(live, MANIFEST), 'utf8'));
    manifest.files[`../${canary.slice(canary.lastIndexOf('/') + 1)}`] = {
      sha256: '0'.repeat(64),
      mode: 0o644,
    };
    await ssh.files.writeFileAtomic(`${live}/${MANIFEST}`, JSON.stringify(manifest), 0o600);

    const warnings: string[] = [];
    const plan = await planUpload(ssh, live, bundle('v1'), { onWarning: (l) => warnings.push(l) });
    expect(plan.removed).toEqual([]);
    const result = await uploadBundle(ssh, live, bundle('v2'), { onWarning: (l) => warnings.push(l) });
    expect(result.removed).toEqual([]);
    expect(result.changed.sort()).toEqual(
      bundle('v2')
        .map((f) => f.path)
        .sort(),
    );
    expect(readFileSync(canary, 'utf8')).toBe('keep me\n');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/lists "\.\.\/bifrost-\d+-canary", which is not a file inside the bundle/);
    expect(warnings[0]).toMatch(/every file is sent again and none is removed/);
    // The manifest written by that upload is clean: the next run is quiet and sends nothing.
    warnings.length = 0;
    expect(await uploadBundle(ssh, live, bundle('v2'), { onWarning: (l) => warnings.push(l) })).toMatchObject(
      {
        changed: [],
        removed: [],
      },
    );
    expect(warnings).toEqual([]);
    rmSync(canary);
  });

  it('the live dir listing is read exactly: a file name with a line break cannot pass for a bundle file', async () => {
    const live = freshLive();
    await uploadBundle(ssh, live, bundle('v1'));
    await ssh.run({ argv: ['rm', `${live}/docker-compose.yml`] });
    // `find` prints this as "./x" and "./docker-compose.yml" on two lines: a decoy for a deleted file.
    const decoy = `${live}/x\n.`;
    await ssh.run({
      argv: ['sh', '-c', 'mkdir -- "$1" && echo decoy > "$1/docker-compose.yml"', 'sh', decoy],
    });
    const warnings: string[] = [];
    const result = await uploadBundle(ssh, live, bundle('v1'), { onWarning: (l) => warnings.push(l) });
    expect(result.changed).toEqual(['docker-compose.yml']);
    expect(readFileSync(join(live, 'docker-compose.yml'), 'utf8')).toContain(CANARY_COMPOSE);
    expect(warnings.join('\n')).toContain('"./x\\n./docker-compose.yml"');
  });

  it('a directory of the live tree replaced by a symlink cannot take writes or removals outside the bundle', async () => {
    const live = freshLive();
    await uploadBundle(ssh, live, bundle('v1'));
    // On the host, netbird/ becomes a link to a directory outside the bundle holding a file of the same name.
    const outside = `${live}-outside`;
    await ssh.run({
      argv: [
        'sh',
        '-c',
        'mkdir -- "$2" && echo keep > "$2/proxy.env" && rm -rf -- "$1/netbird" && ln -s -- "$2" "$1/netbird"',
        'sh',
        live,
        outside,
      ],
    });
    const warnings: string[] = [];
    // v2 changes the template under netbird/ and drops netbird/proxy.env.
    const next = bundle('v2')
      .filter((f) => f.path !== 'netbird/proxy.env')
      .map((f) => (f.path === 'netbird/config.yaml.tmpl' ? { ...f, content: 'relay: changed\n' } : f));
    const result = await uploadBundle(ssh, live, next, { onWarning: (l) => warnings.push(l) });
    expect(result.removed).toEqual(['netbird/proxy.env']);
    expect(readdirSync(outside)).toEqual(['proxy.env']);
    expect(readFileSync(join(outside, 'proxy.env'), 'utf8')).toBe('keep\n');
    expect(lstatSync(join(live, 'netbird')).isDirectory()).toBe(true);
    expect(readFileSync(join(live, 'netbird/config.yaml.tmpl'), 'utf8')).toBe('relay: changed\n');
    expect(warnings.join('\n')).toMatch(
      /netbird in the live dir was a symlink; replaced by a real directory/,
    );
    rmSync(outside, { recursive: true });
  });

  it('parses the manifest from the host strictly, naming the first bad entry', () => {
    const entry = { sha256: 'a'.repeat(64), mode: 0o644 };
    const text = (files: Record<string, unknown>) => JSON.stringify({ version: 1, files });
    expect(parseManifest(text({ 'traefik/traefik.yml': entry }))).toEqual({ 'traefik/traefik.yml': entry });
    expect(parseManifest(undefined)).toBeUndefined();
    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['../x', { '../x': entry }, /"\.\.\/x".*climbs out/],
      ['a/../../x', { 'a/../../x': entry }, /"a\/\.\.\/\.\.\/x"/],
      ['/etc/passwd', { '/etc/passwd': entry }, /"\/etc\/passwd".*absolute/],
      ['./a', { './a': entry }, /"\.\/a".*not normalised/],
      ['a//b', { 'a//b': entry }, /not normalised/],
      ['a\nb', { 'a\nb': entry }, /"a\\nb".*line break/],
      ['the manifest', { [MANIFEST]: entry }, /the manifest itself/],
      ['a bad digest', { a: { sha256: 'x', mode: 0o644 } }, /malformed entry for "a"/],
      ['a bad mode', { a: { sha256: 'a'.repeat(64), mode: 0o7777 } }, /malformed entry for "a"/],
    ];
    for (const [what, files, message] of bad) {
      const problems: string[] = [];
      expect(
        parseManifest(text(files), (p) => problems.push(p)),
        what,
      ).toBeUndefined();
      expect(problems, what).toHaveLength(1);
      expect(problems[0], what).toMatch(message);
    }
    const problems: string[] = [];
    expect(parseManifest('{"version":2,"files":{}}', (p) => problems.push(p))).toBeUndefined();
    expect(parseManifest('not json', (p) => problems.push(p))).toBeUndefined();
    expect(problems).toEqual(['is not a version 1 manifest', 'is not JSON']);
  });

  it('rejects bad input before touching the host', async () => {
    const rec = recording(ssh);
    await expect(uploadBundle(rec, 'relative/dir', bundle('v1'))).rejects.toThrow(/bad remote directory/);
    const dup = [...bundle('v1'), { path: '.env', content: 'x', mode: 0o600 }];
    await expect(uploadBundle(rec, freshLive(), dup)).rejects.toThrow(/twice/);
    const outside = [{ path: '../etc/passwd', content: 'x', mode: 0o644 }];
    await expect(uploadBundle(rec, freshLive(), outside)).rejects.toThrow(/bad bundle path/);
    const binary = [{ path: 'logo.png', content: Buffer.from([0x89, 0x50, 0xff, 0xfe]), mode: 0o644 }];
    await expect(uploadBundle(rec, freshLive(), binary)).rejects.toThrow(/not UTF-8/);
    expect(rec.commands).toEqual([]);
  });

  describe('host lock', () => {
    const holder = (pid: number, since = new Date().toISOString()): LockHolder => ({
      holder: `op${pid}@laptop`,
      pid,
      since,
      command: 'provision-bifrost --host bifrost',
    });

    it('excludes a second holder, waits for a release, reports stale locks, and can be broken', async () => {
      const live = freshLive();
      const lockDir = `${live}.lock`;
      expect(await readHostLock(ssh, live)).toBeUndefined();

      const first = await acquireHostLock(ssh, live, { holder: holder(101) });
      expect(statSync(lockDir).isDirectory()).toBe(true);
      expect(await readHostLock(ssh, live)).toMatchObject({ holder: 'op101@laptop', pid: 101 });

      const held = await failure(acquireHostLock(ssh, live, { holder: holder(202), waitSeconds: 0 }));
      expect(held).toBeInstanceOf(WorkError);
      expect(held.message).toMatch(
        /is held by op101@laptop \(pid 101\) since \S+ .*running: provision-bifrost/,
      );
      expect(held.message).not.toMatch(/STALE/);

      // A waiter gets the lock once the first holder releases it. The release is set off by the
      // waiter's own first report that it is waiting (an event, not a clock): the order of the
      // events is the claim, and waitSeconds is only a bound that makes a hang fail.
      const order: string[] = [];
      const waits: string[] = [];
      let released: Promise<void> | undefined;
      const second = await acquireHostLock(ssh, live, {
        holder: holder(303),
        waitSeconds: 30,
        onWait: (l) => {
          waits.push(l);
          order.push('waiting');
          if (!released) {
            order.push('release');
            released = first.release();
          }
        },
      });
      order.push('acquired');
      await released;
      expect(order).toEqual(['waiting', 'release', 'acquired']);
      expect(waits[0]).toMatch(/waiting up to \d+ s for .*held by op101@laptop/);
      expect(await readHostLock(ssh, live)).toMatchObject({ pid: 303 });
      // The first holder's late release (already done) does not touch the new holder's lock.
      await first.release();
      expect(await readHostLock(ssh, live)).toMatchObject({ pid: 303 });
      await second.release();
      expect(existsSync(lockDir)).toBe(false);

      // A stale lock: reported with its holder, never broken, even when the caller would wait.
      const old = new Date(Date.now() - 2 * 3600_000).toISOString();
      const crashed = await acquireHostLock(ssh, live, { holder: holder(404, old) });
      const stale = await failure(acquireHostLock(ssh, live, { holder: holder(505), waitSeconds: 5 }));
      expect(stale.message).toMatch(/STALE lock .*held by op404@laptop \(pid 404\) since .*\(2h 0m ago\)/);
      expect(stale.hint).toMatch(/just bifrost-unlock/);
      expect(await readHostLock(ssh, live)).toMatchObject({ pid: 404 });

      // Broken by the operator: the holder is returned, the lock is gone, the old handle leaves it be.
      expect(await breakHostLock(ssh, live)).toMatchObject({ holder: 'op404@laptop', pid: 404, since: old });
      expect(existsSync(lockDir)).toBe(false);
      expect(await breakHostLock(ssh, live)).toBeUndefined();
      const third = await acquireHostLock(ssh, live, { holder: holder(606) });
      const notOurs = await failure(crashed.release());
      expect(notOurs.message).toMatch(/no longer ours .*op606@laptop/);
      expect(await readHostLock(ssh, live)).toMatchObject({ pid: 606 });
      await third.release();
    });

    it('a lock dir without holder.json reads as an unknown holder', async () => {
      const live = freshLive();
      await ssh.run({ argv: ['mkdir', `${live}.lock`] });
      expect(await readHostLock(ssh, live)).toMatchObject({ holder: 'unknown', pid: 0 });
      const err = await failure(acquireHostLock(ssh, live, { holder: holder(1) }));
      expect(err.message).toMatch(/held by unknown \(pid 0\).*no holder\.json/);
      expect(await breakHostLock(ssh, live)).toMatchObject({ holder: 'unknown' });
    });
  });
});
