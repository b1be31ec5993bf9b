/** bifrost verify: compare the host's bundle and secret fingerprints with what a provision would upload now. */
import { resolve } from 'node:path';
import { defineCommand } from '../../core/cli.ts';
import { EXIT } from '../../core/errors.ts';
import { formatTable } from '../../core/format.ts';
import { FINGERPRINT_KEY } from '../../secrets/registry.ts';
import { keysFor } from '../../secrets/schema.ts';
import { formatProblems } from '../../secrets/validate.ts';
import { compareSecrets, DEPLOYED_FILE, HostFingerprints, readDeployed } from '../deployed.ts';
import { parseEnvFile } from '../env-file.ts';
import { provisionCommand, requireHost, withHost } from '../host-flags.ts';
import { DOT_ENV, hasToken, SECRETS_ENV } from '../host-state.ts';
import { NB_IDP_MGMT_TOKEN } from '../plan.ts';
import { buildProvisionInput, DEFAULT_BUNDLE_DIR, keepHostHashes } from '../provision-input.ts';
import { BIFROST_CONSUMERS } from '../render-env.ts';
import { compareFiles, MANIFEST, manifestSalt, parseManifest, type Verdict } from '../upload.ts';
import {
  paintVerdict,
  READ_ONLY_HELP,
  RECOVERY_OPTIONS,
  requireBundleDir,
  SECRETS_OPTIONS,
  SECRETS_OPTIONS_HELP,
  USAGE,
} from './common.ts';

export const summary = `compare the host's bundle and secret fingerprints with what provision-bifrost would
upload now; exit 1 when anything differs`;

export const command = defineCommand({
  name: `${USAGE} verify`,
  synopsis: '(--host H | --local) [options]',
  description: `Compares the host with what \`just bifrost-up\` would upload now: each bundle file (the local bundle and the
env files rendered in memory from the secrets, against the host's ${MANIFEST} and the files themselves)
is same / differs / missing on host / only on host; each Bifrost secret is same / differs by its SHA-256
fingerprint in the host's ${DEPLOYED_FILE} (never a value). Changes nothing.`,
  options: {
    ...RECOVERY_OPTIONS,
    ...SECRETS_OPTIONS,
    bundle: { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${SECRETS_OPTIONS_HELP}
  --bundle DIR         the local bundle (default cloud/bifrost of this checkout)
${READ_ONLY_HELP}`,
  footer: 'just: bifrost-verify HOST',
  exits: {
    ok: 'everything the same',
    failed: 'something differs (run: just bifrost-up HOST), or no bundle at --remote-dir',
  },
  async run(flags, _positionals, out) {
    const { cli, host } = requireHost(flags, `${USAGE} verify`);
    // Everything local first, exactly as provision-bifrost builds it, so bad input fails before connecting.
    const { required, optional } = keysFor(BIFROST_CONSUMERS);
    const input = await buildProvisionInput({
      secretsFile: flags['secrets-file'],
      fromEnv: Boolean(flags['from-env']),
      bundleDir: flags.bundle,
    });
    const { loaded, problems } = input;
    out.info(`source  ${loaded.describe}`);
    for (const warning of loaded.warnings) out.warn(warning);
    if (problems.length > 0) {
      out.warn(
        `provision-bifrost would refuse these secrets until they are fixed:\n${formatProblems(problems)}`,
      );
    }
    out.info(
      `bundle  ${resolve(flags.bundle ?? DEFAULT_BUNDLE_DIR)} (${input.files.length - 2} files) + ${SECRETS_ENV} and ${DOT_ENV} rendered in memory`,
    );
    // Only what the Bifrost host reads: provision records every loaded key, but a change in a key the host
    // never sees uploads nothing, so reporting it as "differs" would never clear.
    const bifrostKeys = [...required, ...optional] as string[];

    return withHost({ ...flags, host }, out, cli, async (executor) => {
      await requireBundleDir(executor, cli.dir);
      const [manifestText, deployed, hostSecretsEnv, hostDotEnv] = await Promise.all([
        executor.files.readFile(`${cli.dir}/${MANIFEST}`),
        readDeployed(executor.files, cli.dir),
        executor.files.readFile(`${cli.dir}/${SECRETS_ENV}`),
        executor.files.readFile(`${cli.dir}/${DOT_ENV}`),
      ]);
      // As provision renders them once connected: a password hash the host holds is kept while it verifies.
      const { files } = keepHostHashes(input, { [SECRETS_ENV]: hostSecretsEnv, [DOT_ENV]: hostDotEnv });
      const manifest = parseManifest(manifestText, (why) => out.warn(`${cli.dir}/${MANIFEST} ${why}`));
      if (!manifest) {
        out.warn(
          manifestText === undefined
            ? `no ${MANIFEST} in ${cli.dir}: nothing was provisioned there (or --remote-dir is wrong)`
            : `${cli.dir}/${MANIFEST} is unreadable; the next provision sends every file`,
        );
      }
      const fp = HostFingerprints.forHost(
        loaded.values[FINGERPRINT_KEY],
        deployed,
        manifestSalt(manifestText),
      );
      const fileVerdicts = await compareFiles(executor, cli.dir, files, manifest ?? {}, (data) =>
        fp.digest(data),
      );
      const secrets = compareSecrets(bifrostKeys, loaded.values, deployed, fp);
      // The engine's own line: provision does not render it, so its absence is only seen on the host.
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
      const paint = (cell: string, column: number) => (column === 1 ? paintVerdict(out, cell) : cell);
      out.data(
        formatTable(['file', 'status', 'note'], show(fileVerdicts.map((f) => ({ name: f.path, ...f }))), {
          paint,
        }),
      );
      out.data('');
      out.data(
        formatTable(['secret', 'status', 'note'], show(secrets.map((s) => ({ name: s.key, ...s }))), {
          paint,
        }),
      );
      const differing = [...fileVerdicts, ...secrets].filter((v) => v.status !== 'same');
      const ok = differing.length === 0;
      if (ok) {
        out.info(
          out.color.green(
            `the host matches: ${fileVerdicts.length} files and ${secrets.length} secrets the same`,
          ),
        );
      } else {
        const editedOnHost = fileVerdicts.filter((f) => f.editedOnHost);
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
        out.info(`to bring the host in line, run: ${provisionCommand(flags)}`);
      }
      out.result({ ok, where: executor.where, dir: cli.dir, files: fileVerdicts, secrets });
      return ok ? EXIT.ok : EXIT.failed;
    });
  },
});
