/**
 * An executor over which `docker events` fails at once, as on a host whose docker cannot stream events:
 * the engine then polls `docker inspect` from the start. The benchmarks measure that way beside the
 * engine's own (listening); every other command goes to `executor` unchanged.
 */
import type { Executor } from '../../scripts/lib/exec/executor.ts';

export function withoutDockerEvents(executor: Executor): Executor {
  return {
    where: executor.where,
    files: executor.files,
    close: () => executor.close(),
    run: (cmd) =>
      cmd.argv[1] === 'events'
        ? Promise.resolve({
            exitCode: 1,
            stdout: '',
            stderr: 'Error response from daemon: events are not available on this host\n',
            timedOut: false,
          })
        : executor.run(cmd),
  };
}
