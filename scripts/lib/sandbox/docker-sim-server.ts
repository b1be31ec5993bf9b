/**
 * Serves a DockerSimulator on a unix socket, so that processes (the local executor, or commands run
 * over SSH) can use it as their docker CLI through docker-sim-client.mjs. One simulator, one state:
 * tests and the sandbox demo inspect what every call did.
 */
import { chmod, copyFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import type { DockerSimulator } from './docker-simulator.ts';

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
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', async () => {
      try {
        const { argv, input } = JSON.parse(Buffer.concat(parts).toString('utf8')) as {
          argv: string[];
          input: string;
        };
        const r = await sim.run({ argv, input });
        res.end(
          JSON.stringify({ stdout: r.stdout, stderr: r.stderr, exitCode: r.spawnError ? 127 : r.exitCode }),
        );
      } catch (err) {
        res.end(
          JSON.stringify({ stdout: '', stderr: `simulator: ${(err as Error).message}\n`, exitCode: 125 }),
        );
      }
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
