/**
 * What `bifrost token`, `bifrost proxy-token` and `bifrost render` share: the bootstrap engine restricted to their steps, so
 * they follow its convergence rules (a service is recreated only when its inputs changed) instead of
 * re-implementing them, under the host lock; --dry-run is the same run against a recording executor.
 */
import { type CommandSpec, defineCommand, numberFlag } from '../../core/cli.ts';
import { EXIT, InputError, WorkError } from '../../core/errors.ts';
import type { Output } from '../../core/output.ts';
import { fingerprint } from '../../core/redact.ts';
import { runContext, withCleanup } from '../../core/run-context.ts';
import type { Executor } from '../../exec/executor.ts';
import { type DockerCli, inspectContainers } from '../docker.ts';
import { dryRunBootstrap, reportDryRun } from '../dry-run.ts';
import { type EngineResult, formatStatusTable, runBifrostBootstrap } from '../engine.ts';
import { parseEnvFile } from '../env-file.ts';
import { requireHost, withHost } from '../host-flags.ts';
import { proxyTokenMinted, registerHostSecrets, SECRETS_ENV } from '../host-state.ts';
import { lockHost } from '../lock.ts';
import { NB_IDP_MGMT_TOKEN, NB_PROXY_TOKEN, restrictPlan, stepById } from '../plan.ts';
import { placeholdersOf } from '../template.ts';
import {
  LOCK_WAIT_HELP,
  RECOVERY_OPTIONS,
  RECOVERY_OPTIONS_HELP,
  registerOperatorSecrets,
  requireBundleDir,
  SECRETS_OPTIONS,
  SECRETS_OPTIONS_HELP,
  USAGE,
} from './common.ts';

type Which = 'token' | 'render' | 'proxy-token';

const STEPS: Record<Which, string[]> = {
  token: ['netbird-mgmt-token', 'netbird-config', 'netbird-server'],
  render: ['netbird-config', 'netbird-server'],
  'proxy-token': ['netbird-proxy-token', 'netbird-proxy'],
};
const NETBIRD_SERVER = 'netbird-server';
const NETBIRD_PROXY = 'netbird-proxy';

/** What an interrupt leaves, per command. */
const INTERRUPTED: Record<Which, string> = {
  token: `${NB_IDP_MGMT_TOKEN} is replaced only once a new one is minted; netbird-server may not be recreated yet`,
  render: 'netbird-server may not be recreated yet',
  'proxy-token': `${NB_PROXY_TOKEN} is replaced only once a new one is minted; netbird-proxy may not be recreated yet`,
};

const OPTIONS = { ...RECOVERY_OPTIONS, ...SECRETS_OPTIONS, 'lock-wait': { type: 'string' } } as const;

/** The engine's steps and re-mint flags for each command, the dry run's and the real run's alike. */
function engineOptions(which: Which) {
  return {
    plan: restrictPlan(STEPS[which]),
    remintToken: which === 'token',
    remintProxyToken: which === 'proxy-token',
  };
}

/** Runs the command's steps; `recreated`: `container` has a new id now, whatever the engine's reasons. */
async function runSteps(
  executor: Executor,
  cli: DockerCli,
  out: Output,
  which: Which,
  container: string,
  before: ReadonlyMap<string, { id: string }>,
): Promise<{ result: EngineResult; recreated: boolean }> {
  const result = await runBifrostBootstrap({
    executor,
    cli,
    out,
    cloudInitTimeoutSec: 60,
    ...engineOptions(which),
  });
  out.info(`\n${formatStatusTable(result)}`);
  const wasId = before.get(container)?.id;
  const nowId = (await inspectContainers(executor, cli, [container])).get(container)?.id;
  return { result, recreated: wasId !== undefined && nowId !== undefined && wasId !== nowId };
}

/** What a failed run left of the token it was to mint: the new one if its step was done, else the old. */
function tokenKept(result: EngineResult, step: string, key: string): string {
  return result.steps.find((x) => x.id === step)?.status === 'done'
    ? `the new ${key} is in ${SECRETS_ENV}`
    : `${SECRETS_ENV} keeps its ${key} as it was`;
}

/** "KEY minted: a new value FP (was …)", fingerprints only (keyed: this command may lack the key). */
function mintedLine(key: string, previous: string | undefined, now: string | undefined): string {
  const shown = (v: string | undefined) => (v && fingerprint(v) ? ` ${fingerprint(v)}` : '');
  return `${key} minted: ${
    previous !== now
      ? `a new value${shown(now)} (was ${previous === undefined ? 'unset' : `another value${shown(previous)}`})`
      : `the same value as before${shown(now)}`
  }`;
}

