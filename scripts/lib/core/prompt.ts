/**
 * The suite's terminal prompts (an SSH key's passphrase, "clear the lock?"). Not zx's `question`: it
 * echoes what is typed (a passphrase must not be), cannot pass Ctrl-C on (readline takes it from the
 * process, so the command would sit paused instead of reporting the interrupt), and never returns when
 * stdin ends. Callers ask only when stdin and stderr are terminals.
 */
import { createInterface } from 'node:readline';

/** Reads one line from the terminal; `hidden`: nothing typed is echoed. Ctrl-C interrupts the command. */
export function ask(question: string, opts: { hidden?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    let interrupted = false;
    // Ctrl-C at the prompt reaches readline, not the process: pass it on, so runMain reports the
    // interrupt; the question stays unanswered (an empty answer would carry on as if typed).
    rl.on('SIGINT', () => {
      interrupted = true;
      rl.close();
      process.stderr.write('\n');
      // Emitted, not sent: a signal sent to ourselves arrives on a later turn of the event loop, which
      // may run dry first (nothing else holds it once the prompt closes).
      process.emit('SIGINT', 'SIGINT');
    });
    // stdin ended (Ctrl-D): an empty answer rather than a promise that never settles.
    rl.on('close', () => {
      if (!interrupted) resolve('');
    });
    rl.question(question, (answer) => {
      resolve(answer);
      rl.close();
      if (opts.hidden) process.stderr.write('\n');
    });
    if (opts.hidden) {
      // After the question is shown, nothing typed is written back.
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
    }
  });
}

/** A yes/no question whose default is no. */
export async function confirm(question: string): Promise<boolean> {
  return /^y(es)?$/i.test((await ask(question)).trim());
}
