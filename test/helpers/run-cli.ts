import { resolve } from 'node:path';
import { execa } from 'execa';

export const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..');

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a project script the way operators do (`node --import tsx scripts/X.ts`), with exactly `env`. */
export async function runScript(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  opts: { input?: string; cwd?: string } = {},
): Promise<CliRun> {
  const result = await execa(
    process.execPath,
    ['--import', 'tsx', resolve(PROJECT_ROOT, 'scripts', script), ...args],
    {
      env,
      extendEnv: false,
      reject: false,
      input: opts.input ?? '',
      cwd: opts.cwd ?? PROJECT_ROOT,
      timeout: 60_000,
    },
  );
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}
