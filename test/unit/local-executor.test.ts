import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { formatCommand, shellQuote } from '../../scripts/lib/exec/executor.ts';
import { LocalExecutor } from '../../scripts/lib/exec/local.ts';
import { tempDir } from '../helpers/temp.ts';

const local = new LocalExecutor();

describe('LocalExecutor', () => {
  it('passes argv without a shell, stdin as given, and returns output and exit code', async () => {
    const r = await local.run({
      argv: ['/bin/sh', '-c', 'read line; echo "got:$line:$1"; echo err >&2; exit 3', 'sh', '$HOME;`x`'],
      input: 'from stdin\n',
    });
    expect(r).toMatchObject({
      exitCode: 3,
      stdout: 'got:from stdin:$HOME;`x`\n',
      stderr: 'err\n',
      timedOut: false,
    });
  });

  it('adds env for the one process', async () => {
    const r = await local.run({
      argv: ['/bin/sh', '-c', 'printf %s "$ONLY_HERE"'],
      env: { ONLY_HERE: 'yes' },
    });
    expect(r.stdout).toBe('yes');
  });

  it('a withheld variable reaches only the command that names it (passEnv), its own env on top', async () => {
    const names = ['REDIS_PASSWORD', 'SOPS_AGE_KEY', 'ONLY_HERE'];
    const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
    Object.assign(process.env, {
      REDIS_PASSWORD: 'canary-redis-in-env',
      SOPS_AGE_KEY: 'canary-age-key-in-env',
      ONLY_HERE: 'the-parent-s',
    });
    // REDIS_PASSWORD is a schema key: withheld once the schema is loaded, as in every command.
    await import('../../scripts/lib/secrets/schema.ts');
    const show = 'printf "%s|%s|%s" "${REDIS_PASSWORD-unset}" "${SOPS_AGE_KEY-unset}" "${ONLY_HERE-unset}"';
    try {
      expect((await local.run({ argv: ['/bin/sh', '-c', show] })).stdout).toBe('unset|unset|the-parent-s');
      const given = await local.run({
        argv: ['/bin/sh', '-c', show],
        passEnv: ['SOPS_AGE_KEY'],
        env: { ONLY_HERE: 'yes', REDIS_PASSWORD: 'its-own' },
      });
      expect(given.stdout).toBe('its-own|canary-age-key-in-env|yes');
    } finally {
      for (const n of names)
        if (saved[n] === undefined) delete process.env[n];
        else process.env[n] = saved[n];
    }
  });

  it('reports a program that does not exist', async () => {
    const r = await local.run({ argv: ['/nonexistent/prog'] });
    expect(r.spawnError).toMatch(/not found/);
    expect(r.exitCode).not.toBe(0);
  });

  it('kills a process at its deadline', async () => {
    const r = await local.run({ argv: ['/bin/sleep', '5'], timeoutMs: 200 });
    expect(r.timedOut).toBe(true);
  });
});

describe('shellQuote', () => {
  it('leaves plain words alone and quotes everything else so sh reads it back', async () => {
    expect(formatCommand(['kubectl', 'apply', '-f', '-'])).toBe('kubectl apply -f -');
    const odd = `it's $HOME "x" \`y\` ;|&`;
    expect(shellQuote(odd)).toBe(`'it'\\''s $HOME "x" \`y\` ;|&'`);
    const r = await local.run({ argv: ['/bin/sh', '-c', `printf %s ${shellQuote(odd)}`] });
    expect(r.stdout).toBe(odd);
  });
});

