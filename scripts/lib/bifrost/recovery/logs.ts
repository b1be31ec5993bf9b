/** bifrost logs: `docker logs --tail N SERVICE`, redacted with the operator's and the host's secret values. */
import { defineCommand, numberFlag } from '../../core/cli.ts';
import { EXIT, InputError, WorkError } from '../../core/errors.ts';
import { printable } from '../../core/printable.ts';
import { redactor } from '../../core/redact.ts';
import { logsArgv } from '../docker.ts';
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

export const summary = 'the last log lines of a service (--tail N, default 100), secrets redacted';

export const command = defineCommand({
  name: `${USAGE} logs`,
  synopsis: 'SERVICE (--host H | --local) [--tail N] [options]',
  description: `Prints \`docker logs --tail N SERVICE\` from the host. Every secret value is replaced by [REDACTED:NAME]
(in each of its encodings) before anything is printed: the values of the SOPS file (or, with --from-env, the
environment), read before connecting, and those of the host's .secrets.env and .env. Without the SOPS
file's values (no file, no age key) nothing is printed: exit 2.
SERVICE is one of: ${planServices()
    .map((s) => s.service)
    .join(', ')}.`,
  options: { ...RECOVERY_OPTIONS, ...SECRETS_OPTIONS, tail: { type: 'string' } },
  aliases: { file: 'secrets-file' },
  optionsHelp: `  --tail N             how many lines (default 100)
${SECRETS_OPTIONS_HELP}
${READ_ONLY_HELP}`,
  positionals: { max: 1 },
  footer: 'just: bifrost-logs HOST SERVICE [--tail N]',
  exits: {
    failed: 'docker failed (no such container), or no bundle at --remote-dir',
    badInput: 'unknown service, the secret values cannot be read, or bad input',
  },
  async run(flags, positionals, out) {
    const known = planServices().map((s) => s.service);
    const [service] = positionals;
    if (!service) throw new InputError('say which service', `one of: ${known.join(', ')}`);
    if (!known.includes(service))
      throw new InputError(`unknown service "${service}"`, `one of: ${known.join(', ')}`);
    const tail = numberFlag('tail', flags.tail, 'positive-integer', 100);
    const { cli, host } = requireHost(flags, `${USAGE} logs`);
    // Before connecting: without the operator's values the redactor would know only what the host says.
    await registerOperatorSecrets(flags, out);
    return withHost({ ...flags, host }, out, cli, async (executor) => {
      await requireBundleDir(executor, cli.dir);
      // The host's own too: a token minted there is in no SOPS file.
      await registerHostSecrets(executor, cli.dir);
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
      if (r.stderr)
        process.stderr.write(
          printable(redactor.redact(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`)),
        );
      out.result({ ok: true, where: executor.where, service, tail, stdout: r.stdout, stderr: r.stderr });
      return EXIT.ok;
    });
  },
});