/** token's and render's command, from the words of their help. */
export function netbirdCommand(
  which: Which,
  text: Pick<CommandSpec<typeof OPTIONS>, 'description' | 'footer' | 'exits'>,
) {
  return defineCommand({
    name: `${USAGE} ${which}`,
    synopsis: '(--host H | --local) [options]',
    ...text,
    options: OPTIONS,
    aliases: { file: 'secrets-file' },
    optionsHelp: `${LOCK_WAIT_HELP}
  --dry-run            run the steps against a recording executor: print the commands; change nothing
${SECRETS_OPTIONS_HELP}
                       (their values redact what the containers print; without them: exit 2)
${RECOVERY_OPTIONS_HELP}`,
    run: async (flags, _positionals, out) => {
      const { cli, host } = requireHost(flags, `${USAGE} ${which}`);
      const lockWait = numberFlag('lock-wait', flags['lock-wait'], 'non-negative', 0);
      // The steps print what the containers answer: known values first, before connecting.
      await registerOperatorSecrets(flags, out);
      return withHost({ ...flags, host }, out, cli, async (executor) => {
        runContext.setPhase(which, INTERRUPTED[which]);
        // Before the lock: taking it creates directories beside a --remote-dir that may be wrong.
        await requireBundleDir(executor, cli.dir);
        if (flags['dry-run']) return dryRun(executor, cli, which, out);
        const lock = await lockHost(executor, cli.dir, `bifrost ${which}`, lockWait, out);
        return withCleanup(
          () => converge(executor, cli, which, out),
          async () => {
            runContext.setPhase('releasing the host lock');
            await lock.release();
          },
        );
      });
    },
  });
}

async function dryRun(executor: Executor, cli: DockerCli, which: Which, out: Output): Promise<number> {
  await registerHostSecrets(executor, cli.dir);
  if (which !== 'render') {
    const key = which === 'token' ? NB_IDP_MGMT_TOKEN : NB_PROXY_TOKEN;
    out.info(`would mint ${key} anew and replace its line in ${cli.dir}/${SECRETS_ENV} once minted`);
  }
  if (which === 'proxy-token') await refuseSopsProxyToken(executor, cli);
  const dry = await dryRunBootstrap({ executor, cli, out, ...engineOptions(which) });
  return reportDryRun(dry, out, { where: executor.where, dir: cli.dir });
}

/**
 * A NB_PROXY_TOKEN from the SOPS file wins over a minted one, and provision would put it back: a new one
 * is the operator's to set there. Checked before anything runs.
 */
async function refuseSopsProxyToken(executor: Executor, cli: DockerCli): Promise<void> {
  const text = (await executor.files.readFile(`${cli.dir}/${SECRETS_ENV}`)) ?? '';
  if (!parseEnvFile(text).get(NB_PROXY_TOKEN) || proxyTokenMinted(text)) return;
  throw new InputError(
    `${cli.dir}/${SECRETS_ENV} holds the ${NB_PROXY_TOKEN} of the SOPS file, which wins over a minted one: nothing changed`,
    `put a new token in the SOPS file (just secrets-set ${NB_PROXY_TOKEN}, then just bifrost-up HOST), or remove it there (just secrets-edit) and provision: the bootstrap then mints one`,
  );
}

/** bifrost proxy-token: netbird-server must run (the token is minted in it), and the SOPS file's token is not replaced. */
async function checkProxyTokenHost(executor: Executor, cli: DockerCli): Promise<void> {
  await refuseSopsProxyToken(executor, cli);
  const server = (await inspectContainers(executor, cli, [NETBIRD_SERVER])).get(NETBIRD_SERVER);
  if (server?.status !== 'running') {
    throw new WorkError(
      `${NETBIRD_SERVER} is ${server ? server.status : 'missing'} on ${executor.where}: the proxy's token is minted inside it; nothing changed`,
      'start the stack with just bifrost-up HOST (just bifrost-status HOST shows what runs), then run again',
    );
  }
}

/** Whether the host's NetBird template names NB_IDP_MGMT_TOKEN: only then does rendering need the token. */
async function templateNamesToken(executor: Executor, cli: DockerCli): Promise<boolean> {
  const step = stepById('netbird-config');
  if (step?.kind !== 'render') return false;
  const text = (await executor.files.readFile(`${cli.dir}/${step.template}`)) ?? '';
  return placeholdersOf(text).includes(NB_IDP_MGMT_TOKEN);
}

