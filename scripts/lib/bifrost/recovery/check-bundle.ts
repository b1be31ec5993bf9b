/** bifrost check-bundle: read a local bundle against the plan and the pinned images' facts (no host, no secret). */
import { resolve } from 'node:path';
import { COMMON_OPTIONS, defineCommand } from '../../core/cli.ts';
import { EXIT } from '../../core/errors.ts';
import { DEFAULT_BUNDLE_DIR } from '../provision-input.ts';
import { USAGE } from './common.ts';

export const summary = `read a local bundle against the plan and the pinned images' facts; no --host,
no secrets (exit 2 naming every problem)`;

export const command = defineCommand({
  name: `${USAGE} check-bundle`,
  synopsis: '[--bundle DIR] [--json]',
  description: `Reads a bundle directory (default cloud/bifrost of this checkout) as provision-bifrost would upload it,
against the service plan (scripts/lib/bifrost/plan.ts), the secret schema and the facts of the pinned
images (scripts/lib/bifrost/pinned-images.ts). Needs no host and no secret. Names every problem with its
file, line and fix: a compose service no plan step starts, a plan step without its service, a template
placeholder with no source, a NetBird config key the pinned server does not read, a healthcheck running a
program or flag its image lacks, a compose \${VAR} that .env never sets, an env_file or mount neither in
the bundle nor rendered, a Traefik router whose service is undefined or whose rule Traefik v3 refuses,
NetBird reverse-proxy settings that disagree with Traefik (TCP passthrough, PROXY protocol, trusted
proxies, NB_PROXY_ALLOW_INSECURE for a plain-HTTP management address) or that it does not read, a
Traefik ACME resolver without an account email Let's Encrypt takes or with the DNS challenge keys
deprecated in v3.3, a NetBird agent healthcheck that does not fail while the agent is not connected
to management, a proxy whose token no step mints or a token step the pinned server image cannot run (a
bare netbird-server, not on its PATH), a step that waits for the ak-shell token without reading
NB_IDP_MGMT_TOKEN or reads it without waiting.
With --json: { ok, dir, problems: [{ check, file, line?, problem, fix }] } on stdout.`,
  options: { ...COMMON_OPTIONS, bundle: { type: 'string' } },
  aliases: { dir: 'bundle' },
  optionsHelp: `  --bundle DIR         the local bundle directory (default cloud/bifrost), as for provision-bifrost
  --dir DIR            the same as --bundle`,
  footer: 'just: bifrost-check-bundle [--bundle DIR] [--json]',
  exits: {
    ok: 'the bundle is sound',
    failed: 'failed while reading the bundle',
    badInput: 'problems found (or bad input)',
  },
  async run(flags, _positionals, out) {
    const dir = resolve(flags.bundle ?? DEFAULT_BUNDLE_DIR);
    const { checkBundle, formatBundleProblem } = await import('../check-bundle.ts');
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
  },
});
