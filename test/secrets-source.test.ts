/**
 * Every wait on the way to the secrets is bounded: the sops binary and SOPS_AGE_KEY_CMD get a
 * deadline (SECRETS_FLOW_SOPS_TIMEOUT) and are killed when it passes, and a FIFO, a device, a
 * directory or an oversized file given as the secrets file is refused before it is opened.
 * The stand-ins record their pid, so each test can check that nothing is left running.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, WorkError } from '../scripts/lib/core/errors.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { findOnPath } from '../scripts/lib/exec/which.ts';
import { encryptSops, findAgeIdentities } from '../scripts/lib/secrets/sops/index.ts';
import { loadSecrets } from '../scripts/lib/secrets/source.ts';
import { type BootstrapFixture, findLeaks, makeBootstrapFixture } from './helpers/bootstrap-fixture.ts';
import { alive } from './helpers/process.ts';
import { runScript } from './helpers/run-cli.ts';

let fx: BootstrapFixture;
beforeAll(async () => {
  fx = await makeBootstrapFixture();
});
afterAll(() => {
  // A stand-in still alive means the test that started it failed; never leave one behind.
  for (const pidFile of pidFiles) {
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(fx.dir, { recursive: true, force: true });
});

const pidFiles: string[] = [];
const SLEEP = findOnPath('sleep') ?? '/bin/sleep';

/** A program that records its pid and then never finishes (exec: the recorded pid is the one that hangs). */
function hangingProgram(name: string): { path: string; pid: () => number } {
  const path = join(fx.dir, name);
  const pidFile = `${path}.pid`;
  writeFileSync(path, `#!/bin/sh\necho $$ > '${pidFile}'\nexec '${SLEEP}' 600\n`, { mode: 0o700 });
  pidFiles.push(pidFile);
  return { path, pid: () => Number(readFileSync(pidFile, 'utf8').trim()) };
}

/**
 * A shell script that forks a never-ending child instead of exec'ing it (as wrapper scripts do): the
 * child inherits stdout and stderr, so killing the shell alone leaves the pipes open and the wait hanging.
 */
