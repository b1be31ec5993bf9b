/**
 * bifrost: recovery commands for the Bifrost VPS, over the same SSH options as provision-bifrost.
 *   status   every plan service's container state and health (one `docker inspect`)
 *   logs     `docker logs --tail N SERVICE`, redacted with the host's own secret values
 *   token    mint NB_IDP_MGMT_TOKEN again, re-render NetBird's config, recreate netbird-server if changed
 *   render   re-render NetBird's config, recreate netbird-server if it changed
 *   verify   compare the host's bundle and secret fingerprints with what a provision would upload now
 *   unlock   show and clear the host lock a crashed run left behind
 *   check-bundle  read a local bundle against the plan and the pinned images' facts (no host, no secret)
 * token and render run the bootstrap engine restricted to their steps, so they share its convergence
 * rules (a service is recreated only when its inputs changed) instead of re-implementing them.
 */

import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  DEPLOYED_FILE,
  type DeployedRecord,
  GUARDED_SECRETS,
  HostFingerprints,
  readDeployed,
  sameAsRecorded,
} from './lib/bifrost/deployed.ts';
import {
  type ContainerState,
  DEFAULT_BUNDLE_HOST_DIR,
  type DockerCli,
  dockerCliFromFlags,
  inspectContainers,
  isReady,
  logsArgv,
} from './lib/bifrost/docker.ts';
import {
  describePlan,
  type EngineResult,
  formatStatusTable,
  runBifrostBootstrap,
} from './lib/bifrost/engine.ts';
import { parseEnvFile } from './lib/bifrost/env-file.ts';
import { DOT_ENV, hasToken, SECRETS_ENV, sameEnv } from './lib/bifrost/host-state.ts';
import { BIFROST_PLAN, NB_IDP_MGMT_TOKEN, type PlanStep } from './lib/bifrost/plan.ts';
import { buildProvisionInput, DEFAULT_BUNDLE_DIR } from './lib/bifrost/provision-input.ts';
import { BIFROST_CONSUMERS } from './lib/bifrost/render-env.ts';
import {
  MANIFEST,
  type ManifestFiles,
  manifestDigest,
  normalizeRemoteDir,
  parseManifest,
  type SecretDigest,
} from './lib/bifrost/upload.ts';
import { COMMON_OPTIONS, parseCli, parseFlags, runMain } from './lib/cli.ts';
import { EXIT, InputError, WorkError } from './lib/errors.ts';
import type { Executor } from './lib/exec/executor.ts';
import { connectFromFlags, SSH_OPTIONS, type SshFlags } from './lib/exec/ssh-cli.ts';
import type { Output } from './lib/output.ts';
import { fingerprint, redactor } from './lib/redact.ts';
import { runContext, withCleanup } from './lib/run-context.ts';
import { FINGERPRINT_KEY } from './lib/secrets/registry.ts';
import { keysFor } from './lib/secrets/schema.ts';
import { DEFAULT_SECRETS_FILE } from './lib/secrets/source.ts';
import { formatProblems } from './lib/secrets/validate.ts';

const USAGE = 'node --import tsx scripts/bifrost.ts';

const HOST_HELP = `Host (every command):
  --host H             the VPS (required); --port P (22); --user U ($USER)
  --identity F         SSH key file (an encrypted one asks for its passphrase); else ssh-agent
  --known-hosts F      known_hosts file (default ~/.ssh/known_hosts)
  --accept-new         record an unknown host key (like StrictHostKeyChecking=accept-new)
  --remote-dir D       bundle directory on the host (default /etc/bifrost)
  --docker BIN         docker CLI on the host (default docker)
  --compose CMD        compose command on the host (default "docker compose"; "docker-compose" for v1)
  --json               print the result as JSON on stdout (narration goes to stderr)
  --verbose            print every command
  -h, --help           this help`;

const JUST_RECIPES = `Justfile recipes (HOST as for bifrost-up):
  # Bifrost: each service's container state and health
  bifrost-status HOST *ARGS:
      {{tsx}} scripts/bifrost.ts status --host {{HOST}} {{ARGS}}
  # Bifrost: the last log lines of one service, secrets redacted
  bifrost-logs HOST SERVICE *ARGS:
      {{tsx}} scripts/bifrost.ts logs {{SERVICE}} --host {{HOST}} {{ARGS}}
  # Bifrost: mint NB_IDP_MGMT_TOKEN again (recreates netbird-server when its config changes)
  bifrost-token HOST *ARGS:
      {{tsx}} scripts/bifrost.ts token --host {{HOST}} {{ARGS}}
  # Bifrost: render NetBird's config again (recreates netbird-server when it changed)
  bifrost-render HOST *ARGS:
      {{tsx}} scripts/bifrost.ts render --host {{HOST}} {{ARGS}}
  # Bifrost: does the host run what a provision would upload now? (fingerprints only)
  bifrost-verify HOST *ARGS:
      {{tsx}} scripts/bifrost.ts verify --host {{HOST}} --secrets-file {{secrets_file}} {{ARGS}}
  # Bifrost: show and clear a host lock left by a crashed run
  bifrost-unlock HOST *ARGS:
      {{tsx}} scripts/bifrost.ts unlock --host {{HOST}} {{ARGS}}
  # Read the Bifrost bundle against its plan and the pinned images' facts (no host, no secrets)
  bifrost-check-bundle *ARGS:
      {{tsx}} scripts/bifrost.ts check-bundle {{ARGS}}`;

