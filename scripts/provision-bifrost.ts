/**
 * provision-bifrost: renders .secrets.env and .env in memory from the bootstrap secrets, uploads the
 * cloud/bifrost bundle over one SSH connection (staged, swapped in by rename, incremental), then runs
 * the bootstrap engine over the same connection. Replaces the original's Pulumi step.
 */

import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { checkBundleContent } from './lib/bifrost/bundle-preflight.ts';
import { bundleProblems, requireSoundBundle, uploadedText } from './lib/bifrost/check-bundle.ts';
import {
  bundleDigest,
  checkGuardedSecrets,
  type DeployedState,
  HostFingerprints,
  readDeployed,
  sameBundle,
  writeDeployed,
} from './lib/bifrost/deployed.ts';
import { formatStatusTable, runBifrostBootstrap } from './lib/bifrost/engine.ts';
import { HOST_OPTIONS, HOST_OPTIONS_HELP, openHost, requireHost } from './lib/bifrost/host-flags.ts';
import {
  carryToken,
  DOT_ENV,
  RENDERED_ENV_FILES,
  readHostEnvState,
  SECRETS_ENV,
} from './lib/bifrost/host-state.ts';
import { NB_IDP_MGMT_TOKEN } from './lib/bifrost/plan.ts';
import { buildProvisionInput, keepHostHashes } from './lib/bifrost/provision-input.ts';
import { COMMON_OPTIONS, defineCommand, type Flags, numberFlag, runMain } from './lib/cli.ts';
import { EXIT, InputError } from './lib/errors.ts';
import { LocalExecutor } from './lib/exec/local.ts';
import type { Output } from './lib/output.ts';
import { runContext, withCleanup } from './lib/run-context.ts';
import { FINGERPRINT_KEY } from './lib/secrets/registry.ts';
import { DEFAULT_SECRETS_FILE } from './lib/secrets/source.ts';
import { formatProblems, splitProblems } from './lib/secrets/validate.ts';

const USAGE = 'node --import tsx scripts/provision-bifrost.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...HOST_OPTIONS,
  'secrets-file': { type: 'string' },
  'from-env': { type: 'boolean' },
  force: { type: 'boolean' },
  'allow-rotate': { type: 'string', multiple: true },
  'lock-wait': { type: 'string' },
  'write-local': { type: 'string' },
  'dry-run': { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  strict: { type: 'boolean' },
  bundle: { type: 'string' },
} as const;

export const command = defineCommand({
  name: USAGE,
  synopsis: '(--host H | --local) [options]',
  description: `Provisions the Bifrost VPS in one SSH connection (--local: this machine, on the VPS itself):
  1. renders .secrets.env and .env in memory from the bootstrap secrets (nothing written locally;
     NB_OWNER_PASSWORD only as its bcrypt hash, the host's kept while it verifies), and checks the
     bundle as \`bifrost check-bundle\` does: a problem stops the run (exit 2) before connecting
  2. refuses a changed NB_DATA_STORE_KEY / NB_RELAY_SECRET / Authentik key unless --allow-rotate KEY
  3. uploads cloud/bifrost/ to --remote-dir: only changed files, into a staging directory that replaces
     the live one by rename when complete; secret files are 0600 from creation
  4. runs the bootstrap (service order, health, Authentik token, NetBird config) over the same
     connection, its output streamed; skipped when nothing changed since the last deploy (--force runs it)
A lock on the host stops two operators provisioning at once; a lock whose run is provably gone (it ran
on this machine and its process has ended, even if its take was cut short; or it never recorded its holder,
after 60 s) is taken over with a notice.
Ctrl-C (SIGINT) or SIGTERM stops the work, releases the lock and says what was interrupted.`,
  options: OPTIONS,
  aliases: { file: 'secrets-file' },
  optionsHelp: `${HOST_OPTIONS_HELP}
  --secrets-file F     SOPS file (default ${DEFAULT_SECRETS_FILE}); --file F is the same; --from-env
                       takes the environment
  --force              run the bootstrap even when nothing changed
  --allow-rotate KEY   accept a changed guarded secret (repeatable)
  --strict             refuse a hand-made token (Cloudflare, NetBird) whose format is not the vendor's
                       documented one; without it that is a warning and the value is used
  --lock-wait S        wait up to S seconds for another operator's lock (default 0)
  --write-local DIR    also write the rendered .secrets.env and .env to DIR (0600, atomic)
  --bundle DIR         the local bundle to upload (default cloud/bifrost of this checkout)
  --dry-run            say what would be uploaded and run; change nothing (--write-local writes nothing)
  -y, --yes            no prompts (it asks none)`,
  exits: {
    ok: 'done (or nothing to do)',
    failed: 'failed while working (a step, the lock held by another run)',
    badInput: 'bad input (missing or malformed secrets, a guarded secret changed, host key refused)',
  },
  run: (flags, _positionals, out) => provision(flags, out),
});

