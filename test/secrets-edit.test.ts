/**
 * `secrets edit`: the decrypted file in $EDITOR (here a shell script driven by the test) from a 0600 file in
 * a 0700 directory under $XDG_RUNTIME_DIR, removed on every path (signals included); a refused edit leaves
 * the file byte-identical; a valid one changes only the edited keys' ENC[...] lines (plus lastmodified and
 * mac); no value in argv, output, or any file outside the memory directory.
 */

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { AGE_KEY_VARIABLES } from '../scripts/lib/core/child-env.ts';
import { encodedForms } from '../scripts/lib/core/redactor.ts';
import { chooseEditor, editBase, editorCommand } from '../scripts/lib/secrets/edit.ts';
import { SECRET_KEYS } from '../scripts/lib/secrets/schema.ts';
import { decryptSopsFile, encryptSops } from '../scripts/lib/secrets/sops/index.ts';
import { makeAgeKey } from './fixtures/make-sops-fixtures.ts';
import { alive } from './helpers/process.ts';
import { runScriptInPty } from './helpers/pty.ts';
import { realSopsDecrypt, realSopsDecryptBin } from './helpers/real-sops.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { scriptArgv } from './helpers/script-bundles.ts';
import { tempDir } from './helpers/temp.ts';
import { requireTier, requireTool } from './helpers/tiers.ts';

const CANARY = {
  FINGERPRINT_KEY: Buffer.alloc(32, 7).toString('base64'),
  REDIS_PASSWORD: 'canary0redis0aaaaaaaaaaaaaaaaaaa',
  INFISICAL_ENCRYPTION_KEY: 'c0ffee00c0ffee00c0ffee00c0ffee00',
  AUTHENTIK_TOKEN: `canaryAuthentikToken${'Z'.repeat(30)}`,
};
// What the editor script's sed makes of REDIS_PASSWORD: never typed anywhere but inside the memory dir.
const EDITED_REDIS = `canary5redis5b${'a'.repeat(18)}`;
const ALL_VALUES = [...Object.values(CANARY), EDITED_REDIS];

/**
 * The editor: logs its argv, the file's path and modes, runs $EDIT_ALSO if set (what someone else does
 * meanwhile), then does what EDIT_<n> says for its n-th run (a sed script, `wait` = sleep until killed,
 * `fail` = exit 3, empty = leave the file as it is).
 */
const EDITOR = `#!/bin/sh
for a; do f="$a"; done
n=$(cat "$EDIT_LOG/count" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "$EDIT_LOG/count"
printf '%s\\n' "$@" >> "$EDIT_LOG/argv"
printf '%s\\n' "$f" > "$EDIT_LOG/path"
stat -c '%a' "$f" "$(dirname "$f")" >> "$EDIT_LOG/modes"
[ -z "$EDIT_ALSO" ] || sh -c "$EDIT_ALSO"
eval "step=\\$EDIT_$n"
case "$step" in
  wait) echo $$ > "$EDIT_LOG/pid.tmp"; mv "$EDIT_LOG/pid.tmp" "$EDIT_LOG/pid"; exec sleep 600;;
  env) cat /proc/$$/environ > "$EDIT_LOG/env";;
  fail) exit 3;;
  '') ;;
  *) sed -i "$step" "$f";;
esac
`;

/**
 * What stands in for vim when neither EDITOR nor VISUAL is set: like vi, it writes the file to stdout when
 * stdout is no terminal (the leak to a CI log this guards against); on a terminal it only says it started.
 */
const FALLBACK_EDITOR = `#!/bin/sh
for a; do f="$a"; done
echo started > "$EDIT_LOG/fallback-ran"
echo FALLBACK-EDITOR-STARTED
[ -t 1 ] || cat "$f"
`;

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