const HELP = `Usage: ${USAGE} COMMAND --host H [options]

Recovery commands for the Bifrost VPS, over one SSH connection each:
  status            each service's container state and health, as a table
  logs SERVICE      the last log lines of a service (--tail N, default 100), secrets redacted
  token             mint NB_IDP_MGMT_TOKEN again, re-render netbird/config.yaml, recreate netbird-server
                    when the config changed
  render            re-render netbird/config.yaml from .secrets.env; recreate netbird-server when it changed
  verify            compare the host's bundle and secret fingerprints with what provision-bifrost would
                    upload now; exit 1 when anything differs
  unlock            show the host lock's holder and clear it (asks first on a terminal; --yes)
  check-bundle      read a local bundle against the plan and the pinned images' facts; no --host,
                    no secrets (exit 2 naming every problem)

${USAGE} COMMAND --help shows each command's options.
token, render and unlock take --dry-run (show what would happen); status, logs and verify change
nothing, and accept --dry-run and --yes as no-ops.

${HOST_HELP}

${JUST_RECIPES}

Exit codes: 0 done, 1 failed while working (or: not healthy / differs, see each command), 2 bad input,
130 interrupted by SIGINT, 143 by SIGTERM.`;

const STATUS_HELP = `Usage: ${USAGE} status --host H [options]

Shows every Bifrost service's container state and health (one \`docker inspect\` of all of them).
Services gated by an optional secret that is not set (netbird-proxy, netbird-agent) are reported as
skipped, not as failures. Changes nothing.

${HOST_HELP}

just: bifrost-status HOST [--json]
Exit codes: 0 every service that should run is running and healthy, 1 one is not (or docker failed),
2 bad input.`;

const LOGS_HELP = `Usage: ${USAGE} logs SERVICE --host H [--tail N] [options]

Prints \`docker logs --tail N SERVICE\` from the host. The values of the host's .secrets.env and .env are
read first (over SFTP) and every one of them is replaced by [REDACTED:NAME] before anything is printed.
SERVICE is one of: ${planServices()
  .map((s) => s.service)
  .join(', ')}.

  --tail N             how many lines (default 100)

${HOST_HELP}

just: bifrost-logs HOST SERVICE [--tail N]
Exit codes: 0 done, 1 docker failed (no such container), 2 unknown service or bad input.`;

const TOKEN_HELP = `Usage: ${USAGE} token --host H [options]

Mints netbird-mgmt-token again: removes the NB_IDP_MGMT_TOKEN line from the host's .secrets.env (atomic,
0600), runs \`docker exec -i authentik-server ak shell\` with the script on stdin, stores the new token,
re-renders netbird/config.yaml and recreates netbird-server only if its config changed. Use it after
Authentik's database was restored or the token was deleted in Authentik. Takes the host lock.

  --lock-wait S        wait up to S seconds for another run's lock (default 0)
  --dry-run            say what would run; change nothing

${HOST_HELP}

just: bifrost-token HOST
Exit codes: 0 done, 1 a step failed (the token line stays removed: run again once fixed), 2 bad input.`;

const RENDER_HELP = `Usage: ${USAGE} render --host H [options]

Renders netbird/config.yaml again from the host's .secrets.env and its template, and recreates
netbird-server only when the rendered config changed (after a hand edit of NB_RELAY_SECRET, for example).
Takes the host lock.

  --lock-wait S        wait up to S seconds for another run's lock (default 0)
  --dry-run            say what would run; change nothing

${HOST_HELP}

just: bifrost-render HOST
Exit codes: 0 done, 1 a step failed, 2 bad input (no NB_IDP_MGMT_TOKEN yet: run token first).`;

const VERIFY_HELP = `Usage: ${USAGE} verify --host H [options]

Compares the host with what \`just bifrost-up\` would upload now: each bundle file (the local bundle and the
env files rendered in memory from the secrets, against the host's ${MANIFEST} and the files themselves)
is same / differs / missing on host / only on host; each Bifrost secret is same / differs by its SHA-256
fingerprint in the host's ${DEPLOYED_FILE} (never a value). Changes nothing.

  --secrets-file F     SOPS file (default ${DEFAULT_SECRETS_FILE}); --from-env takes the environment
  --bundle DIR         the local bundle (default cloud/bifrost of this checkout)

${HOST_HELP}

just: bifrost-verify HOST
Exit codes: 0 everything the same, 1 something differs (run: just bifrost-up HOST), 2 bad input.`;

const UNLOCK_HELP = `Usage: ${USAGE} unlock --host H [--yes] [options]

Shows who holds the host lock (REMOTE-DIR.lock: user@machine, pid, since when, which command) and
clears it. Asks for confirmation on a terminal; elsewhere pass --yes. Only clear a lock whose run is
really gone: two runs at once would break each other's upload. A lock left by a run of the same machine
whose process has ended, or one that never recorded its holder, needs no unlock: the next run takes it over.

  -y, --yes            clear without asking
  --dry-run            show the holder; clear nothing

${HOST_HELP}

just: bifrost-unlock HOST [--yes]
Exit codes: 0 cleared (or there was no lock), 1 failed, 2 bad input or not confirmed.`;

