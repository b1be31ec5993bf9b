/** bifrost status: every plan service's container state and health (one `docker inspect`). */
import { defineCommand } from '../../core/cli.ts';
import { EXIT, InputError } from '../../core/errors.ts';
import { formatDuration, formatTable } from '../../core/format.ts';
import { type ContainerState, inspectContainers, isReady } from '../docker.ts';
import { requireHost, withHost } from '../host-flags.ts';
import { registerHostSecrets } from '../host-state.ts';
import { planServices } from '../plan.ts';
import {
  READ_ONLY_HELP,
  RECOVERY_OPTIONS,
  registerOperatorSecrets,
  requireBundleDir,
  SECRETS_OPTIONS,
  SECRETS_OPTIONS_HELP,
  USAGE,
} from './common.ts';

export interface ServiceStatus {
  service: string;
  state: string;
  health: string;
  startedAt?: string;
  ready: boolean;
  /** Missing because its optional secret is not set: expected, not a failure. */
  skipped: boolean;
  note: string;
}

export const summary = "each service's container state and health, as a table";

export const command = defineCommand({
  name: `${USAGE} status`,
  synopsis: '(--host H | --local) [options]',
  description: `Shows every Bifrost service's container state and health (one \`docker inspect\` of all of them).
Services gated by an optional secret that is not set (netbird-agent without NB_BIFROST_SETUP_KEY) are
reported as skipped, not as failures. A failing health check's last output comes from the container: it
is shown (redacted) only when the SOPS file's values (or, with --from-env, the environment's) can be read;
without them the table is shown without it, with a warning. Changes nothing.`,
  options: { ...RECOVERY_OPTIONS, ...SECRETS_OPTIONS },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${SECRETS_OPTIONS_HELP}
${READ_ONLY_HELP}`,
  footer: 'just: bifrost-status HOST [--json]',
  exits: {
    ok: 'every service that should run is running and healthy',
    failed: 'one is not (or docker failed, or no bundle at --remote-dir)',
  },
  async run(flags, _positionals, out) {
    const { cli, host } = requireHost(flags, `${USAGE} status`);
    // Container states are never secret, a health check's output may be: it is hidden, not the table.
    const showChecks = await registerOperatorSecrets(flags, out).then(
      () => true,
      (err: unknown) => {
        if (!(err instanceof InputError)) throw err;
        out.warn(`health-check output is not shown: ${err.message}\n(${err.hint})`);
        return false;
      },
    );
    return withHost({ ...flags, host }, out, cli, async (executor) => {
      await requireBundleDir(executor, cli.dir);
      const { secrets } = await registerHostSecrets(executor, cli.dir);
      const services = planServices();
      const states = await inspectContainers(
        executor,
        cli,
        services.map((s) => s.service),
      );
      const rows = services.map(({ service, gate }) =>
        serviceStatus(service, states.get(service), gate, secrets, showChecks),
      );
      out.data(
        formatTable(
          ['service', 'state', 'health', 'up', 'note'],
          rows.map((r) => [
            r.service,
            r.state,
            r.health,
            r.startedAt ? formatDuration(Date.now() - Date.parse(r.startedAt)) : '',
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
  },
});

function serviceStatus(
  service: string,
  s: ContainerState | undefined,
  gate: string | undefined,
  secrets: Map<string, string>,
  showChecks: boolean,
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
    note: ready || !lastCheck ? '' : showChecks ? `last check: ${lastCheck}` : 'last check: (not shown)',
  };
}
