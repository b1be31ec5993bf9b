/**
 * The README's main command, end to end: `npm run demo` runs the whole flow in a temporary directory
 * and removes it afterwards.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runScript } from './helpers/run-cli.ts';

describe('the sandbox demo', () => {
  it('runs every step and cleans up after itself', async () => {
    const r = await runScript('demo.ts', [], {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NO_COLOR: '1',
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    for (const n of [1, 2, 3, 4, 5, 6, 7]) expect(r.stdout).toContain(`[${n}/7]`);
    expect(r.stdout).toContain('objects changed by the second run: 0');
    expect(r.stdout).toContain('bifrost is up');
    expect(r.stdout).toMatch(/k8s infisical\/infisical-secrets/);
    expect(r.stdout).toMatch(/DB_PASSWORD \(\d+ chars, hmac:[0-9a-f]{8}\)/);
    const dir = /secrets-flow sandbox in (\S+)/.exec(r.stdout)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir as string)).toBe(false);
    const seconds = Number(/done in ([\d.]+) s/.exec(r.stdout)?.[1]);
    console.log(`demo took ${seconds} s (goal: under 20 s on these machines)`);
  }, 60_000);
});
