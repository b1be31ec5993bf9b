/**
 * Serves a DockerSimulator on 127.0.0.1, so that processes (the local executor, or commands run over SSH)
 * can use it as their docker CLI through the wrapper `writeDockerSimWrapper` writes. One simulator, one
 * state: tests and the sandbox demo inspect what every call did. Output streams (a `docker events` prints
 * its lines as they happen), and a client that is killed ends its call.
 *
 * The wrapper is bash alone (`/dev/tcp`, `read`, `printf`): a run makes hundreds of docker calls, and a
 * node client cost ~130 ms of CPU to start each one where bash takes a few. Hence a wire format bash can
 * speak without any other program:
 *
 * - request: NUL-terminated fields, the argument count, each argument, the byte length of stdin, then
 *   stdin itself (text: bash variables hold no NUL byte);
 * - response: one frame a line, written as the output comes: `O` + stdout text, `E` + stderr text, and
 *   last `X` + the exit code. Text is escaped for bash's `printf %b` (backslash, and every control
 *   character as `\0ooo`, newlines included), so each frame is one line and the bytes come out as they
 *   were. A response that ends without `X` is a simulator that went away.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { DockerSimulator } from './docker-simulator.ts';

export interface DockerSimServer {
  /** The TCP port on 127.0.0.1 the wrapper connects to. */
  port: number;
  close(): Promise<void>;
}

/** `text` as `printf %b` reads it back: `\` doubled, every control character as `\0ooo`. */
function escapeForPrintfB(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is escaped
  return text.replace(/[\\\x00-\x1f\x7f]/g, (c) =>
    c === '\\' ? '\\\\' : `\\0${c.charCodeAt(0).toString(8).padStart(3, '0')}`,
  );
}

interface SimRequest {
  argv: string[];
  input: string;
}

/** The request, once `buffer` holds all of it (see the wire format above); undefined while it does not. */
function parseSimRequest(buffer: Buffer): SimRequest | undefined {
  let at = 0;
  const field = (): string | undefined => {
    const end = buffer.indexOf(0, at);
    if (end < 0) return undefined;
    const text = buffer.subarray(at, end).toString('utf8');
    at = end + 1;
    return text;
  };
  const count = field();
  if (count === undefined) return undefined;
  if (!/^\d+$/.test(count)) throw new Error(`malformed request: argument count "${count}"`);
  const argv: string[] = [];
  for (let i = 0; i < Number(count); i++) {
    const arg = field();
    if (arg === undefined) return undefined;
    argv.push(arg);
  }
  const length = field();
  if (length === undefined) return undefined;
  if (!/^\d+$/.test(length)) throw new Error(`malformed request: stdin length "${length}"`);
  if (buffer.length < at + Number(length)) return undefined;
  return { argv, input: buffer.subarray(at, at + Number(length)).toString('utf8') };
}

function serveCall(sim: DockerSimulator, socket: Socket): void {
  let buffer = Buffer.alloc(0);
  let started = false;
  let finished = false;
  // A client that goes away (killed, its socket closed) ends its call: a `docker events` stops.
  const controller = new AbortController();
  socket.on('close', () => {
    if (!finished) controller.abort();
  });
  // A client killed mid-call resets the connection; 'close' follows and ends the call.
  socket.on('error', () => {});
  const frame = (kind: 'O' | 'E' | 'X', text: string) => {
    if (!socket.destroyed) socket.write(`${kind}${kind === 'X' ? text : escapeForPrintfB(text)}\n`);
  };
  socket.on('data', async (chunk: Buffer) => {
    if (started) return;
    buffer = Buffer.concat([buffer, chunk]);
    let exitCode: number;
    try {
      const request = parseSimRequest(buffer);
      if (!request) return;
      started = true;
      const r = await sim.run({
        argv: ['docker', ...request.argv],
        input: request.input,
        signal: controller.signal,
        onOutput: (data, stream) => frame(stream === 'stdout' ? 'O' : 'E', data),
      });
      exitCode = r.spawnError ? 127 : r.exitCode;
    } catch (err) {
      started = true;
      frame('E', `simulator: ${(err as Error).message}\n`);
      exitCode = 125;
    }
    frame('X', String(exitCode));
    finished = true;
    socket.end();
  });
}

export async function serveDockerSimulator(sim: DockerSimulator): Promise<DockerSimServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveCall(sim, socket);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the simulator has no TCP port');
  return {
    port: address.port,
    close: () =>
      new Promise((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

/**
 * Writes an executable `docker` at `path` that talks to the simulator: what `--docker` should name (and
 * `--compose "WRAPPER compose"`). Readable by everyone: a test sshd's user runs it.
 */
export async function writeDockerSimWrapper(path: string, server: DockerSimServer): Promise<string> {
  const at = `127.0.0.1/${server.port}`;
  await writeFile(
    path,
    `#!/bin/bash
# docker (sandbox): forwards its argv and stdin to the DockerSimulator at ${at.replace('/', ':')}
# (scripts/lib/sandbox/docker-sim-server.ts) and prints what it answers, as it answers.
{ exec 3<>/dev/tcp/${at}; } 2>/dev/null || {
  printf 'docker (sandbox): cannot reach the simulator at ${at.replace('/', ':')}\\n' >&2
  exit 125
}
LC_ALL=C
input=
[ -t 0 ] || IFS= read -r -d '' input || :
printf '%s\\0' "$#" "$@" "\${#input}" >&3
printf '%s' "$input" >&3
while IFS= read -r frame <&3; do
  case $frame in
    O*) printf '%b' "\${frame#O}" ;;
    E*) printf '%b' "\${frame#E}" >&2 ;;
    X*) exit "\${frame#X}" ;;
  esac
done
printf 'docker (sandbox): the simulator went away\\n' >&2
exit 125
`,
    { mode: 0o755 },
  );
  return path;
}
