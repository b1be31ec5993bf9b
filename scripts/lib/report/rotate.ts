/**
 * `secrets rotate`: new values for the given keys (secrets/rotate.ts writes them), then what must be
 * redeployed. What the rotated keys mean to redeploy is a view over the bundle, a tier the rotation does
 * not know; so the rotation returns what changed and this view says where it goes.
 */
import { EXIT } from '../core/errors.ts';
import type { Output } from '../core/output.ts';
import { type RotateOptions, rotateSecrets } from '../secrets/rotate.ts';
import { formatRedeploy, redeployFor } from './redeploy.ts';

export async function secretsRotate(
  opts: Pick<RotateOptions, 'file' | 'keys' | 'allowRotate' | 'dryRun'> & { bundle?: string },
  out: Output,
): Promise<number> {
  const { file } = opts;
  const rotation = await rotateSecrets({
    file,
    keys: opts.keys,
    allowRotate: opts.allowRotate,
    dryRun: opts.dryRun,
  });
  const redeploy = await redeployFor(
    rotation.rotated.map((k) => k.key),
    opts.bundle,
  );
  const r = {
    file: rotation.file,
    written: rotation.written,
    rotated: rotation.rotated,
    redeploy,
    warnings: rotation.warnings,
  };
  for (const warning of r.warnings) out.warn(warning);
  for (const k of r.rotated) {
    const shown = `${k.key} (${k.generator}: ${k.length} chars${k.fingerprint ? `, ${k.fingerprint}` : ''})`;
    out.info(`${r.written ? 'rotated' : 'would rotate'}  ${shown}`);
    if (k.effect) out.warn(`${k.key}: ${k.effect}`);
  }
  out.info(formatRedeploy(r.redeploy, file).join('\n'));
  out.info(
    r.written
      ? out.color.green(`wrote ${file}: ${r.rotated.length} key(s) rotated`)
      : out.color.cyan(`dry run: ${file} not written`),
  );
  out.result({ ok: true, ...r });
  return EXIT.ok;
}
