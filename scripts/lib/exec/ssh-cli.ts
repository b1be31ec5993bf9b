/**
 * The SSH flags every host command shares (bifrost-bootstrap, provision-bifrost, the recovery
 * commands), and connecting from them: an encrypted key file gets a passphrase prompt on a terminal.
 */
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { InputError } from '../errors.ts';
import type { SshExecutor } from './ssh.ts';

export const SSH_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  user: { type: 'string' },
  identity: { type: 'string' },
  'known-hosts': { type: 'string' },
  'accept-new': { type: 'boolean' },
} as const;

export interface SshFlags {
  host?: string;
  port?: string;
  user?: string;
  identity?: string;
  'known-hosts'?: string;
  'accept-new'?: boolean;
}

export async function connectFromFlags(flags: SshFlags & { host: string }): Promise<SshExecutor> {
  const ssh2 = (await import('ssh2')).default;
  const { connectSsh } = await import('./ssh.ts');
  const port = flags.port === undefined ? 22 : Number(flags.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InputError(`--port must be a TCP port number, not "${flags.port}"`);
  }
  let passphrase: string | undefined;
  if (flags.identity) {
    const key = await readFile(flags.identity).catch(() => undefined);
    const parsed = key ? ssh2.utils.parseKey(key) : undefined;
    if (parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message) && process.stdin.isTTY) {
      passphrase = await promptHidden(`Passphrase for ${flags.identity}: `);
    }
  }
  return connectSsh({
    host: flags.host,
    port,
    user: flags.user,
    identity: flags.identity,
    passphrase,
    knownHosts: flags['known-hosts'],
    acceptNew: flags['accept-new'],
  });
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const mutable = rl as unknown as { _writeToOutput: (s: string) => void };
    // Ctrl-C at the prompt reaches readline, not the process: pass it on, so runMain reports the interrupt.
    rl.on('SIGINT', () => {
      rl.close();
      process.stderr.write('\n');
      process.kill(process.pid, 'SIGINT');
    });
    rl.question(question, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
    // After the question is shown, nothing typed is written back.
    mutable._writeToOutput = () => {};
  });
}

/** The help lines of SSH_OPTIONS, the same in every host command. */
export const SSH_OPTIONS_HELP = `  --host H             the host to connect to over SSH; --port P (22); --user U ($USER)
  --identity F         SSH key file (an encrypted one asks for its passphrase); else ssh-agent
  --known-hosts F      known_hosts file (default ~/.ssh/known_hosts)
  --accept-new         record an unknown host key (like StrictHostKeyChecking=accept-new)`;
