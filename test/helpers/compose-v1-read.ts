/**
 * Env files read back by the real compose v1 (Debian's docker-compose 1.29, which CI installs) in one
 * `docker-compose config` call: each service gets one env file as `env_file:`, and the project `.env` feeds
 * `${NAME}` interpolation into an extra service `dotenv` (its variable `I_NAME`). No daemon is needed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp.ts';

const PYYAML_TO_JSON = 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))';

export interface ComposeV1Reading {
  /** Each service's environment as compose would start it (`$$` in the printed config back to `$`). */
  env: Record<string, Record<string, string>>;
  /** What python-dotenv warned, e.g. "could not parse statement starting at line 3". */
  stderr: string;
}

export function readWithComposeV1(
  compose: string,
  input: { envFiles: Record<string, string>; dotEnv?: { text: string; names: readonly string[] } },
): ComposeV1Reading {
  const dir = tempDir('sf-dc1-');
  const services: string[] = [];
  for (const [service, text] of Object.entries(input.envFiles)) {
    writeFileSync(join(dir, `${service}.env`), text, { mode: 0o600 });
    services.push(`  ${service}:\n    image: busybox\n    env_file: [${service}.env]`);
  }
  if (input.dotEnv) {
    writeFileSync(join(dir, '.env'), input.dotEnv.text, { mode: 0o600 });
    const lines = input.dotEnv.names.map((n) => `      I_${n}: \${${n}}`);
    services.push(`  dotenv:\n    image: busybox\n    environment:\n${lines.join('\n')}`);
  }
  writeFileSync(join(dir, 'docker-compose.yml'), `services:\n${services.join('\n')}\n`);
  // Only PATH: a variable of the test's own environment must not stand in for one the file failed to set.
  const run = spawnSync(compose, ['config'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH } });
  if (run.status !== 0) throw new Error(`docker-compose config failed (${run.status}): ${run.stderr}`);
  // Read with the PyYAML that printed it: YAML 1.2 reads its `0o17` as a number and its U+2028 as a blank.
  const json = spawnSync('python3', ['-c', PYYAML_TO_JSON], { input: run.stdout, encoding: 'utf8' });
  if (json.status !== 0) throw new Error(`reading the printed config failed: ${json.stderr}`);
  const printed = JSON.parse(json.stdout).services as Record<
    string,
    { environment?: Record<string, unknown> }
  >;
  const env: Record<string, Record<string, string>> = {};
  for (const [service, s] of Object.entries(printed)) {
    env[service] = Object.fromEntries(
      Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v).replaceAll('$$', '$')]),
    );
  }
  return { env, stderr: run.stderr };
}