function forkingProgram(name: string): { path: string; expectAllGone: () => Promise<void> } {
  const path = join(fx.dir, name);
  const pidFile = `${path}.pid`;
  const childPidFile = `${path}.child.pid`;
  const script = `#!/bin/sh\necho $$ > '${pidFile}'\n'${SLEEP}' 600 &\necho $! > '${childPidFile}'\nwait\n`;
  writeFileSync(path, script, { mode: 0o700 });
  pidFiles.push(pidFile, childPidFile);
  return {
    path,
    async expectAllGone() {
      for (const file of [pidFile, childPidFile]) {
        const pid = Number(readFileSync(file, 'utf8'));
        // A signalled process dies asynchronously: wait (bounded) for the state, not for a time.
        for (let i = 0; i < 250 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
        expect(alive(pid), file).toBe(false);
      }
    },
  };
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: fx.binDir,
    HOME: fx.home,
    TMPDIR: fx.tmp,
    SOPS_AGE_KEY_FILE: fx.keyFile,
    NO_COLOR: '1',
    ...extra,
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

const load = (secretsFile: string, extra: Record<string, string> = {}) =>
  loadSecrets({
    secretsFile,
    fromEnv: false,
    required: [],
    env: env(extra),
    executor: new LocalExecutor(),
  });

describe('the sops binary has a deadline', () => {
  it('is killed when SECRETS_FLOW_SOPS_TIMEOUT passes, with a message naming sops, the file, the time and the fix', async () => {
    const sops = hangingProgram('sops-hangs');
    const started = performance.now();
    const err = await rejection(load(fx.secretsFile, { SOPS: sops.path, SECRETS_FLOW_SOPS_TIMEOUT: '0.5' }));
    console.log(`hanging sops stopped after ${Math.round(performance.now() - started)} ms`);
    expect(err).toBeInstanceOf(WorkError);
    expect(err.message).toContain(
      `sops (${sops.path}) did not finish decrypting ${fx.secretsFile} within 0.5 s`,
    );
    expect((err as WorkError).hint).toMatch(/SECRETS_FLOW_SOPS_TIMEOUT/);
    expect(alive(sops.pid())).toBe(false);
  });

  it('kills a wrapper script and the child it forked, which holds the pipes open', async () => {
    const wrapper = forkingProgram('sops-wrapper');
    const err = await rejection(
      load(fx.secretsFile, { SOPS: wrapper.path, SECRETS_FLOW_SOPS_TIMEOUT: '0.5' }),
    );
    expect(err.message).toContain('within 0.5 s');
    await wrapper.expectAllGone();
  });

  it('through the CLI: exit 1, the message on stderr, no stack, nothing left running', async () => {
    const sops = hangingProgram('sops-hangs-cli');
    const r = await runScript(
      'secrets.ts',
      ['check', '--secrets-file', fx.secretsFile],
      env({ SOPS: sops.path, SECRETS_FLOW_SOPS_TIMEOUT: '1' }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /^error: sops \(.*sops-hangs-cli\) did not finish decrypting .* within 1 s and was killed/m,
    );
    expect(r.stderr).toMatch(/^hint: .*SECRETS_FLOW_SOPS_TIMEOUT/m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(findLeaks(r.stdout + r.stderr, fx.values)).toEqual([]);
    expect(alive(sops.pid())).toBe(false);
  });

  it('refuses a SECRETS_FLOW_SOPS_TIMEOUT that is not a number of seconds', async () => {
    const sops = hangingProgram('sops-never-run');
    const err = await rejection(load(fx.secretsFile, { SOPS: sops.path, SECRETS_FLOW_SOPS_TIMEOUT: 'soon' }));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe('SECRETS_FLOW_SOPS_TIMEOUT must be a number of seconds above 0, not "soon"');
  });
});

describe('warnings when the sops binary decrypts', () => {
  it('a SOPS file others can read and mac_only_encrypted are reported as with the native decryptor', async () => {
    const file = join(fx.dir, 'mac-only.sops.yaml');
    const doc = { HCLOUD_TOKEN: fx.values.HCLOUD_TOKEN ?? '' };
    writeFileSync(
      file,
      await encryptSops([doc], { recipients: [fx.recipient], format: 'yaml', macOnlyEncrypted: true }),
    );
    chmodSync(file, 0o644);
    // A stand-in that answers as `sops --decrypt --output-type json` would, with a value of its own.
    const sops = join(fx.dir, 'sops-json');
    writeFileSync(sops, `#!/bin/sh\necho '{"HCLOUD_TOKEN": "from-the-stand-in"}'\n`, { mode: 0o700 });
    const loaded = await load(file, { SOPS: sops });
    expect(loaded.kind).toBe('sops-binary');
    expect(loaded.values.HCLOUD_TOKEN).toBe('from-the-stand-in');
    expect(loaded.warnings).toEqual([
      `the SOPS file ${file} is open to its group and all other users (mode 0644); fix: chmod 600 ${file}`,
      `${file} sets mac_only_encrypted: its MAC covers only the encrypted values, so its unencrypted values could be changed, added, removed or reordered without any error (sops behaves the same)`,
    ]);
  });
});

describe('the MAC when the sops binary decrypts', () => {
  it('is never skipped: a sops that finds a MAC mismatch refuses, and no option asks it to ignore the MAC', async () => {
    // A stand-in that answers like sops on a tampered file: exit 51 ("MAC mismatch"), unless told to
    // skip the check (`--ignore-mac`), when it prints the values.
    const sops = join(fx.dir, 'sops-tampered');
    writeFileSync(
      sops,
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = --ignore-mac ] && { echo '{"HCLOUD_TOKEN": "tampered"}'; exit 0; }; done\n` +
        `echo 'MAC mismatch. File has 0123 as MAC, but computed 4567' >&2\nexit 51\n`,
      { mode: 0o700 },
    );
    const err = await rejection(load(fx.secretsFile, { SOPS: sops }));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toContain('the MAC does not match: the file was changed outside sops');
  });
});

describe('SOPS_AGE_KEY_CMD has a deadline', () => {
  /** The age identities found with only SOPS_AGE_KEY_CMD set, under a half-second deadline. */
  const keysFromCommand = (command: string) =>
    findAgeIdentities({
      HOME: fx.home,
      PATH: fx.binDir,
      SOPS_AGE_KEY_CMD: command,
      SECRETS_FLOW_SOPS_TIMEOUT: '0.5',
    });

  it('is killed when SECRETS_FLOW_SOPS_TIMEOUT passes, and the problem names the variable', async () => {
    const cmd = hangingProgram('key-cmd-hangs');
    const found = await keysFromCommand(cmd.path);
    expect(found.identities).toEqual([]);
    expect(found.problems).toContain(
      `SOPS_AGE_KEY_CMD (${cmd.path}) timed out after 0.5 s and was killed (if it is only slow, raise SECRETS_FLOW_SOPS_TIMEOUT)`,
    );
    expect(alive(cmd.pid())).toBe(false);
  });

  it('kills a wrapper command and the child it forked', async () => {
    const wrapper = forkingProgram('key-cmd-wrapper');
    const found = await keysFromCommand(wrapper.path);
    expect(found.problems.join('\n')).toContain('timed out after 0.5 s and was killed');
    await wrapper.expectAllGone();
  });

  it('through the CLI: the native decryptor says so when no other key is found (exit 2)', async () => {
    const cmd = hangingProgram('key-cmd-hangs-cli');
    const { SOPS_AGE_KEY_FILE: _unused, ...noKeyFile } = env();
    const r = await runScript('sops.ts', ['decrypt', fx.secretsFile], {
      ...noKeyFile,
      SOPS_AGE_KEY_CMD: cmd.path,
      SECRETS_FLOW_SOPS_TIMEOUT: '1',
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`SOPS_AGE_KEY_CMD (${cmd.path}) timed out after 1 s and was killed`);
    expect(r.stdout).toBe('');
    expect(alive(cmd.pid())).toBe(false);
  });
});

describe('an age keys file that is not a regular file is not opened', () => {
  it('SOPS_AGE_KEY_FILE naming a FIFO or /dev/zero is reported at once as a problem', async () => {
    const fifo = join(fx.dir, 'keys.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [path, kind] of [
      [fifo, 'a FIFO'],
      ['/dev/zero', 'a character device'],
    ] as const) {
      const found = await findAgeIdentities({ HOME: fx.home, SOPS_AGE_KEY_FILE: path });
      expect(found.identities).toEqual([]);
      expect(found.problems).toContain(`SOPS_AGE_KEY_FILE=${path} is ${kind}, not a regular file`);
    }
  });
});

describe('the secrets file must be a regular file of a sane size', () => {
  const cases: [string, () => string, RegExp][] = [
    [
      'a FIFO (never opened: opening one blocks until a writer comes)',
      () => {
        const fifo = join(fx.dir, 'fifo.sops.yaml');
        execFileSync('mkfifo', [fifo]);
        return fifo;
      },
      /fifo\.sops\.yaml is a FIFO, not a regular file$/,
    ],
    [
      'a directory',
      () => {
        const dir = join(fx.dir, 'dir.sops.yaml');
        mkdirSync(dir);
        return dir;
      },
      /dir\.sops\.yaml is a directory, not a regular file$/,
    ],
    [
      'a device (/dev/zero never ends)',
      () => '/dev/zero',
      /^\/dev\/zero is a character device, not a regular file$/,
    ],
    [
      'a file over 16 MiB',
      () => {
        const big = join(fx.dir, 'big.sops.yaml');
        writeFileSync(big, '');
        truncateSync(big, 17 * 1024 * 1024);
        return big;
      },
      /big\.sops\.yaml is 17825792 bytes, larger than a SOPS file may be here \(limit: 16777216 bytes, 16 MiB\)$/,
    ],
  ];

  for (const [name, make, message] of cases) {
    it(`refuses ${name} at once with exit 2`, async () => {
      const path = make();
      // The native decryptor and the sops binary path both check before anything reads the file.
      const native = await rejection(load(path));
      expect(native).toBeInstanceOf(InputError);
      expect(native.message).toMatch(message);
      const viaSops = await rejection(
        load(path, { SOPS: hangingProgram(`sops-unused-${pidFiles.length}`).path }),
      );
      expect(viaSops.message).toMatch(message);
      const r = await runScript('sops.ts', ['decrypt', path], env());
      expect(r.exitCode).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`^error: .*${message.source.replace(/^\^/, '')}`));
    });
  }
});

describe('a key source that failed is named when another key opens the file', () => {
  const ageKey = () => readFileSync(fx.keyFile, 'utf8');
  /** The warning's line for a failed source, with the file another key opened; never key material. */
  const passedOver = (stderr: string, source: string) => {
    expect(stderr).not.toContain(ageKey().match(/AGE-SECRET-KEY-1\S+/)?.[0]);
    return stderr.split('\n').filter((l) => l.startsWith(`warning: ${source}`));
  };

  it('a SOPS_AGE_KEY_CMD that timed out, beside a good SOPS_AGE_KEY_FILE: decrypted, and stderr says it timed out', async () => {
    const cmd = hangingProgram('key-cmd-hangs-beside-file');
    for (const [script, args] of [
      ['sops.ts', ['decrypt', fx.secretsFile]],
      ['create-bootstrap-secrets.ts', ['--dry-run', '--secrets-file', fx.secretsFile]],
    ] as const) {
      const r = await runScript(
        script,
        [...args],
        env({ SOPS_AGE_KEY_CMD: cmd.path, SECRETS_FLOW_SOPS_TIMEOUT: '1' }),
      );
      expect(r.exitCode, `${script}: ${r.stderr}`).toBe(0);
      expect(passedOver(r.stderr, 'SOPS_AGE_KEY_CMD')).toEqual([
        `warning: SOPS_AGE_KEY_CMD (${cmd.path}) timed out after 1 s and was killed (if it is only slow, raise SECRETS_FLOW_SOPS_TIMEOUT): ignored (another age key opened ${fx.secretsFile})`,
      ]);
      expect(alive(cmd.pid())).toBe(false);
    }
  });

  it('a SOPS_AGE_KEY_CMD that failed is named with its exit status', async () => {
    const cmd = join(fx.dir, 'key-cmd-fails');
    writeFileSync(cmd, '#!/bin/sh\necho "no token" >&2\nexit 3\n', { mode: 0o700 });
    const r = await runScript('sops.ts', ['decrypt', fx.secretsFile], env({ SOPS_AGE_KEY_CMD: cmd }));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(passedOver(r.stderr, 'SOPS_AGE_KEY_CMD')).toEqual([
      `warning: SOPS_AGE_KEY_CMD (${cmd}) exited with code 3: ignored (another age key opened ${fx.secretsFile})`,
    ]);
  });

  it('a SOPS_AGE_KEY_FILE that cannot be read, beside a good SOPS_AGE_KEY: named with the reason', async () => {
    // Root reads any mode, so the file is made unreadable by a symlink loop.
    const loop = join(fx.dir, 'keys-loop.txt');
    symlinkSync(loop, loop);
    const r = await runScript(
      'sops.ts',
      ['decrypt', fx.secretsFile],
      env({ SOPS_AGE_KEY_FILE: loop, SOPS_AGE_KEY: ageKey() }),
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(passedOver(r.stderr, 'SOPS_AGE_KEY_FILE')).toEqual([
      `warning: SOPS_AGE_KEY_FILE=${loop} cannot be read (too many levels of symbolic links, ELOOP): ignored (another age key opened ${fx.secretsFile})`,
    ]);
  });

  it('with the sops binary too: the key file it passed over in silence is named', async () => {
    const loop = join(fx.dir, 'keys-loop-binary.txt');
    symlinkSync(loop, loop);
    // A stand-in that decrypts as sops would with another key; it never reads the loop.
    const sops = join(fx.dir, 'sops-json-ok');
    writeFileSync(sops, `#!/bin/sh\necho '{"HCLOUD_TOKEN": "from-the-stand-in"}'\n`, { mode: 0o700 });
    const loaded = await load(fx.secretsFile, {
      SOPS: sops,
      SOPS_AGE_KEY_FILE: loop,
      SOPS_AGE_KEY: ageKey(),
    });
    expect(loaded.kind).toBe('sops-binary');
    expect(loaded.warnings).toContain(
      `SOPS_AGE_KEY_FILE=${loop} cannot be read (too many levels of symbolic links, ELOOP): ignored (another age key opened ${fx.secretsFile})`,
    );
  });
});
