/**
 * The provision-bifrost command's work: renders .secrets.env and .env in memory from the bootstrap
 * secrets, uploads the cloud/bifrost bundle over one SSH connection (staged, swapped in by rename,
 * incremental), then runs the bootstrap engine over the same connection.
 */

import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { numberFlag } from '../core/cli.ts';
import { EXIT, InputError } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { runContext, withCleanup } from '../core/run-context.ts';
import { LocalExecutor } from '../exec/local.ts';
import { FINGERPRINT_KEY } from '../secrets/registry.ts';
import { formatProblems, splitProblems } from '../secrets/validate.ts';
import { checkBundleContent } from './bundle-preflight.ts';
import { bundleProblems, requireSoundBundle, uploadedText } from './check-bundle.ts';
import {
  bundleDigest,
  checkGuardedSecrets,
  type DeployedState,
  HostFingerprints,
  readDeployed,
  sameBundle,
  writeDeployed,
} from './deployed.ts';
import { formatStatusTable, runBifrostBootstrap } from './engine.ts';
import { type HostFlags, openHost, requireHost } from './host-flags.ts';
import { carryToken, DOT_ENV, RENDERED_ENV_FILES, readHostEnvState, SECRETS_ENV } from './host-state.ts';
import { NB_IDP_MGMT_TOKEN } from './plan.ts';
import { buildProvisionInput, keepHostHashes } from './provision-input.ts';
import type { BundleFile } from './upload.ts';

/** The flags provision-bifrost takes (its entry script defines them). */
export interface ProvisionFlags extends HostFlags {
  'secrets-file'?: string;
  'from-env'?: boolean;
  force?: boolean;
  'allow-rotate'?: string[];
  'lock-wait'?: string;
  'write-local'?: string;
  'dry-run'?: boolean;
  strict?: boolean;
  bundle?: string;
}

export async function provisionBifrost(flags: ProvisionFlags, out: Output, usage: string): Promise<number> {
  const { cli } = requireHost(flags, usage);
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
    out.info(`target  ${executor.where}:${remoteDir}`);
    const { lockHost } = await import('./lock.ts');
    const { editedOnHost, MANIFEST, manifestSalt, parseManifest, planUpload, uploadBundle } = await import(
      './upload.ts'
    );
    // The lock first, then the host's state: a run that waited for another reads what that run left (its
    // minted token, its deploy record), never a state from before the wait. A dry run changes nothing and
    // takes no lock.
    const takeLock = () => {
      runContext.setPhase('taking the host lock', NOTHING_CHANGED);
      return lockHost(executor, remoteDir, 'provision-bifrost', lockWait, out);
    };
    const lock = flags['dry-run'] ? undefined : await takeLock();
    const locked = async () => {
      runContext.setPhase('reading the deploy record', NOTHING_CHANGED);
      const [deployed, manifestText, hostEnv] = await Promise.all([
        readDeployed(executor.files, remoteDir),
        executor.files.readFile(`${remoteDir}/${MANIFEST}`),
        readHostEnvState(executor, remoteDir),
      ]);
      // What goes up keeps the host's password hashes while they verify: an unchanged password sends nothing.
      const { files } = keepHostHashes(input, hostEnv.texts);
      const fp = HostFingerprints.forHost(
        loaded.values[FINGERPRINT_KEY],
        deployed,
        manifestSalt(manifestText),
      );
      const secretDigest = (data: Buffer) => fp.digest(data);
      const { guarded, rotated } = checkGuardedSecrets(
        loaded.values,
        deployed,
        allowRotate,
        fp,
        hostEnv.texts,
      );
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
        out.result({
          ok: true,
          dryRun: true,
          where: executor.where,
          remoteDir,
          ...plan,
          bootstrap: wouldRun,
        });
        return EXIT.ok;
      }

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
      const result = await runBifrostBootstrap({
        executor,
        cli,
        out,
        envFiles: sentEnvFiles(toSend, upload.changed),
      });
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
    if (!lock) return locked();
    // A failed release never hides the failure that came before it (withCleanup attaches it).
    return withCleanup(locked, async () => {
      runContext.setPhase('releasing the host lock');
      await lock.release();
    });
  };
  return withCleanup(work, () => executor.close());
}

const NOTHING_CHANGED = 'nothing was changed on the host';

/**
 * The env files the upload sent, as sent: on the host now exactly, so the engine takes them from memory
 * instead of reading them back. One it did not send (unchanged) is the host's own copy, which the engine
 * reads there as it stands, token lines and all.
 */
function sentEnvFiles(files: readonly BundleFile[], sent: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    files
      .filter((f) => RENDERED_ENV_FILES.includes(f.path) && sent.includes(f.path))
      .map((f) => [f.path, String(f.content)]),
  );
}

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
