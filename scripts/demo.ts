/**
 * The sandbox demo (`npm run demo`): the bootstrap flow on this machine with nothing but Node, in a
 * temporary directory removed afterwards. A new age key, a SOPS file encrypted to it, the built-in fake
 * Kubernetes API server, and create-bootstrap-secrets run against it twice (the second run changes nothing).
 */
import { COMMON_OPTIONS, defineCommand, isMainModule, runMain } from './lib/core/cli.ts';
import { demo } from './lib/sandbox/demo.ts';

export const command = defineCommand({
  name: 'node --import tsx scripts/demo.ts',
  synopsis: '[--keep] [--json]',
  description: `Runs the whole flow on a built-in sandbox, with nothing but Node: a new age key; secrets init; the fake
Kubernetes API server on 127.0.0.1 and create-bootstrap-secrets against it with the real kubectl (a dry
run, offline, when kubectl is not installed), twice; bifrost-bootstrap over the local
executor against the docker simulator on a shortened timeline; the InfisicalSecret resources and their
check. Nothing outside a temporary directory is touched; --keep leaves it in place for a look.`,
  options: { ...COMMON_OPTIONS, keep: { type: 'boolean' } },
  optionsHelp: '  --keep               leave the temporary directory in place',
  run: (flags, _positionals, out) => demo(flags, out),
});

if (isMainModule(import.meta.url)) {
  await runMain(command);
}
