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