async function fixture() {
  const dir = tempDir('sf-secrets-edit-');
  made.push(dir);
  const key = await makeAgeKey(dir);
  const file = join(dir, 'bootstrap.sops.yaml');
  writeFileSync(file, await encryptSops(CANARY, { recipients: [key.recipient], format: 'yaml' }), {
    mode: 0o600,
  });
  const runtime = join(dir, 'runtime');
  const tmp = join(dir, 'tmp');
  const log = join(dir, 'log');
  mkdirSync(runtime, { mode: 0o700 });
  mkdirSync(tmp, { mode: 0o700 });
  mkdirSync(log);
  const editor = join(dir, 'editor.sh');
  writeFileSync(editor, EDITOR, { mode: 0o755 });
  const fallbackBin = join(dir, 'fallback-bin');
  mkdirSync(fallbackBin);
  writeFileSync(join(fallbackBin, 'vim'), FALLBACK_EDITOR, { mode: 0o755 });
  const env = (steps: string[]) => ({
    PATH: process.env.PATH ?? '',
    HOME: dir,
    NO_COLOR: '1',
    SOPS_AGE_KEY_FILE: key.keysFile,
    XDG_RUNTIME_DIR: runtime,
    TMPDIR: tmp,
    EDITOR: editor,
    EDIT_LOG: log,
    ...Object.fromEntries(steps.map((s, i) => [`EDIT_${i + 1}`, s])),
  });
  const edit = (args: string[], steps: string[]) => {
    for (const name of readdirSync(log)) rmSync(join(log, name), { force: true });
    return runScript('secrets.ts', ['edit', ...args, '--secrets-file', file], env(steps));
  };
  const decrypt = async () =>
    (await decryptSopsFile(file, { env: { SOPS_AGE_KEY_FILE: key.keysFile } })).documents[0] as Record<
      string,
      string
    >;
  const logged = (name: string) => readFileSync(join(log, name), 'utf8');
  /** Neither EDITOR nor VISUAL: the fallback (the stand-in vim, first on PATH) is what would open. */
  const noEditorEnv = () => {
    const { EDITOR: _editor, ...rest } = env([]);
    return { ...rest, PATH: `${fallbackBin}:${rest.PATH}` };
  };
  return { dir, key, file, runtime, tmp, log, env, edit, decrypt, logged, noEditorEnv };
}

type Fixture = Awaited<ReturnType<typeof fixture>>;

/** The memory dir is empty again, the temp dir never held anything, and no file anywhere holds a value. */
function expectNoTrace(f: Fixture, r?: { stdout: string; stderr: string }) {
  expect(readdirSync(f.runtime)).toEqual([]);
  // tsx keeps its compile cache there (tsx-UID); nothing else may appear.
  expect(readdirSync(f.tmp).filter((n) => !/^tsx-\d+$/.test(n))).toEqual([]);
  const forms = ALL_VALUES.flatMap((v) => encodedForms(v));
  const files = (readdirSync(f.dir, { recursive: true }) as string[])
    .map((p) => join(f.dir, p))
    .filter((p) => statSync(p).isFile());
  for (const path of files) {
    const text = readFileSync(path, 'utf8');
    for (const form of forms) expect(text.includes(form), `${path} holds a value`).toBe(false);
  }
  if (r) for (const form of forms) expect(r.stdout + r.stderr).not.toContain(form);
}

/** The editor saw the path as its only argument: a 0600 file in a 0700 directory under XDG_RUNTIME_DIR. */
function expectPathOnly(f: Fixture, runs = 1) {
  const path = f.logged('path').trim();
  expect(dirname(dirname(path))).toBe(f.runtime);
  expect(f.logged('argv').trim().split('\n')).toEqual(Array(runs).fill(path));
  expect(f.logged('modes').trim().split('\n').slice(0, 2)).toEqual(['600', '700']);
  expect(existsSync(dirname(path))).toBe(false);
}

const lines = (text: string) => text.split('\n');
const isRecomputed = (l: string) => /^\s+(lastmodified|mac): /.test(l);

