import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { scriptArgv } from './script-bundles.ts';

export const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..');

// `--import tsx` resolves from the working directory; a run elsewhere (an operator's repository) names it.
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a project script as its own process, with exactly `env`: its test bundle (script-bundles.ts), or the
 * way operators do (`node --import tsx scripts/X.ts`) where the run built none or `asOperators` asks for it.
 */
export async function runScript(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  opts: { input?: string; cwd?: string; asOperators?: boolean } = {},
): Promise<CliRun> {
  const tsx = opts.cwd ? TSX : 'tsx';
  const start = opts.asOperators
    ? ['--import', tsx, resolve(PROJECT_ROOT, 'scripts', script)]
    : scriptArgv(script, tsx);
  const result = await execa(process.execPath, [...start, ...args], {
    env,
    extendEnv: false,
    reject: false,
    input: opts.input ?? '',
    cwd: opts.cwd ?? PROJECT_ROOT,
    timeout: 60_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}