describe('LocalExecutor files', () => {
  it('writes atomically with the mode from creation, reads back, stats, and reports missing files', async () => {
    const { readdirSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = tempDir('le-');
    const path = join(dir, '.secrets.env');
    const oldUmask = process.umask(0);
    try {
      await local.files.writeFileAtomic(path, 'A=1\n', 0o600);
      await local.files.writeFileAtomic(path, 'A=2\n', 0o600);
    } finally {
      process.umask(oldUmask);
    }
    expect(await local.files.readFile(path)).toBe('A=2\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await local.files.stat(path))?.mode).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['.secrets.env']);
    expect(await local.files.readFile(join(dir, 'nope'))).toBeUndefined();
    expect(await local.files.stat(join(dir, 'nope'))).toBeUndefined();
  });

  it('creates the file with its mode: with every later chmod of a file handle a no-op, it is still 0600', async () => {
    const { mkdtempSync, rmSync, statSync } = await import('node:fs');
    const { open } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'le-born-'));
    const probe = await open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { chmod: (mode: number) => Promise<void> };
    await probe.close();
    const chmod = proto.chmod;
    proto.chmod = async () => {};
    const oldUmask = process.umask(0);
    try {
      await local.files.writeFileAtomic(join(dir, '.secrets.env'), 'A=1\n', 0o600);
      expect(statSync(join(dir, '.secrets.env')).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(oldUmask);
      proto.chmod = chmod;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('streams output as it arrives', async () => {
    const chunks: string[] = [];
    await local.run({
      argv: ['/bin/sh', '-c', 'echo a; echo b >&2'],
      onOutput: (c, s) => chunks.push(`${s}:${c}`),
    });
    expect(chunks.sort()).toEqual(['stderr:b\n', 'stdout:a\n']);
  });
});

describe('LocalExecutor on zx/core', () => {
  it('hands every argv element to the program word for word, shell syntax included', async () => {
    const odd = ['', "it's", 'a\nb', '$(touch /tmp/never)', '`x`;|&>', '*', '~', '\\'];
    const r = await local.run({
      argv: ['/bin/sh', '-c', 'for a in "$@"; do printf "[%s]" "$a"; done', 'sh', ...odd],
    });
    expect(r.stdout).toBe(odd.map((a) => `[${a}]`).join(''));
  });

  it('keeps a UTF-8 character whole when it arrives split across two chunks', async () => {
    // The two bytes of "é" in two writes, apart: two chunks for the reader.
    const r = await local.run({
      argv: [
        '/bin/sh',
        '-c',
        "printf '\\303'; sleep 0.2; printf '\\251'; printf '\\303' >&2; sleep 0.2; printf '\\251' >&2",
      ],
    });
    expect(r.stdout).toBe('é');
    expect(r.stderr).toBe('é');
  });

  it('closes stdin when there is no input, so a program that reads it ends', async () => {
    const r = await local.run({ argv: ['cat'], timeoutMs: 20_000 });
    expect(r).toMatchObject({ exitCode: 0, stdout: '', timedOut: false });
  });

  it('reports a file that is not executable as never started', async () => {
    const { rmSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = tempDir('le-');
    try {
      writeFileSync(join(dir, 'prog'), '#!/bin/sh\necho hi\n', { mode: 0o644 });
      const r = await local.run({ argv: [join(dir, 'prog')] });
      expect(r.spawnError).toMatch(/not executable/);
      const bare = await local.run({ argv: ['no-such-program-here'], env: { PATH: dir } });
      expect(bare.spawnError).toBe('no-such-program-here: not found');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kills the whole tree at the deadline, not only the first process', async () => {
    const chunks: string[] = [];
    const r = await local.run({
      argv: ['/bin/sh', '-c', 'sleep 30 & echo $!; wait'],
      // Long enough that the background sleep exists when the deadline passes, even on a busy machine.
      timeoutMs: 2000,
      onOutput: (c) => chunks.push(c),
    });
    expect(r.timedOut).toBe(true);
    const grandchild = Number(chunks.join('').trim());
    expect(grandchild).toBeGreaterThan(0);
    // SIGKILL is delivered; on a busy machine the process may take a moment to be scheduled and die.
    await expect.poll(() => running(grandchild), { timeout: 10_000 }).toBe(false);
  });
});

/** Alive and not a zombie waiting for init to reap it. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

describe("zx's log hook", () => {
  const CANARY = 'zx-canary-7f3a9c1e5b2d';

  it('passes everything zx prints through the redactor, even a secret split across chunks', async () => {
    const { redactor } = await import('../../scripts/lib/core/redact.ts');
    const { loadZx, LocalExecutor: Local } = await import('../../scripts/lib/exec/local.ts');
    redactor.register(CANARY, 'ZX_CANARY');
    // Everything written to stderr meanwhile: zx's own log, had it not been replaced, would write there raw.
    const printed: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk));
      return true;
    });
    try {
      // A verbose executor: zx echoes the command and its output, through the hook.
      const verbose = new Local({ verbose: true });
      const r = await verbose.run({
        argv: ['/bin/sh', '-c', 'cat; printf "%s\\n" "$1" >&2', 'sh', CANARY],
        input: `${CANARY}\n`,
      });
      expect(r.stdout).toBe(`${CANARY}\n`);
      // What the run echoed reached stderr, redacted.
      const echoed = printed.join('');
      expect(echoed).toContain('[REDACTED:ZX_CANARY]');
      expect(echoed).not.toContain(CANARY);
      // The hook zx was given, on its own: the canary arrives in two chunks, and in a retry's error.
      const zx = await loadZx();
      const hook = zx.$.log;
      hook({ kind: 'stdout', data: Buffer.from(`x ${CANARY.slice(0, 9)}`), verbose: true, id: 't1' });
      hook({ kind: 'stdout', data: Buffer.from(`${CANARY.slice(9)} y\n`), verbose: true, id: 't1' });
      hook({ kind: 'custom', data: `custom ${CANARY}`, verbose: true } as never);
      zx.$.log({ kind: 'cmd', cmd: `echo ${CANARY}`, verbose: true, id: 't2' } as never);
    } finally {
      write.mockRestore();
    }
    const all = printed.join('');
    expect(all).toContain('[REDACTED:ZX_CANARY]');
    expect(all).not.toContain(CANARY);
    expect(all).not.toContain(CANARY.slice(0, 12));
    expect(all).not.toContain(Buffer.from(CANARY).toString('base64').slice(0, 16));
  });
});