describe('secrets edit', { timeout: 90_000 }, () => {
  it('a valid edit changes only that key: every other ENC[...] line byte-identical, MAC fine', async () => {
    const f = await fixture();
    const before = readFileSync(f.file, 'utf8');
    const r = await f.edit([], ['s/canary0redis0a/canary5redis5b/']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/changed\s+REDIS_PASSWORD \(32 chars, hmac:[0-9a-f]{8}\)/);
    expect(r.stdout + r.stderr).toMatch(/unchanged\s+3 key\(s\)/);
    const after = readFileSync(f.file, 'utf8');
    const [b, a] = [lines(before), lines(after)];
    expect(a.length).toBe(b.length);
    const differing = a.flatMap((l, i) => (l === b[i] ? [] : [i]));
    const redisAt = b.findIndex((l) => l.startsWith('REDIS_PASSWORD: ENC['));
    expect(differing.filter((i) => !isRecomputed(b[i] as string))).toEqual([redisAt]);
    expect(a[redisAt]).toMatch(/^REDIS_PASSWORD: ENC\[AES256_GCM,/);
    const expected = { ...CANARY, REDIS_PASSWORD: EDITED_REDIS };
    expect(await f.decrypt()).toEqual(expected);
    if (realSopsDecryptBin) expect(await realSopsDecrypt(f.file, f.key.keysFile)).toEqual(expected);
    expect(statSync(f.file).mode & 0o777).toBe(0o600);
    expectPathOnly(f);
    expectNoTrace(f, r);
  });

  it('an editor that changes nothing writes nothing', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await f.edit([], ['']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/no changes; nothing written/);
    expect(readFileSync(f.file)).toEqual(before);
    expectPathOnly(f);
    expectNoTrace(f, r);
  });

  it('refuses an invalid edit without a terminal (exit 2), the file byte-identical', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const cases: [string, RegExp][] = [
      ['s/^REDIS_PASSWORD: .*/REDIS_PASSWORD: short/', /REDIS_PASSWORD: malformed/],
      ['$a NOT_A_KNOWN_KEY: canary-unknown-value-0123456789', /NOT_A_KNOWN_KEY is not in the schema/],
      [
        '$a REDIS_PASWORD: canary-unknown-value-0123456789',
        /REDIS_PASWORD is not in the schema; did you mean REDIS_PASSWORD\?/,
      ],
      [
        's/c0ffee00c0ffee00/deadbeefdeadbeef/',
        /INFISICAL_ENCRYPTION_KEY already has a different value.*pass --allow-rotate INFISICAL_ENCRYPTION_KEY/,
      ],
      ['/^INFISICAL_ENCRYPTION_KEY/d', /INFISICAL_ENCRYPTION_KEY .*never rotated/],
      ['s/^REDIS_PASSWORD: /REDIS_PASSWORD: [/', /not valid YAML: .* at line \d+/],
      ['$a sops: {}', /top-level sops key/],
      ['s/^REDIS_PASSWORD: .*/REDIS_PASSWORD: 1234567890123456/', /REDIS_PASSWORD: must be a string/],
      ['1,$d', /empty/],
    ];
    for (const [step, message] of cases) {
      const r = await f.edit([], [step]);
      expect(r.exitCode, `${step}: ${r.stderr}`).toBe(2);
      expect(r.stderr, step).toMatch(message);
      expect(r.stderr).toMatch(/is unchanged: the edit was abandoned/);
      expect(readFileSync(f.file)).toEqual(before);
      expectPathOnly(f);
      expectNoTrace(f, r);
      expect(r.stderr).not.toContain('canary-unknown-value');
    }
  }, 240_000);

  it('--allow-unknown and --allow-rotate KEY let those edits through', async () => {
    const f = await fixture();
    const r = await f.edit(
      ['--allow-unknown', '--allow-rotate', 'INFISICAL_ENCRYPTION_KEY'],
      ['s/c0ffee00c0ffee00/deadbeefdeadbeef/; $a NEW_UNKNOWN: canaryUnknownValue'],
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/added\s+NEW_UNKNOWN \(18 chars/);
    expect(r.stdout + r.stderr).toMatch(/changed\s+INFISICAL_ENCRYPTION_KEY/);
    expect(await f.decrypt()).toEqual({
      ...CANARY,
      INFISICAL_ENCRYPTION_KEY: 'deadbeefdeadbeefc0ffee00c0ffee00',
      NEW_UNKNOWN: 'canaryUnknownValue',
    });
    expect(r.stdout + r.stderr).not.toContain('canaryUnknownValue');
    expect(readdirSync(f.runtime)).toEqual([]);
  });

  it('neither EDITOR nor VISUAL and no terminal: exit 2 naming EDITOR, no editor started, nothing of the file shown or left', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await runScript('secrets.ts', ['edit', '--secrets-file', f.file], f.noEditorEnv());
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^error: no editor: set EDITOR or VISUAL; stdin or stdout is not a terminal/m);
    expect(r.stderr).toMatch(/^hint: run it as EDITOR=nano just secrets-edit .*just secrets-set KEY/m);
    expect(existsSync(join(f.log, 'fallback-ran'))).toBe(false);
    expect(r.stdout).not.toMatch(/FALLBACK-EDITOR-STARTED/);
    expect(readFileSync(f.file)).toEqual(before);
    expectNoTrace(f, r);
  });

  it('a misspelt --allow-rotate is refused before any editor opens', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await f.edit(['--allow-rotate', 'INFISICAL_ENCRYPTON_KEY'], ['']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(
      /--allow-rotate INFISICAL_ENCRYPTON_KEY is not in the schema; did you mean INFISICAL_ENCRYPTION_KEY\?/,
    );
    expect(existsSync(join(f.log, 'count'))).toBe(false);
    expect(readFileSync(f.file)).toEqual(before);
    expectNoTrace(f, r);
  });

  it('an editor that fails leaves the file as it was (exit 1)', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await f.edit([], ['fail']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/exited with status 3; nothing was written/);
    expect(readFileSync(f.file)).toEqual(before);
    expectNoTrace(f, r);
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const) {
    it(`${signal} during the edit: exit ${code}, the editor stopped, the plaintext gone, the file unchanged`, async () => {
      const f = await fixture();
      const before = readFileSync(f.file);
      const child = execa(
        process.execPath,
        [...scriptArgv('secrets.ts', 'tsx'), 'edit', '--secrets-file', f.file],
        { cwd: PROJECT_ROOT, env: f.env(['wait']), extendEnv: false, reject: false, timeout: 60_000 },
      );
      const pidFile = join(f.log, 'pid');
      while (!existsSync(pidFile) && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const editorPid = Number(readFileSync(pidFile, 'utf8'));
      // The plaintext is there while the editor runs.
      expect(existsSync(f.logged('path').trim())).toBe(true);
      child.kill(signal);
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(code);
      expect(String(r.stderr)).toMatch(new RegExp(`interrupted by ${signal} during edit`));
      expect(String(r.stderr)).toMatch(/plaintext copy was removed/);
      expect(readFileSync(f.file)).toEqual(before);
      expect(alive(editorPid)).toBe(false);
      expectPathOnly(f);
      expectNoTrace(f, { stdout: String(r.stdout), stderr: String(r.stderr) });
    });
  }

  it("the editor's environment holds no secret: no schema key, no age key source, no value under any name", async () => {
    const f = await fixture();
    const ageKey = readFileSync(f.key.keysFile, 'utf8').match(/AGE-SECRET-KEY-1\S+/)?.[0] as string;
    const r = await runScript('secrets.ts', ['edit', '--secrets-file', f.file], {
      ...f.env(['env']),
      // As under `sops exec-env` or --from-env: the schema's keys exported, and a value copied elsewhere.
      ...CANARY,
      COPY_OF_A_TOKEN: `Bearer ${CANARY.AUTHENTIK_TOKEN}`,
      SOPS_AGE_KEY: ageKey,
      ORDINARY_VARIABLE: 'kept',
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const dump = f.logged('env');
    const names = dump.split('\0').map((entry) => entry.slice(0, entry.indexOf('=')));
    // The editor did get the environment, less the secrets.
    expect(names).toEqual(expect.arrayContaining(['ORDINARY_VARIABLE', 'PATH', 'HOME', 'EDIT_LOG']));
    for (const name of [...SECRET_KEYS, ...AGE_KEY_VARIABLES, 'COPY_OF_A_TOKEN'])
      expect(names, name).not.toContain(name);
    for (const form of [...ALL_VALUES.flatMap((v) => encodedForms(v)), ageKey])
      expect(dump.includes(form), 'a value reached the editor').toBe(false);
    expectNoTrace(f, r);
  });

  it('the plaintext a SIGKILLed edit left is removed by the next edit, and said; a live edit and a symlink are left alone', async () => {
    const f = await fixture();
    /** An edit whose editor waits until killed, logging to its own directory; resolves once the editor runs. */
    const startWaiting = async (logName: string) => {
      const log = join(f.dir, logName);
      mkdirSync(log);
      const child = execa(
        process.execPath,
        [...scriptArgv('secrets.ts', 'tsx'), 'edit', '--secrets-file', f.file],
        {
          cwd: PROJECT_ROOT,
          env: { ...f.env(['wait']), EDIT_LOG: log },
          extendEnv: false,
          reject: false,
          timeout: 60_000,
        },
      );
      const pidFile = join(log, 'pid');
      while (!existsSync(pidFile) && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const plaintext = readFileSync(join(log, 'path'), 'utf8').trim();
      return { child, editorPid: Number(readFileSync(pidFile, 'utf8')), plaintext };
    };
    // Started first: each edit clears what it finds, so the live one must predate the leftover.
    const live = await startWaiting('log-live');
    const killed = await startWaiting('log-killed');
    // SIGKILL to the whole tree: no clean-up of the command's runs.
    killed.child.kill('SIGKILL');
    process.kill(killed.editorPid, 'SIGKILL');
    await killed.child;
    expect(readFileSync(killed.plaintext, 'utf8')).toContain('REDIS_PASSWORD');

    // A symlink named like a leftover of a dead process, to a directory of someone else's: never followed.
    const elsewhere = join(f.dir, 'not-a-leftover');
    mkdirSync(elsewhere, { mode: 0o700 });
    writeFileSync(join(elsewhere, 'keep'), 'kept');
    const [, uid, ns, pid] =
      /secrets-edit-(\d+)-(\d+)-(\d+)-/.exec(basename(dirname(killed.plaintext))) ?? [];
    const trap = join(f.runtime, `secrets-edit-${uid}-${ns}-${pid}-symlnk`);
    symlinkSync(elsewhere, trap);
    // A directory named so that is not 0700: not one `edit` made.
    const open = join(f.runtime, `secrets-edit-${uid}-${ns}-${pid}-open00`);
    mkdirSync(open);
    chmodSync(open, 0o755);

    const r = await f.edit([], ['']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `warning: removed the plaintext copy an interrupted edit left behind (its process is gone): ${dirname(killed.plaintext)}`,
    );
    expect(existsSync(dirname(killed.plaintext))).toBe(false);
    expect(readFileSync(live.plaintext, 'utf8')).toContain('REDIS_PASSWORD');
    expect(readFileSync(join(trap, 'keep'), 'utf8')).toBe('kept');
    expect(existsSync(open)).toBe(true);

    live.child.kill('SIGTERM');
    expect((await live.child).exitCode).toBe(143);
    expect(alive(live.editorPid)).toBe(false);
    rmSync(trap);
    rmSync(open, { recursive: true });
    expectNoTrace(f, r);
  });

  it('a SOPS file someone else changed while the editor was open is not overwritten: exit 1 naming it, their bytes kept', async () => {
    const f = await fixture();
    // Another writer (sops in a second terminal) saves its own version while this edit's editor is open.
    const other = join(f.dir, 'other.sops.yaml');
    const theirs = await encryptSops(
      { ...CANARY, REDIS_PASSWORD: `canary7other7${'c'.repeat(19)}` },
      { recipients: [f.key.recipient], format: 'yaml' },
    );
    writeFileSync(other, theirs, { mode: 0o600 });
    const r = await runScript('secrets.ts', ['edit', '--secrets-file', f.file], {
      ...f.env(['s/canary0redis0a/canary5redis5b/']),
      EDIT_ALSO: `cat '${other}' > '${f.file}'`,
    });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `error: ${f.file} changed while this command was working; nothing was written`,
    );
    expect(readFileSync(f.file, 'utf8')).toBe(theirs);
    expect(readdirSync(f.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expectPathOnly(f);
    expectNoTrace(f, r);
  });

  it('--help says where the plaintext goes and what is checked', async () => {
    const r = await runScript('secrets.ts', ['edit', '--help'], { PATH: process.env.PATH ?? '' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/XDG_RUNTIME_DIR/);
    expect(r.stdout).toMatch(/--allow-rotate KEY/);
  });
});

/**
 * /dev/shm as the edit would find it on a host without a usable one: a mount namespace of the command's
 * own (root's, as CI runs the suite) with a read-only tmpfs there, or a writable one for the contrast.
 * The host's /dev/shm is never touched.
 */
const SHM_NAMESPACE = ['--mount', '--propagation', 'private', 'sh', '-c'];
const mountNamespace = requireTier(
  'mount-namespace',
  spawnSync('unshare', [...SHM_NAMESPACE, 'mount -t tmpfs -o ro none /dev/shm'], { stdio: 'ignore' })
    .status === 0
    ? { ok: true }
    : { ok: false, reason: 'a mount namespace (unshare --mount, as root)' },
  'secrets edit where no memory file system is writable',
);

describe.skipIf(!mountNamespace)('secrets edit off memory', { timeout: 90_000 }, () => {
  /** `secrets edit` with /dev/shm a fresh tmpfs, read-only or not, in a namespace of its own. */
  const editWithShm = (f: Fixture, shm: 'ro' | 'rw', env: Record<string, string>) =>
    execa(
      'unshare',
      [
        ...SHM_NAMESPACE,
        `mount -t tmpfs -o ${shm},mode=1777 none /dev/shm && exec "$@"`,
        'sh',
        process.execPath,
        ...scriptArgv('secrets.ts', 'tsx'),
        'edit',
        '--secrets-file',
        f.file,
      ],
      { cwd: PROJECT_ROOT, env, extendEnv: false, reject: false, timeout: 60_000 },
    );
  const DISK_WARNING =
    /warning: no memory file system \(\$XDG_RUNTIME_DIR, \/dev\/shm\): the plaintext goes to (\S+) on disk/;

  it('no $XDG_RUNTIME_DIR and /dev/shm not writable: the edit warns, naming the disk directory it uses', async () => {
    const f = await fixture();
    const { XDG_RUNTIME_DIR: _unset, ...env } = f.env(['s/canary0redis0a/canary5redis5b/']);
    const r = await editWithShm(f, 'ro', env);
    const [stdout, stderr] = [String(r.stdout), String(r.stderr)];
    expect(r.exitCode, stderr).toBe(0);
    expect(stderr).toMatch(DISK_WARNING);
    expect(DISK_WARNING.exec(stderr)?.[1]).toBe(f.tmp);
    // It is where the plaintext went, and it was removed afterwards.
    expect(dirname(dirname(f.logged('path').trim()))).toBe(f.tmp);
    expect((await f.decrypt()).REDIS_PASSWORD).toBe(EDITED_REDIS);
    expectNoTrace(f, { stdout, stderr });
  });

  it('a memory file system: no such warning, with $XDG_RUNTIME_DIR or with /dev/shm', async () => {
    const f = await fixture();
    const cases: [string, 'ro' | 'rw', Record<string, string>][] = [
      [f.runtime, 'ro', f.env([''])],
      ['/dev/shm', 'rw', (({ XDG_RUNTIME_DIR: _unset, ...env }) => env)(f.env(['']))],
    ];
    for (const [base, shm, env] of cases) {
      const r = await editWithShm(f, shm, env);
      const [stdout, stderr] = [String(r.stdout), String(r.stderr)];
      expect(r.exitCode, stderr).toBe(0);
      expect(stderr, base).not.toMatch(/warning/);
      expect(dirname(dirname(f.logged('path').trim()))).toBe(base);
      expectNoTrace(f, { stdout, stderr });
    }
  });
});

describe('where the plaintext goes and which editor opens it', () => {
  it('XDG_RUNTIME_DIR when it is a 0700 directory of ours, else /dev/shm, else the temp dir', () => {
    const dir = tempDir('sf-secrets-edit-base-');
    made.push(dir);
    const runtime = join(dir, 'runtime');
    const shm = join(dir, 'shm');
    const tmp = join(dir, 'tmp');
    mkdirSync(runtime, { mode: 0o700 });
    mkdirSync(shm, { mode: 0o755 });
    expect(editBase({ XDG_RUNTIME_DIR: runtime }, shm, tmp)).toEqual({ base: runtime, inMemory: true });
    chmodSync(runtime, 0o755);
    const open = editBase({ XDG_RUNTIME_DIR: runtime }, shm, tmp);
    expect(open).toMatchObject({ base: shm, inMemory: true });
    expect(open.note).toMatch(/not a 0700 directory/);
    expect(editBase({ XDG_RUNTIME_DIR: 'relative' }, shm, tmp).base).toBe(shm);
    expect(editBase({}, join(dir, 'none'), tmp)).toEqual({ base: tmp, inMemory: false });
  });

  it('$VISUAL, else $EDITOR split like a shell word list, else vim/nano/vi on a terminal only', () => {
    expect(editorCommand({ VISUAL: 'code --wait', EDITOR: 'vim' })).toEqual({
      argv: ['code', '--wait'],
      from: 'VISUAL',
    });
    expect(editorCommand({ EDITOR: `"/opt/my editor/bin/ed" -n` })).toEqual({
      argv: ['/opt/my editor/bin/ed', '-n'],
      from: 'EDITOR',
    });
    expect(editorCommand({ EDITOR: '  ', PATH: '' })).toEqual({ argv: ['vi'], from: 'fallback' });
    expect(() => editorCommand({ EDITOR: '"unclosed' })).toThrow(/unclosed quote/);
    // A named editor opens without a terminal (it may be a script, or `code --wait`); the fallback does not.
    expect(chooseEditor({ EDITOR: 'ed' }, false).argv).toEqual(['ed']);
    expect(chooseEditor({ PATH: '' }, true)).toEqual({ argv: ['vi'], from: 'fallback' });
    expect(() => chooseEditor({ EDITOR: ' ', PATH: '' }, false)).toThrow(/no editor: set EDITOR or VISUAL/);
  });
});

const python = requireTool('python3', 'the terminal re-open test (a pseudo-terminal)');

describe.skipIf(!python)('secrets edit on a terminal', { timeout: 120_000 }, () => {
  for (const [answer, code] of [
    ['y', 0],
    ['n', 2],
  ] as const) {
    it(`a refused edit, "${answer}" at "re-open the editor?": ${code ? 'abandoned' : 'fixed and written'}`, async () => {
      const f = await fixture();
      const before = readFileSync(f.file);
      // A refused edit, then the answer at "re-open the editor?".
      const r = await runScriptInPty({
        python: python as string,
        prompt: 're-open the editor?',
        answer,
        script: 'secrets.ts',
        args: ['edit', '--secrets-file', f.file],
        env: f.env([
          // A trailing blank (malformed), which the second run takes away.
          's/^REDIS_PASSWORD: canary0redis0a\\(.*\\)$/REDIS_PASSWORD: "canary5redis5b\\1 "/',
          's/ "$/"/',
        ]),
      });
      const shown = String(r.stdout);
      expect(r.exitCode, shown).toBe(code);
      expect(shown).toMatch(/REDIS_PASSWORD: malformed/);
      if (code === 0) {
        expect(shown).toMatch(/changed\s+REDIS_PASSWORD \(32 chars/);
        expect((await f.decrypt()).REDIS_PASSWORD).toBe(EDITED_REDIS);
        expectPathOnly(f, 2);
      } else {
        expect(readFileSync(f.file)).toEqual(before);
        expectPathOnly(f, 1);
      }
      expectNoTrace(f, { stdout: shown, stderr: String(r.stderr) });
    });
  }

  /** `secrets edit` with neither EDITOR nor VISUAL, on a terminal (stdout to `stdoutFile` if given). */
  const noEditorOnTerminal = (f: Fixture, stdoutFile?: string) =>
    runScriptInPty({
      python: python as string,
      prompt: 'never shown',
      answer: '',
      script: 'secrets.ts',
      args: ['edit', '--secrets-file', f.file],
      env: f.noEditorEnv(),
      ...(stdoutFile ? { stdoutFile } : {}),
    });

  it('neither EDITOR nor VISUAL on a terminal: the fallback is named on stderr before it starts', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await noEditorOnTerminal(f);
    const shown = String(r.stdout);
    expect(r.exitCode, shown).toBe(0);
    const named = shown.indexOf('warning: EDITOR is not set: opening vim');
    expect(named, shown).toBeGreaterThanOrEqual(0);
    expect(shown.indexOf('FALLBACK-EDITOR-STARTED')).toBeGreaterThan(named);
    expect(shown).toMatch(/no changes; nothing written/);
    expect(readFileSync(f.file)).toEqual(before);
    expectNoTrace(f, { stdout: shown, stderr: String(r.stderr) });
  });

  it('neither EDITOR nor VISUAL, stdin a terminal but stdout a file: exit 2, no editor, nothing of the file in it', async () => {
    const f = await fixture();
    const before = readFileSync(f.file);
    const r = await noEditorOnTerminal(f, join(f.dir, 'stdout.log'));
    const shown = String(r.stdout);
    expect(r.exitCode, shown).toBe(2);
    expect(shown).toMatch(/error: no editor: set EDITOR or VISUAL/);
    expect(existsSync(join(f.log, 'fallback-ran'))).toBe(false);
    expect(readFileSync(f.file)).toEqual(before);
    // expectNoTrace reads every file under the fixture, the redirected stdout too.
    expectNoTrace(f, { stdout: shown, stderr: String(r.stderr) });
  });
});