const CHECK_BUNDLE_HELP = `Usage: ${USAGE} check-bundle [--dir DIR] [--json]

Reads a bundle directory (default cloud/bifrost of this checkout) as provision-bifrost would upload it,
against the service plan (scripts/lib/bifrost/plan.ts), the secret schema and the facts of the pinned
images (scripts/lib/bifrost/pinned-images.ts). Needs no host and no secret. Names every problem with its
file, line and fix: a compose service no plan step starts, a plan step without its service, a template
placeholder with no source, a NetBird config key the pinned server does not read, a healthcheck running a
program or flag its image lacks, a compose \${VAR} that .env never sets, an env_file or mount neither in
the bundle nor rendered, a Traefik router whose service is undefined or whose rule Traefik v3 refuses,
NetBird reverse-proxy settings that disagree with Traefik (TCP passthrough, PROXY protocol, trusted
proxies, NB_PROXY_ALLOW_INSECURE for a plain-HTTP management address) or that it does not read.

  --dir DIR            the bundle directory (default cloud/bifrost)
  --json               print { ok, dir, problems: [{ check, file, line?, problem, fix }] } on stdout
  -h, --help           this help

just: bifrost-check-bundle [--dir DIR] [--json]
Exit codes: 0 the bundle is sound, 2 problems found (or bad input).`;

const HOST_OPTIONS = {
  ...COMMON_OPTIONS,
  ...SSH_OPTIONS,
  'remote-dir': { type: 'string' },
  docker: { type: 'string' },
  compose: { type: 'string' },
  // Accepted everywhere (DESIGN.md CLI conventions); the read-only commands change nothing anyway.
  'dry-run': { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
} as const;

const STATUS_OPTIONS = HOST_OPTIONS;
const LOGS_OPTIONS = { ...HOST_OPTIONS, tail: { type: 'string' } } as const;
const ENGINE_OPTIONS = {
  ...HOST_OPTIONS,
  'lock-wait': { type: 'string' },
  // For the sandbox and tests: shortens every deadline and backoff of the engine.
  'time-scale': { type: 'string' },
} as const;
const VERIFY_OPTIONS = {
  ...HOST_OPTIONS,
  'secrets-file': { type: 'string' },
  'from-env': { type: 'boolean' },
  bundle: { type: 'string' },
} as const;
const UNLOCK_OPTIONS = HOST_OPTIONS;
const CHECK_BUNDLE_OPTIONS = { ...COMMON_OPTIONS, dir: { type: 'string' } } as const;

interface HostFlags extends SshFlags {
  'remote-dir'?: string;
  docker?: string;
  compose?: string;
}

type Command = (argv: string[], out: Output) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  status: statusCommand,
  logs: logsCommand,
  token: tokenCommand,
  render: renderCommand,
  verify: verifyCommand,
  unlock: unlockCommand,
  'check-bundle': checkBundleCommand,
};

export async function main(argv: string[], out: Output): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    throw new InputError(
      `say which command to run: ${Object.keys(COMMANDS).join(', ')}`,
      `see ${USAGE} --help`,
    );
  }
  if (name === '-h' || name === '--help') {
    out.data(HELP);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    throw new InputError(
      `unknown command "${name}"`,
      `one of: ${Object.keys(COMMANDS).join(', ')} (see ${USAGE} --help)`,
    );
  }
  return command(rest, out);
}

// ---- shared ---------------------------------------------------------------------------------------

function hostCli(flags: HostFlags, usage: string): { cli: DockerCli; host: string } {
  if (!flags.host) throw new InputError('--host is required', `see ${usage} --help`);
  return {
    host: flags.host,
    // The dir is checked here, before connecting: the lock and the upload helpers need an absolute path.
    cli: dockerCliFromFlags(flags, normalizeRemoteDir(flags['remote-dir'] ?? DEFAULT_BUNDLE_HOST_DIR)),
  };
}

function noPositionals(positionals: string[], usage: string): void {
  if (positionals.length > 0)
    throw new InputError(`unexpected argument: ${positionals[0]}`, `see ${usage} --help`);
}

async function withHost<T>(
  flags: HostFlags & { host: string },
  out: Output,
  cli: DockerCli,
  fn: (executor: Executor) => Promise<T>,
): Promise<T> {
  runContext.setPhase('connecting', 'nothing was changed on the host');
  const executor = await connectFromFlags(flags);
  return withCleanup(
    async () => {
      runContext.setPhase('reading the host', 'nothing was changed on the host');
      out.info(`target  ${executor.where}:${cli.dir}`);
      return await fn(executor);
    },
    () => executor.close(),
  );
}

/**
 * Reads the host's .secrets.env and .env over SFTP and registers every value with the redactor, so that
 * nothing printed afterwards (logs, health-check output, errors) can carry one.
 */
async function registerHostSecrets(
  executor: Executor,
  dir: string,
): Promise<{ secrets: Map<string, string>; dotEnv: Map<string, string>; found: string[] }> {
  const [secretsText, dotEnvText] = await Promise.all([
    executor.files.readFile(`${dir}/${SECRETS_ENV}`),
    executor.files.readFile(`${dir}/${DOT_ENV}`),
  ]);
  const secrets = parseEnvFile(secretsText ?? '');
  const dotEnv = parseEnvFile(dotEnvText ?? '');
  for (const values of [secrets, dotEnv]) for (const [k, v] of values) redactor.register(v, k);
  const found = [
    ...(secretsText === undefined ? [] : [SECRETS_ENV]),
    ...(dotEnvText === undefined ? [] : [DOT_ENV]),
  ];
  return { secrets, dotEnv, found };
}

/** The plan's services, in plan order, with the optional secret that gates each. */
function planServices(): { service: string; gate?: string }[] {
  return BIFROST_PLAN.flatMap((s) =>
    s.kind === 'service' ? [{ service: s.service, gate: s.gate?.key }] : [],
  );
}

/** The plan cut down to `ids`, each step waiting only for chosen steps (the others are done already). */
function restrictPlan(ids: readonly string[]): PlanStep[] {
  return BIFROST_PLAN.filter((s) => ids.includes(s.id)).map((s) => ({
    ...s,
    after: s.after.filter((a) => ids.includes(a)),
  }));
}

