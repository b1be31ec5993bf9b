/**
 * ssh's ProxyCommand: the command is run as OpenSSH runs it, `$SHELL -c "exec COMMAND"` (/bin/sh when
 * SHELL is unset or empty), its stdin and stdout carrying the SSH connection and its stderr passed on
 * (openssh/openssh-portable@V_9_2_P1:sshconnect.c ssh_proxy_connect and expand_proxy_command). Here that
 * stderr is redacted, the child gets no secret in its environment, and it is ended with the connection
 * (or with this process): a proxy is never left running.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { childEnv } from '../core/child-env.ts';
import { printable } from '../core/printable.ts';
import { redactor } from '../core/redact.ts';
import { killTree } from './local.ts';

const STOP_GRACE_MS = 1000;

export interface ProxyProcess {
  /** The connection's byte stream, for ssh2's `sock`. */
  readonly stream: Duplex;
  /** Why the proxy is gone, once it is: "exited with status 1: <its last stderr line>". */
  readonly ended: Promise<string>;
  /** Ends the proxy and whatever it started: SIGHUP, then SIGKILL. */
  stop(): void;
}

/** `command` with its tokens already expanded (ssh-config.ts expandProxyCommand). */
export function startProxyCommand(command: string, env: NodeJS.ProcessEnv = process.env): ProxyProcess {
  const shell = env.SHELL || '/bin/sh';
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(shell, ['-c', `exec ${command}`], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // No schema key, age key source or registered secret value: a proxy needs none (child-env.ts).
    env: childEnv({ base: env }),
  });
  let lastLine = '';
  const decoder = new StringDecoder('utf8');
  let partial = '';
  const passOn = (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim()) lastLine = line.trim();
      process.stderr.write(`${printable(redactor.redact(line))}\n`);
    }
  };
  child.stderr.on('data', (chunk: Buffer) => passOn(decoder.write(chunk)));
  let gone = false;
  // This process ending (an interrupt's exit included) takes the proxy with it, at once.
  const onExit = () => {
    if (!gone && child.pid !== undefined) killTree(child.pid, 'SIGKILL');
  };
  process.once('exit', onExit);
  const ended = new Promise<string>((resolve) => {
    child.once('error', (err) => {
      gone = true;
      process.off('exit', onExit);
      resolve(`could not be started: ${err.message}`);
    });
    child.once('close', (code, signal) => {
      gone = true;
      process.off('exit', onExit);
      const tail = decoder.end();
      if (partial || tail) passOn(`${tail}\n`);
      const status = signal ? `was ended by ${signal}` : `exited with status ${code}`;
      resolve(lastLine ? `${status}: ${redactor.redact(lastLine)}` : status);
    });
  });
  // A write to a proxy that is gone fails with EPIPE: the connection's error names the proxy instead.
  child.stdin.on('error', () => {});
  const stop = () => {
    if (gone || child.pid === undefined) return;
    const pid = child.pid;
    // SIGHUP, as ssh ends its proxy (sshconnect.c ssh_kill_proxy_command).
    killTree(pid, 'SIGHUP');
    // One that ignores SIGHUP: SIGKILL after a grace (or at this process's exit, whichever comes first).
    setTimeout(() => {
      if (!gone) killTree(pid, 'SIGKILL');
    }, STOP_GRACE_MS).unref();
  };
  // Once the connection has written its last byte (its close), the proxy has nothing more to carry;
  // its stdout may stay open (a relay that outlives its peer), so it is ended rather than waited for.
  child.stdin.once('finish', () => stop());
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  return { stream, ended, stop };
}
