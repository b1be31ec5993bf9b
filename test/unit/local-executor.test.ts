import { describe, expect, it } from 'vitest';
import { formatCommand, shellQuote } from '../../scripts/lib/exec/executor.ts';
import { LocalExecutor } from '../../scripts/lib/exec/local.ts';

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
    const { mkdtempSync, readdirSync, statSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'le-'));
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

  it('streams output as it arrives', async () => {
    const chunks: string[] = [];
    await local.run({
      argv: ['/bin/sh', '-c', 'echo a; echo b >&2'],
      onOutput: (c, s) => chunks.push(`${s}:${c}`),
    });
    expect(chunks.sort()).toEqual(['stderr:b\n', 'stdout:a\n']);
  });
});