function positiveNumber(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InputError(`--${flag} must be a positive number, not "${value}"`);
  return n;
}

function nonNegative(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InputError(`--${flag} must be a number ≥ 0, not "${value}"`);
  return n;
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/**
 * A plain-text table. `paint` colours a cell after it is padded: escape codes counted as width would
 * push every column out of line with the header.
 */
function table(
  header: string[],
  rows: string[][],
  paint: (cell: string, column: number) => string = (c) => c,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const last = header.length - 1;
  const line = (cells: string[], painted: boolean) =>
    cells
      .map((c, i) => {
        const padded = i < last ? c.padEnd(widths[i] ?? 0) : c;
        return painted ? paint(padded, i) : padded;
      })
      .join('  ')
      .trimEnd();
  return [
    line(header, false),
    line(
      widths.map((w) => '-'.repeat(w)),
      false,
    ),
    ...rows.map((r) => line(r, true)),
  ].join('\n');
}

/** The host lock, held by a recovery command that changes the host (token, render). */
async function lockHost(executor: Executor, dir: string, command: string, waitSeconds: number, out: Output) {
  const { acquireHostLock, currentHolder } = await import('./lib/bifrost/lock.ts');
  return acquireHostLock(executor, dir, {
    holder: currentHolder(command),
    waitSeconds,
    onWait: (line) => out.info(`lock    ${line}`),
    onNotice: (line) => out.warn(`lock: ${line}`),
  });
}

// ---- status ---------------------------------------------------------------------------------------

interface ServiceStatus {
  service: string;
  state: string;
  health: string;
  startedAt?: string;
  ready: boolean;
  /** Missing because its optional secret is not set: expected, not a failure. */
  skipped: boolean;
  note: string;
}

async function statusCommand(argv: string[], out: Output): Promise<number> {
  const usage = `${USAGE} status`;
  const { values: flags, positionals } = parseCli(argv, STATUS_OPTIONS, usage);
  if (flags.help) {
    out.data(STATUS_HELP);
    return EXIT.ok;
  }
  noPositionals(positionals, usage);
  const { cli, host } = hostCli(flags, usage);
  return withHost({ ...flags, host }, out, cli, async (executor) => {
    const { secrets } = await registerHostSecrets(executor, cli.dir);
    const services = planServices();
    const states = await inspectContainers(
      executor,
      cli,
      services.map((s) => s.service),
    );
    const rows = services.map(({ service, gate }) =>
      serviceStatus(service, states.get(service), gate, secrets),
    );
    out.data(
      table(
        ['service', 'state', 'health', 'up', 'note'],
        rows.map((r) => [
          r.service,
          r.state,
          r.health,
          r.startedAt ? formatAge(Date.now() - Date.parse(r.startedAt)) : '',
          r.note,
        ]),
      ),
    );
    const bad = rows.filter((r) => !r.ready && !r.skipped);
    if (bad.length === 0) {
      out.info(out.color.green(`all ${rows.filter((r) => r.ready).length} running services are healthy`));
    } else {
      out.error(
        `not healthy: ${bad.map((r) => `${r.service} (${r.state}${r.health === '-' ? '' : `, ${r.health}`})`).join(', ')}`,
        `look at the logs (just bifrost-logs HOST SERVICE); just bifrost-up HOST starts what is missing`,
      );
    }
    out.result({ ok: bad.length === 0, where: executor.where, dir: cli.dir, services: rows });
    return bad.length === 0 ? EXIT.ok : EXIT.failed;
  });
}

function serviceStatus(
  service: string,
  s: ContainerState | undefined,
  gate: string | undefined,
  secrets: Map<string, string>,
): ServiceStatus {
  const gatedOut = gate !== undefined && !secrets.get(gate);
  if (!s) {
    return {
      service,
      state: 'missing',
      health: '-',
      ready: false,
      skipped: gatedOut,
      note: gatedOut ? `skipped: ${gate} is not set (optional)` : 'no container',
    };
  }
  const ready = isReady(s);
  const lastCheck = s.healthLog[s.healthLog.length - 1]?.split('\n')[0]?.slice(0, 80) ?? '';
  return {
    service,
    state: s.status,
    health: s.health === 'none' ? 'no check' : s.health,
    startedAt: s.startedAt,
    ready,
    skipped: false,
    note: ready ? '' : lastCheck ? `last check: ${lastCheck}` : '',
  };
}

// ---- logs -----------------------------------------------------------------------------------------

async function logsCommand(argv: string[], out: Output): Promise<number> {
  const usage = `${USAGE} logs`;
  const { values: flags, positionals } = parseCli(argv, LOGS_OPTIONS, usage);
  if (flags.help) {
    out.data(LOGS_HELP);
    return EXIT.ok;
  }
  const known = planServices().map((s) => s.service);
  const [service, ...extra] = positionals;
  if (!service) throw new InputError('say which service', `one of: ${known.join(', ')}`);
  noPositionals(extra, usage);
  if (!known.includes(service))
    throw new InputError(`unknown service "${service}"`, `one of: ${known.join(', ')}`);
  const tail = flags.tail === undefined ? 100 : Number(flags.tail);
  if (!Number.isInteger(tail) || tail < 1)
    throw new InputError(`--tail must be a whole number ≥ 1, not "${flags.tail}"`);
  const { cli, host } = hostCli(flags, usage);
  return withHost({ ...flags, host }, out, cli, async (executor) => {
    const { found } = await registerHostSecrets(executor, cli.dir);
    // Without the host's values the redactor knows nothing to hide: refuse rather than print blind.
    if (found.length === 0) {
      throw new InputError(
        `neither ${cli.dir}/${SECRETS_ENV} nor ${cli.dir}/${DOT_ENV} exists on ${executor.where}: logs are printed only once the host's secrets can be redacted`,
        'check --remote-dir, or provision the host first (just bifrost-up HOST)',
      );
    }
    const argvLogs = logsArgv(cli, service, tail);
    out.detail(`$ ${argvLogs.join(' ')}`);
    // Collected whole, never streamed: a secret split across two chunks would slip past the redactor.
    const r = await executor.run({ argv: argvLogs, timeoutMs: 60_000 });
    if (r.spawnError || r.timedOut || r.exitCode !== 0) {
      const why = r.spawnError ?? (r.timedOut ? 'no answer within 60 s' : (r.stderr || r.stdout).trim());
      throw new WorkError(
        `docker logs ${service} failed on ${executor.where} (exit ${r.exitCode}): ${why}`,
        /No such container/i.test(why)
          ? `${service} has no container: just bifrost-status HOST shows what runs; just bifrost-up HOST starts it`
          : 'check --docker and that the docker daemon runs on the host',
      );
    }
    if (r.stdout) out.data(r.stdout);
    // The container's stderr stays on stderr, as `docker logs` prints it.
    if (r.stderr) process.stderr.write(redactor.redact(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`));
    out.result({ ok: true, where: executor.where, service, tail, stdout: r.stdout, stderr: r.stderr });
    return EXIT.ok;
  });
}

// ---- token and render -----------------------------------------------------------------------------

const TOKEN_STEPS = ['netbird-mgmt-token', 'netbird-config', 'netbird-server'];
const RENDER_STEPS = ['netbird-config', 'netbird-server'];
const NETBIRD_SERVER = 'netbird-server';
const TOKEN_LINE = new RegExp(`^\\s*(?:export\\s+)?${NB_IDP_MGMT_TOKEN}\\s*=`);

async function tokenCommand(argv: string[], out: Output): Promise<number> {
  return engineCommand(argv, out, 'token');
}

async function renderCommand(argv: string[], out: Output): Promise<number> {
  return engineCommand(argv, out, 'render');
}

async function engineCommand(argv: string[], out: Output, which: 'token' | 'render'): Promise<number> {
  const usage = `${USAGE} ${which}`;
  const { values: flags, positionals } = parseCli(argv, ENGINE_OPTIONS, usage);
  if (flags.help) {
    out.data(which === 'token' ? TOKEN_HELP : RENDER_HELP);
    return EXIT.ok;
  }
  noPositionals(positionals, usage);
  const { cli, host } = hostCli(flags, usage);
  const timeScale = positiveNumber('time-scale', flags['time-scale'], 1);
  const lockWait = nonNegative('lock-wait', flags['lock-wait'], 0);
  const plan = restrictPlan(which === 'token' ? TOKEN_STEPS : RENDER_STEPS);
  return withHost({ ...flags, host }, out, cli, async (executor) => {
    runContext.setPhase(
      which,
      which === 'token'
        ? 'the token line may be removed: run token again'
        : 'netbird-server may not be recreated yet',
    );
    if (flags['dry-run']) {
      const { secrets } = await registerHostSecrets(executor, cli.dir);
      if (which === 'token')
        out.info(`would remove the ${NB_IDP_MGMT_TOKEN} line from ${cli.dir}/${SECRETS_ENV}`);
      const lines = describePlan(cli, (key) => Boolean(secrets.get(key)), plan);
      for (const line of lines) out.info(`  ${line}`);
      out.result({ ok: true, dryRun: true, where: executor.where, dir: cli.dir, plan: lines });
      return EXIT.ok;
    }
    const lock = await lockHost(executor, cli.dir, `bifrost ${which}`, lockWait, out);
    const locked = async () => {
      // Read under the lock: a provision running a moment ago may have just replaced the file.
      const { secrets, found } = await registerHostSecrets(executor, cli.dir);
      if (!found.includes(SECRETS_ENV)) {
        throw new InputError(
          `${cli.dir}/${SECRETS_ENV} does not exist on ${executor.where}`,
          'provision the host first (just bifrost-up HOST), or check --remote-dir',
        );
      }
      const previous = secrets.get(NB_IDP_MGMT_TOKEN);
      if (which === 'render' && !previous) {
        throw new InputError(
          `${cli.dir}/${SECRETS_ENV} holds no ${NB_IDP_MGMT_TOKEN}: netbird/config.yaml cannot be rendered without it`,
          'mint it first: just bifrost-token HOST',
        );
      }
      const names =
        which === 'token' ? ['authentik-server', 'authentik-worker', NETBIRD_SERVER] : [NETBIRD_SERVER];
      const before = await inspectContainers(executor, cli, names);
      if (which === 'token') {
        // Checked before the token line goes: a stopped Authentik would only fail after minutes of retries.
        for (const name of ['authentik-server', 'authentik-worker']) {
          const s = before.get(name);
          if (s?.status !== 'running') {
            throw new WorkError(
              `${name} is ${s ? s.status : 'missing'} on ${executor.where}: the token is minted inside Authentik; nothing changed`,
              'start the stack with just bifrost-up HOST (just bifrost-status HOST shows what runs), then run again',
            );
          }
        }
        await removeTokenLine(executor, cli.dir, out);
      }
      const result = await runBifrostBootstrap({
        executor,
        cli,
        out,
        plan,
        timeScale,
        cloudInitTimeoutSec: 60,
      });
      out.info(`\n${formatStatusTable(result)}`);
      const after = await inspectContainers(executor, cli, [NETBIRD_SERVER]);
      const wasId = before.get(NETBIRD_SERVER)?.id;
      const nowId = after.get(NETBIRD_SERVER)?.id;
      // A new container id is what "recreated" means, whatever the engine's reasons were.
      const recreated = wasId !== undefined && nowId !== undefined && wasId !== nowId;
      return report(out, executor, cli, which, result, { previous, recreated });
    };
    return withCleanup(locked, async () => {
      runContext.setPhase('releasing the host lock');
      await lock.release();
    });
  });
}

/** Drops every NB_IDP_MGMT_TOKEN line (atomically, 0600), so that the engine's token step mints anew. */
async function removeTokenLine(executor: Executor, dir: string, out: Output): Promise<void> {
  const path = `${dir}/${SECRETS_ENV}`;
  const text = (await executor.files.readFile(path)) ?? '';
  const kept = text.split('\n').filter((l) => !TOKEN_LINE.test(l));
  const next = kept.join('\n');
  if (next === text) {
    out.info(`token   no ${NB_IDP_MGMT_TOKEN} line in ${SECRETS_ENV}; minting one`);
    return;
  }
  await executor.files.writeFileAtomic(path, next, 0o600);
  out.info(`token   removed ${NB_IDP_MGMT_TOKEN} from ${SECRETS_ENV}; minting a new one`);
}

async function report(
  out: Output,
  executor: Executor,
  cli: DockerCli,
  which: 'token' | 'render',
  result: EngineResult,
  facts: { previous: string | undefined; recreated: boolean },
): Promise<number> {
  const config = result.steps.find((s) => s.id === 'netbird-config');
  const base = { where: executor.where, dir: cli.dir, command: which, recreated: facts.recreated };
  if (result.failure) {
    const hint =
      which === 'token'
        ? `${NB_IDP_MGMT_TOKEN} is not in ${SECRETS_ENV} now; netbird-server keeps its current config. ${result.failure.hint ?? ''} Run just bifrost-token HOST again once fixed.`
        : result.failure.hint;
    out.error(`step ${result.failure.step} failed:\n${result.failure.message}`, hint?.trim());
    out.result({ ok: false, ...base, bootstrap: result });
    return EXIT.failed;
  }
  let token: { previous?: string; now?: string; changed?: boolean } | undefined;
  if (which === 'token') {
    const now = parseEnvFile((await executor.files.readFile(`${cli.dir}/${SECRETS_ENV}`)) ?? '').get(
      NB_IDP_MGMT_TOKEN,
    );
    // Fingerprints only: enough to tell whether Authentik handed back the same key.
    token = {
      previous: facts.previous === undefined ? undefined : fingerprint(facts.previous),
      now: now === undefined ? undefined : fingerprint(now),
      changed: facts.previous !== now,
    };
    // Fingerprints are keyed with FINGERPRINT_KEY, which this command (reading only the host) may lack.
    const shown = (fp: string | undefined) => (fp ? ` ${fp}` : '');
    out.info(
      `${NB_IDP_MGMT_TOKEN} minted: ${token.changed ? `a new value${shown(token.now)} (was ${facts.previous === undefined ? 'unset' : `another value${shown(token.previous)}`})` : `the same value as before${shown(token.now)}`}`,
    );
  }
  const configChanged = config?.detail.endsWith('rendered') ?? false;
  out.info(
    out.color.green(
      `netbird/config.yaml ${configChanged ? 'changed' : 'unchanged'}; netbird-server ${facts.recreated ? 'recreated' : 'left running'}`,
    ),
  );
  out.result({ ok: true, ...base, configChanged, token, bootstrap: result });
  return EXIT.ok;
}

// ---- verify ---------------------------------------------------------------------------------------

type Verdict = 'same' | 'differs' | 'missing on host' | 'only on host';

interface FileVerdict {
  path: string;
  status: Verdict;
  note?: string;
}

interface SecretVerdict {
  key: string;
  status: Verdict;
  note?: string;
}

interface LocalFile {
  path: string;
  content: string | Buffer;
  mode: number;
  /** For the two rendered env files: what they hold, to compare with the host's copy key by key. */
  env?: Map<string, string>;
}

async function verifyCommand(argv: string[], out: Output): Promise<number> {
  const usage = `${USAGE} verify`;
  const { values: flags, positionals } = parseCli(argv, VERIFY_OPTIONS, usage);
  if (flags.help) {
    out.data(VERIFY_HELP);
    return EXIT.ok;
  }
  noPositionals(positionals, usage);
  const { cli, host } = hostCli(flags, usage);

  // Everything local first, exactly as provision-bifrost builds it, so bad input fails before connecting.
  const { required, optional } = keysFor(BIFROST_CONSUMERS);
  const { loaded, problems, files } = await buildProvisionInput({
    secretsFile: flags['secrets-file'],
    fromEnv: Boolean(flags['from-env']),
    bundleDir: flags.bundle,
  });
  out.info(`source  ${loaded.describe}`);
  for (const warning of loaded.warnings) out.warn(warning);
  if (problems.length > 0) {
    out.warn(
      `provision-bifrost would refuse these secrets until they are fixed:\n${formatProblems(problems)}`,
    );
  }
  const local: LocalFile[] = files.map((f) => ({
    path: f.path,
    content: f.content,
    mode: f.mode,
    ...(f.path === SECRETS_ENV || f.path === DOT_ENV ? { env: parseEnvFile(String(f.content)) } : {}),
  }));
  out.info(
    `bundle  ${resolve(flags.bundle ?? DEFAULT_BUNDLE_DIR)} (${local.length - 2} files) + ${SECRETS_ENV} and ${DOT_ENV} rendered in memory`,
  );
  // Only what the Bifrost host reads: provision records every loaded key, but a change in a key the host
  // never sees uploads nothing, so reporting it as "differs" would never clear.
  const bifrostKeys = [...required, ...optional] as string[];

  return withHost({ ...flags, host }, out, cli, async (executor) => {
    const [manifestText, deployed] = await Promise.all([
      executor.files.readFile(`${cli.dir}/${MANIFEST}`),
      readDeployed(executor.files, cli.dir),
    ]);
    const manifest = parseManifest(manifestText, (why) => out.warn(`${cli.dir}/${MANIFEST} ${why}`));
    if (!manifest) {
      out.warn(
        manifestText === undefined
          ? `no ${MANIFEST} in ${cli.dir}: nothing was provisioned there (or --remote-dir is wrong)`
          : `${cli.dir}/${MANIFEST} is unreadable; the next provision sends every file`,
      );
    }
    const fp = HostFingerprints.forHost(loaded.values[FINGERPRINT_KEY], deployed);
    const files = await compareFiles(executor, cli.dir, local, manifest ?? {}, (data) => fp.digest(data));
    const secrets = compareSecrets(bifrostKeys, loaded.values, deployed, fp);
    // The engine's own line: provision does not render it, so its absence is only seen on the host.
    const hostSecretsEnv = await executor.files.readFile(`${cli.dir}/${SECRETS_ENV}`);
    if (hostSecretsEnv !== undefined && !hasToken(parseEnvFile(hostSecretsEnv))) {
      secrets.push({
        key: NB_IDP_MGMT_TOKEN,
        status: 'missing on host',
        note: `no line in ${SECRETS_ENV}: the next provision runs the bootstrap, which mints it`,
      });
    }
    if (!deployed) out.warn(`no ${DEPLOYED_FILE} in ${cli.dir}: no provision has finished there`);

    const show = (rows: { name: string; status: Verdict; note?: string }[]) =>
      rows.map((r) => [r.name, r.status, r.note ?? '']);
    const paint = (cell: string, column: number) => (column === 1 ? colour(out, cell) : cell);
    out.data(table(['file', 'status', 'note'], show(files.map((f) => ({ name: f.path, ...f }))), paint));
    out.data('');
    out.data(table(['secret', 'status', 'note'], show(secrets.map((s) => ({ name: s.key, ...s }))), paint));
    const differing = [...files, ...secrets].filter((v) => v.status !== 'same');
    const ok = differing.length === 0;
    if (ok) {
      out.info(
        out.color.green(`the host matches: ${files.length} files and ${secrets.length} secrets the same`),
      );
    } else {
      const editedOnHost = files.filter((f) => f.note?.startsWith('edited on the host'));
      out.info(
        out.color.yellow(
          `${differing.length} difference(s): ${differing.map((d) => ('path' in d ? d.path : d.key)).join(', ')}`,
        ),
      );
      if (editedOnHost.length > 0) {
        // Provisioning diffs against its manifest, so a hand edit on the host is invisible to it; a file
        // that is gone from the host, though, is sent again.
        out.info(
          `edited on the host, which provisioning does not notice: remove ${editedOnHost.length === 1 ? 'it' : 'them'} there first (rm ${editedOnHost.map((f) => `${cli.dir}/${f.path}`).join(' ')}),`,
        );
      }
      out.info(`to bring the host in line, run: just bifrost-up ${host}`);
    }
    out.result({ ok, where: executor.where, dir: cli.dir, files, secrets });
    return ok ? EXIT.ok : EXIT.failed;
  });
}

/**
 * Per file: the local version against the manifest (what the last upload sent, which is what provision
 * diffs against), then the host's copy against the manifest, since provision does not notice a file
 * edited on the host. The engine edits .secrets.env in place (its NB_IDP_MGMT_TOKEN line), so that file
 * is compared key by key without that line; no secret value or file hash is ever printed.
 */
async function compareFiles(
  executor: Executor,
  dir: string,
  local: readonly LocalFile[],
  manifest: ManifestFiles,
  secretDigest: SecretDigest,
): Promise<FileVerdict[]> {
  // The same digests provision writes into the manifest (keyed for the 0600 files).
  const digest = (content: string | Buffer, mode: number) => manifestDigest(content, mode, secretDigest);
  const byPath = new Map(local.map((f) => [f.path, f]));
  const paths = [...new Set([...byPath.keys(), ...Object.keys(manifest)])].sort();
  return Promise.all(
    paths.map(async (path): Promise<FileVerdict> => {
      const mine = byPath.get(path);
      const sent = manifest[path];
      if (!mine)
        return { path, status: 'only on host', note: 'not in the local bundle; provision removes it' };
      if (!sent) return { path, status: 'missing on host', note: 'never uploaded' };
      const remote = await executor.files.readFile(`${dir}/${path}`);
      if (remote === undefined) return { path, status: 'missing on host', note: 'deleted on the host' };
      if (sent.sha256 !== digest(mine.content, mine.mode))
        return { path, status: 'differs', note: 'changed locally' };
      if (sent.mode !== mine.mode)
        return {
          path,
          status: 'differs',
          note: `mode ${mine.mode.toString(8)} locally, ${sent.mode.toString(8)} sent`,
        };
      const edited = mine.env
        ? !sameEnv(mine.env, parseEnvFile(remote))
        : digest(remote, sent.mode) !== sent.sha256;
      return edited ? { path, status: 'differs', note: 'edited on the host' } : { path, status: 'same' };
    }),
  );
}

function compareSecrets(
  keys: readonly string[],
  values: Readonly<Record<string, string>>,
  record: DeployedRecord | undefined,
  fp: HostFingerprints,
): SecretVerdict[] {
  const guarded = new Set(GUARDED_SECRETS.map((s) => s.key as string));
  // A record keyed with another FINGERPRINT_KEY cannot be compared value by value.
  const otherKey = record?.version === 2 && record.keyCheck !== fp.keyCheck;
  const out: SecretVerdict[] = [];
  for (const key of keys) {
    const value = values[key];
    const was = record?.secrets[key];
    if (value === undefined && was === undefined) continue;
    if (value === undefined) out.push({ key, status: 'only on host', note: 'not set locally' });
    else if (!record || was === undefined)
      out.push({ key, status: 'missing on host', note: 'not deployed yet' });
    else if (otherKey)
      out.push({ key, status: 'differs', note: `recorded under another ${FINGERPRINT_KEY}` });
    else if (sameAsRecorded(fp, record, key, value, was)) out.push({ key, status: 'same' });
    else {
      out.push({
        key,
        status: 'differs',
        note: guarded.has(key) ? `guarded: provision needs --allow-rotate ${key}` : 'changed locally',
      });
    }
  }
  return out;
}

function colour(out: Output, padded: string): string {
  return padded.trim() === 'same' ? out.color.green(padded) : out.color.yellow(padded);
}

// ---- check-bundle ---------------------------------------------------------------------------------

async function checkBundleCommand(argv: string[], out: Output): Promise<number> {
  const flags = parseFlags(argv, CHECK_BUNDLE_OPTIONS, `${USAGE} check-bundle`, CHECK_BUNDLE_HELP, out);
  if (!flags) return EXIT.ok;
  const dir = resolve(flags.dir ?? DEFAULT_BUNDLE_DIR);
  const { checkBundle, formatBundleProblem } = await import('./lib/bifrost/check-bundle.ts');
  const problems = await checkBundle(dir);
  for (const p of problems) out.data(formatBundleProblem(p));
  if (problems.length === 0) out.info(out.color.green(`${dir}: the bundle is sound`));
  else
    out.error(
      `${dir}: ${problems.length} problem(s) in the bundle`,
      'fix each as its line says, then run check-bundle again',
    );
  out.result({ ok: problems.length === 0, dir, problems });
  return problems.length === 0 ? EXIT.ok : EXIT.badInput;
}

// ---- unlock ---------------------------------------------------------------------------------------

async function unlockCommand(argv: string[], out: Output): Promise<number> {
  const usage = `${USAGE} unlock`;
  const { values: flags, positionals } = parseCli(argv, UNLOCK_OPTIONS, usage);
  if (flags.help) {
    out.data(UNLOCK_HELP);
    return EXIT.ok;
  }
  noPositionals(positionals, usage);
  const { cli, host } = hostCli(flags, usage);
  const { breakHostLock, readHostLock } = await import('./lib/bifrost/lock.ts');
  return withHost({ ...flags, host }, out, cli, async (executor) => {
    const holder = await readHostLock(executor, cli.dir);
    if (!holder) {
      out.info(out.color.green(`no lock on ${executor.where}:${cli.dir}; nothing to clear`));
      out.result({ ok: true, where: executor.where, dir: cli.dir, locked: false });
      return EXIT.ok;
    }
    const age = Date.now() - Date.parse(holder.since);
    out.data(
      `${cli.dir}.lock is held by ${holder.holder} (pid ${holder.pid}) since ${holder.since}` +
        `${Number.isFinite(age) ? ` (${formatAge(age)} ago)` : ''}, running: ${holder.command}`,
    );
    if (flags['dry-run']) {
      out.info('dry run: the lock stays');
      out.result({ ok: true, dryRun: true, where: executor.where, dir: cli.dir, locked: true, holder });
      return EXIT.ok;
    }
    if (!flags.yes) {
      if (!process.stdin.isTTY || !process.stderr.isTTY) {
        throw new InputError(
          'not clearing the lock without confirmation',
          'make sure that run is gone (it may still be uploading), then pass --yes',
        );
      }
      if (!(await confirm(`Clear it? Only if that run is no longer running. [y/N] `))) {
        out.info('left in place');
        out.result({ ok: false, where: executor.where, dir: cli.dir, locked: true, holder, cleared: false });
        return EXIT.badInput;
      }
    }
    const broken = await breakHostLock(executor, cli.dir);
    if (!broken) {
      out.info('the lock was released in the meantime; nothing to clear');
    } else {
      const same =
        broken.holder === holder.holder && broken.pid === holder.pid && broken.since === holder.since;
      // breakHostLock reads the holder again: another run may have taken the lock between the two reads.
      if (!same)
        out.warn(
          `the lock changed hands before it was cleared; cleared ${broken.holder} (pid ${broken.pid})`,
        );
      out.info(out.color.green(`cleared the lock held by ${broken.holder} (pid ${broken.pid})`));
    }
    out.result({
      ok: true,
      where: executor.where,
      dir: cli.dir,
      locked: false,
      holder: broken ?? holder,
      cleared: Boolean(broken),
    });
    return EXIT.ok;
  });
}

function confirm(question: string): Promise<boolean> {
  return new Promise((done) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    rl.question(question, (answer) => {
      rl.close();
      done(/^y(es)?$/i.test(answer.trim()));
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain((out) => main(process.argv.slice(2), out));
}
