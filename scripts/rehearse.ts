/**
 * rehearse (sandbox): the guide's Bifrost days on this machine, with neither a VPS nor Docker. A rehearsal
 * target directory stands in for the host: the product's own commands run with --local on TARGET/bifrost
 * (the real local executor, upload, lock and engine), and `docker` on their PATH is the docker simulator
 * (scripts/lib/sandbox/), whose containers and event log are kept in TARGET between commands, so that
 * consecutive commands see one host: day 1, a secret added, day 2, `bifrost status`, ...
 */
import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';
import type { Output } from './lib/core/output.ts';
import { HOST_COMMANDS, rehearse, splitRehearsal, USAGE } from './lib/sandbox/rehearse.ts';

const defined = defineCommand({
  name: USAGE,
  synopsis: '[--target DIR] (up | bootstrap | bifrost COMMAND | clean) [ITS OPTIONS...]',
  description: `Rehearses the Bifrost days of the operator guide on this machine, without a VPS or Docker. The
target directory stands in for the host; each command runs the product's own command on it with --local
(the real local executor, upload, host lock and bootstrap engine), with \`docker\` on its PATH being the
sandbox's docker simulator on a shortened timeline (every second of the real one is 20 ms). The
simulator's containers and event log are kept in the target between commands, so consecutive commands see
one host.
  up [OPTIONS]           provision-bifrost --local (day 1, and every day after): --secrets-file F or
                         --from-env, --force, --dry-run, ... as \`just bifrost-up\` takes them
  bootstrap [OPTIONS]    bifrost-bootstrap --local on the target's bundle
  bifrost COMMAND [...]  a recovery command on the target: ${HOST_COMMANDS.join(', ')}
  clean                  removes the target
Everything after the command word is that command's own (\`rehearse.ts up --help\` shows provision-bifrost's
options). The target holds what a host holds, .secrets.env included (0600, in a 0700 directory): remove it
with clean when done. One command at a time per target.`,
  options: { ...COMMON_OPTIONS, target: { type: 'string' } },
  optionsHelp: `  --target DIR         the rehearsal target (default .rehearsal in the checkout; made 0700 when missing)`,
  positionals: {
    min: 1,
    max: Number.POSITIVE_INFINITY,
    name: 'command (up, bootstrap, bifrost COMMAND, clean)',
  },
  footer: `justfile: just rehearse-up [OPTIONS], just rehearse bifrost COMMAND [OPTIONS], just rehearse-clean`,
  exits: {
    ok: "the rehearsed command's exit code: 0 done",
    failed: 'it failed while working (or the simulator could not start)',
    badInput: 'bad input (its own, or a target that is not a rehearsal target)',
  },
  run: (flags, positionals, out) => rehearse(flags.target, positionals, out),
});

/** The words after `--` are positionals to this parser: it leaves the rehearsed command's alone. */
export const command = {
  ...defined,
  main: (argv: string[], out: Output) => {
    const { own, words } = splitRehearsal(argv);
    return defined.main([...own, '--', ...words], out);
  },
};

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
