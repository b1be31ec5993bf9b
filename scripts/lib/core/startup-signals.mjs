/**
 * The first import of bin/run.mjs, the launcher of every recipe and npm script (or `--import`ed ahead of
 * tsx): a command spends its first tens of milliseconds (a bundle) or hundreds (tsx) loading its modules,
 * and until `runMain` listens for SIGINT/SIGTERM their default action would end node without a word. Here
 * they say what was interrupted and exit as runMain does (128 + the signal number). Nothing has been read or changed yet, so there is nothing to clean up.
 * `runMain` calls the disposer it leaves on `globalThis` as it installs its own handlers.
 * Plain JavaScript with no imports, so that it is running before anything else loads.
 */
const CODES = { SIGINT: 130, SIGTERM: 143 };

function onSignal(signal) {
  const message = `interrupted by ${signal} during start-up, before the command began: nothing was read or changed; re-run it`;
  if (process.argv.includes('--json')) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, interrupted: signal, phase: 'start-up', error: message, exitCode: CODES[signal] })}\n`,
    );
  }
  process.stderr.write(`error: ${message}\n`);
  process.exit(CODES[signal]);
}

const listeners = {
  SIGINT: () => onSignal('SIGINT'),
  SIGTERM: () => onSignal('SIGTERM'),
};
for (const [signal, listener] of Object.entries(listeners)) process.on(signal, listener);

globalThis[Symbol.for('secrets-flow.startup-signals.dispose')] = () => {
  for (const [signal, listener] of Object.entries(listeners)) process.off(signal, listener);
};
