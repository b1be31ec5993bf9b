/**
 * Serves a DockerSimulator on a unix socket, so that processes (the local executor, or commands run
 * over SSH) can use it as their docker CLI through docker-sim-client.mjs. One simulator, one state:
 * tests and the sandbox demo inspect what every call did. Output streams (a `docker events` prints
 * its lines as they happen), and a client that is killed ends its call.
 */
import { chmod, copyFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import type { DockerSimulator } from './docker-simulator.ts';

/**
 * The response: one JSON object a line, written as the output comes: `{"stdout": text}`,
 * `{"stderr": text}`, and last `{"exitCode": n}`. A response that ends without the exit code is a
 * simulator that went away.
 */
type SimFrame = { stdout: string } | { stderr: string } | { exitCode: number };

/** The client to name as `--docker` (and `--compose "CLIENT compose"`). */
export const DOCKER_SIM_CLIENT = resolve(import.meta.dirname, 'docker-sim-client.mjs');

export interface DockerSimServer {
  socketPath: string;
  /** Environment for processes that run the client. */
  env: { DOCKER_SIM_SOCKET: string };
  close(): Promise<void>;
}

export async function serveDockerSimulator(
  sim: DockerSimulator,
  socketPath: string,
): Promise<DockerSimServer> {
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    // A client that goes away (killed, its socket closed) ends its call: a `docker events` stops.
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    const frame = (f: SimFrame) => {
      if (!res.destroyed) res.write(`${JSON.stringify(f)}\n`);
    };
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      try {
        const { argv, input } = JSON.parse(Buffer.concat(parts).toString('utf8')) as {
          argv: string[];
          input: string;
        };
        const r = await sim.run({
          argv,
          input,
          signal: controller.signal,
          onOutput: (data, stream) => frame(stream === 'stdout' ? { stdout: data } : { stderr: data }),
        });
        frame({ exitCode: r.spawnError ? 127 : r.exitCode });
      } catch (err) {
        frame({ stderr: `simulator: ${(err as Error).message}\n` });
        frame({ exitCode: 125 });
      }
      res.end();
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(socketPath, () => ok());
  });
  // Commands run over SSH as another user must reach it too; the socket lives in a private temp dir.
  await chmod(socketPath, 0o666);
  return {
    socketPath,
    env: { DOCKER_SIM_SOCKET: socketPath },
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/** Writes an executable `docker` at `path` that talks to the simulator: what `--docker` should name. */
export async function writeDockerSimWrapper(path: string, socketPath: string): Promise<string> {
  // The client goes beside the wrapper: the user the wrapper runs as (a test sshd's) may not be able to
  // read the checkout (a clone in a 0700 directory of mktemp -d).
  const client = `${path}-client.mjs`;
  await copyFile(DOCKER_SIM_CLIENT, client);
  await chmod(client, 0o644);
  await writeFile(
    path,
    `#!/bin/sh\nDOCKER_SIM_SOCKET='${socketPath}' exec '${process.execPath}' '${client}' "$@"\n`,
    { mode: 0o755 },
  );
  return path;
}
