/** bifrost logs: `docker logs --tail N SERVICE`, redacted with the host's own secret values. */
import { defineCommand, numberFlag } from '../../cli.ts';
import { EXIT, InputError, WorkError } from '../../errors.ts';
import { redactor } from '../../redact.ts';
import { logsArgv } from '../docker.ts';
import { requireHost, withHost } from '../host-flags.ts';
import { DOT_ENV, registerHostSecrets, SECRETS_ENV } from '../host-state.ts';
import { planServices } from '../plan.ts';
import { READ_ONLY_HELP, RECOVERY_OPTIONS, requireBundleDir, USAGE } from './common.ts';

export const summary = 'the last log lines of a service (--tail N, default 100), secrets redacted';

export const command = defineCommand({
  name: `${USAGE} logs`,
  synopsis: 'SERVICE --host H [--tail N] [options]',
  description: `Prints \`docker logs --tail N SERVICE\` from the host. The values of the host's .secrets.env and .env are
read first (over SFTP) and every one of them is replaced by [REDACTED:NAME] before anything is printed.
SERVICE is one of: ${planServices()
    .map((s) => s.service)
    .join(', ')}.`,
  options: { ...RECOVERY_OPTIONS, tail: { type: 'string' } },
  optionsHelp: `  --tail N             how many lines (default 100)
${READ_ONLY_HELP}`,
  positionals: { max: 1 },
  footer: 'just: bifrost-logs HOST SERVICE [--tail N]',
  exits: {
    failed: 'docker failed (no such container), or no bundle at --remote-dir',
    badInput: 'unknown service or bad input',
  },
  async run(flags, positionals, out) {
    const known = planServices().map((s) => s.service);
    const [service] = positionals;
    if (!service) throw new InputError('say which service', `one of: ${known.join(', ')}`);
    if (!known.includes(service))
      throw new InputError(`unknown service "${service}"`, `one of: ${known.join(', ')}`);
    const tail = numberFlag('tail', flags.tail, 'positive-integer', 100);
    const { cli, host } = requireHost(flags, `${USAGE} logs`);
    return withHost({ ...flags, host }, out, cli, async (executor) => {
      await requireBundleDir(executor, cli.dir);
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
      if (r.stderr)
        process.stderr.write(redactor.redact(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`));
      out.result({ ok: true, where: executor.where, service, tail, stdout: r.stdout, stderr: r.stderr });
      return EXIT.ok;
    });
  },
});