export const main = command.main;

async function provision(flags: Flags<typeof OPTIONS>, out: Output): Promise<number> {
  const { cli } = requireHost(flags, USAGE);
  const lockWait = numberFlag('lock-wait', flags['lock-wait'], 'non-negative', 0);
  const remoteDir = cli.dir;
  const allowRotate = flags['allow-rotate'] ?? [];

  // 1. Secrets, validated and rendered before any connection.
  const input = await buildProvisionInput({
    secretsFile: flags['secrets-file'],
    fromEnv: Boolean(flags['from-env']),
    bundleDir: flags.bundle,
    strict: Boolean(flags.strict),
  });
  const { loaded, problems, rendered } = input;
  out.info(`source  ${loaded.describe}`);
  for (const warning of loaded.warnings) out.warn(warning);
  const { errors, warnings } = splitProblems(problems);
  for (const w of warnings) out.warn(`${w.key}: ${w.detail}`);
  if (errors.length > 0) {
    throw new InputError(
      `nothing done: the Bifrost secrets have problems:\n${formatProblems(errors)}`,
      `edit the SOPS file (just secrets-edit), then run again`,
    );
  }
  // check-bundle against the pinned images, then the engine's own checks on the rendered files: so
  // nothing goes live half-checked.
  requireSoundBundle(await bundleProblems(uploadedText(input.files)), flags.bundle ?? 'cloud/bifrost');
  await checkBundleContent(input.files);
  if (flags['write-local']) await writeLocal(flags['write-local'], rendered, out, Boolean(flags['dry-run']));

  // 2. One SSH connection for everything.
  const executor = await openHost(flags);
  const work = async () => {
    runContext.setPhase('reading the deploy record', NOTHING_CHANGED);
    out.info(`target  ${executor.where}:${remoteDir}`);
    const { lockHost } = await import('./lib/bifrost/lock.ts');
    const { editedOnHost, MANIFEST, manifestSalt, parseManifest, planUpload, uploadBundle } = await import(
      './lib/bifrost/upload.ts'
    );
    const [deployed, manifestText, hostEnv] = await Promise.all([
      readDeployed(executor.files, remoteDir),
      executor.files.readFile(`${remoteDir}/${MANIFEST}`),
      readHostEnvState(executor, remoteDir),
    ]);
    // What goes up keeps the host's password hashes while they verify: an unchanged password sends nothing.
    const { files } = keepHostHashes(input, hostEnv.texts);
    const fp = HostFingerprints.forHost(loaded.values[FINGERPRINT_KEY], deployed, manifestSalt(manifestText));
    const secretDigest = (data: Buffer) => fp.digest(data);
    const { guarded, rotated } = checkGuardedSecrets(loaded.values, deployed, allowRotate, fp, hostEnv.texts);
    for (const key of rotated) out.warn(`${key} rotates (allowed by --allow-rotate)`);
    // The host's own state, not only our inputs: an env file unchanged here since it was sent but not as
    // sent on the host is sent again (the manifest alone cannot show it; the upload names a bad manifest
    // itself), and a missing NB_IDP_MGMT_TOKEN (a hand edit) makes the bootstrap run to mint it.
    const resend = editedOnHost(
      RENDERED_ENV_FILES,
      files,
      parseManifest(manifestText) ?? {},
      hostEnv.texts,
      secretDigest,
    );
    for (const file of resend) out.info(`host    ${file} was edited on the host; sending it again`);
    const tokenMissing = hostEnv.tokenMissing;
    if (tokenMissing && deployed)
      out.info(`host    ${SECRETS_ENV} holds no ${NB_IDP_MGMT_TOKEN}; the bootstrap mints it`);
    // What goes up: .secrets.env keeps the host's token whenever it is sent (carryToken). Everything that
    // compares (the manifest's digests, the deploy record's bundle digest) leaves that line out.
    const toSend = files.map((f) =>
      f.path === SECRETS_ENV
        ? { ...f, content: carryToken(String(f.content), hostEnv.texts[SECRETS_ENV]) }
        : f,
    );
    const uploadOptions = {
      resend,
      secretDigest,
      salt: fp.salt,
      onWarning: (line: string) => out.warn(line),
    };

    if (flags['dry-run']) {
      const plan = await planUpload(executor, remoteDir, toSend, uploadOptions);
      out.info(
        `upload  ${plan.changed.length} changed: ${plan.changed.join(', ') || 'none'}; ${plan.unchanged.length} unchanged; ${plan.removed.length} removed`,
      );
      const wouldRun =
        flags.force ||
        plan.changed.length > 0 ||
        plan.removed.length > 0 ||
        tokenMissing ||
        !sameBundle(fp, deployed, files);
      out.info(`bootstrap  ${wouldRun ? 'would run' : 'would be skipped: nothing changed'}`);
      out.result({ ok: true, dryRun: true, where: executor.where, remoteDir, ...plan, bootstrap: wouldRun });
      return EXIT.ok;
    }

    runContext.setPhase('taking the host lock', NOTHING_CHANGED);
    const lock = await lockHost(executor, remoteDir, 'provision-bifrost', lockWait, out);
    const locked = async () => {
      // 3. Upload.
      runContext.setPhase(
        'upload',
        'the live bundle is unchanged (a swap cut short is put back by the next run)',
      );
      const upload = await uploadBundle(executor, remoteDir, toSend, {
        ...uploadOptions,
        onProgress: (line) => out.detail(line),
      });
      out.info(
        `upload  ${upload.changed.length} file(s) sent (${upload.changed.join(', ') || 'none'}), ${upload.unchanged.length} unchanged, ${upload.removed.length} removed`,
      );
      const unchanged =
        upload.changed.length === 0 &&
        upload.removed.length === 0 &&
        !tokenMissing &&
        sameBundle(fp, deployed, files);
      if (unchanged && !flags.force) {
        out.info(
          out.color.green('nothing changed since the last deploy: bootstrap skipped (--force runs it)'),
        );
        out.result({ ok: true, where: executor.where, remoteDir, upload, bootstrap: 'skipped' });
        return EXIT.ok;
      }

      // 4. The bootstrap, over the same connection, its output streamed as it happens.
      runContext.setPhase('bootstrap', 'the new bundle is live; services already started keep running');
      const result = await runBifrostBootstrap({ executor, cli, out });
      out.info(`\n${formatStatusTable(result)}`);
      if (result.failure) {
        out.error(`step ${result.failure.step} failed:\n${result.failure.message}`, result.failure.hint);
        out.result({ ok: false, where: executor.where, remoteDir, upload, bootstrap: result });
        return EXIT.failed;
      }
      const state: DeployedState = {
        version: 2,
        salt: fp.salt,
        keyCheck: fp.keyCheck,
        bundleDigest: bundleDigest(fp, files),
        secrets: fp.secretsOf(loaded.values),
        guarded,
        deployedAt: new Date().toISOString(),
        by: `${userInfo().username}@${hostname()}`,
      };
      runContext.setPhase(
        'recording the deploy',
        'the services are up; the next run runs the bootstrap again',
      );
      await writeDeployed(executor.files, remoteDir, state);
      out.info(out.color.green(`bifrost provisioned in ${result.seconds.toFixed(1)} s`));
      out.result({ ok: true, where: executor.where, remoteDir, upload, bootstrap: result });
      return EXIT.ok;
    };
    // A failed release never hides the failure that came before it (withCleanup attaches it).
    return withCleanup(locked, async () => {
      runContext.setPhase('releasing the host lock');
      await lock.release();
    });
  };
  return withCleanup(work, () => executor.close());
}

const NOTHING_CHANGED = 'nothing was changed on the host';

async function writeLocal(
  dir: string,
  rendered: { secretsEnv: string; dotEnv: string },
  out: Output,
  dryRun: boolean,
): Promise<void> {
  // A dry run changes nothing, on this machine either.
  if (dryRun) {
    out.info(`dry run: would write .secrets.env and .env to ${dir} (0600); nothing written`);
    return;
  }
  const local = new LocalExecutor();
  await local.files.writeFileAtomic(resolve(dir, SECRETS_ENV), rendered.secretsEnv, 0o600);
  await local.files.writeFileAtomic(resolve(dir, DOT_ENV), rendered.dotEnv, 0o600);
  out.warn(`wrote .secrets.env and .env to ${dir} (0600): plaintext secrets on this machine, as asked`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain((out) => main(process.argv.slice(2), out));
}