async function converge(executor: Executor, cli: DockerCli, which: Which, out: Output): Promise<number> {
  // Read under the lock: a provision running a moment ago may have just replaced the file.
  const { secrets, found } = await registerHostSecrets(executor, cli.dir);
  if (!found.includes(SECRETS_ENV)) {
    throw new InputError(
      `${cli.dir}/${SECRETS_ENV} does not exist on ${executor.where}`,
      'provision the host first (just bifrost-up HOST), or check --remote-dir',
    );
  }
  if (which === 'proxy-token') return convergeProxyToken(executor, cli, out, secrets.get(NB_PROXY_TOKEN));
  const previous = secrets.get(NB_IDP_MGMT_TOKEN);
  if (which === 'render' && !previous && (await templateNamesToken(executor, cli))) {
    throw new InputError(
      `${cli.dir}/${SECRETS_ENV} holds no ${NB_IDP_MGMT_TOKEN}, which the host's NetBird template names: the token step, which mints it, has not run on this host`,
      'mint it first: just bifrost-token HOST',
    );
  }
  const names =
    which === 'token' ? ['authentik-server', 'authentik-worker', NETBIRD_SERVER] : [NETBIRD_SERVER];
  const before = await inspectContainers(executor, cli, names);
  if (which === 'token') {
    // Checked first: a stopped Authentik would only fail after minutes of retries.
    for (const name of ['authentik-server', 'authentik-worker']) {
      const s = before.get(name);
      if (s?.status !== 'running') {
        throw new WorkError(
          `${name} is ${s ? s.status : 'missing'} on ${executor.where}: the token is minted inside Authentik; nothing changed`,
          'start the stack with just bifrost-up HOST (just bifrost-status HOST shows what runs), then run again',
        );
      }
    }
  }
  // The old token stays in .secrets.env until the engine has minted the new one: a failure before that
  // (its pre-flight included) leaves the host's token as it was.
  const { result, recreated } = await runSteps(executor, cli, out, which, NETBIRD_SERVER, before);
  return report(out, executor, cli, which, result, { previous, recreated });
}

/**
 * A new proxy access token: minted in netbird-server, its line in .secrets.env replaced once minted, the
 * proxy's env file rendered and netbird-proxy recreated on it. The old token stays valid in NetBird's
 * store until revoked there (`token list`, `token revoke ID`).
 */
async function convergeProxyToken(
  executor: Executor,
  cli: DockerCli,
  out: Output,
  previous: string | undefined,
): Promise<number> {
  await checkProxyTokenHost(executor, cli);
  const before = await inspectContainers(executor, cli, [NETBIRD_PROXY]);
  const { result, recreated } = await runSteps(executor, cli, out, 'proxy-token', NETBIRD_PROXY, before);
  const base = { where: executor.where, dir: cli.dir, command: 'proxy-token', recreated };
  if (result.failure) {
    const kept = tokenKept(result, 'netbird-proxy-token', NB_PROXY_TOKEN);
    out.error(
      `step ${result.failure.step} failed:\n${result.failure.message}`,
      `${kept}. ${result.failure.hint ?? ''}`.trim(),
    );
    out.result({ ok: false, ...base, bootstrap: result });
    return EXIT.failed;
  }
  const now = parseEnvFile((await executor.files.readFile(`${cli.dir}/${SECRETS_ENV}`)) ?? '').get(
    NB_PROXY_TOKEN,
  );
  out.info(
    out.color.green(
      `${mintedLine(NB_PROXY_TOKEN, previous, now)}; ${NETBIRD_PROXY} ${recreated ? 'recreated' : 'started'} on it`,
    ),
  );
  out.info(
    `the old token stays valid in NetBird until revoked: docker exec ${NETBIRD_SERVER} /go/bin/netbird-server token list --config /etc/netbird/config.yaml, then token revoke ID`,
  );
  out.result({ ok: true, ...base, token: { changed: now !== previous } });
  return EXIT.ok;
}

async function report(
  out: Output,
  executor: Executor,
  cli: DockerCli,
  which: Which,
  result: EngineResult,
  facts: { previous: string | undefined; recreated: boolean },
): Promise<number> {
  const config = result.steps.find((s) => s.id === 'netbird-config');
  const base = { where: executor.where, dir: cli.dir, command: which, recreated: facts.recreated };
  if (result.failure) {
    const kept = tokenKept(result, 'netbird-mgmt-token', NB_IDP_MGMT_TOKEN);
    const hint =
      which === 'token'
        ? `${kept}; netbird-server keeps its current config. ${result.failure.hint ?? ''} Run just bifrost-token HOST again once fixed.`
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
    out.info(mintedLine(NB_IDP_MGMT_TOKEN, facts.previous, now));
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
