#!/usr/bin/env node
// The docker CLI of the sandbox: forwards its argv and stdin to a DockerSimulator served on the unix
// socket $DOCKER_SIM_SOCKET (scripts/lib/sandbox/docker-sim-server.ts) and prints what it answers.
// Plain JavaScript with no imports beyond node:, so each call starts as fast as node does.
import { request } from 'node:http';

const socketPath = process.env.DOCKER_SIM_SOCKET;
if (!socketPath) {
  process.stderr.write('docker (sandbox): DOCKER_SIM_SOCKET is not set\n');
  process.exit(125);
}
const chunks = [];
if (!process.stdin.isTTY) for await (const c of process.stdin) chunks.push(c);
const body = JSON.stringify({
  argv: ['docker', ...process.argv.slice(2)],
  input: Buffer.concat(chunks).toString('utf8'),
});
const req = request(
  { socketPath, path: '/run', method: 'POST', headers: { 'content-type': 'application/json' } },
  (res) => {
    const parts = [];
    res.on('data', (c) => parts.push(c));
    res.on('end', () => {
      const r = JSON.parse(Buffer.concat(parts).toString('utf8'));
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.exitCode;
    });
  },
);
req.on('error', (err) => {
  process.stderr.write(`docker (sandbox): cannot reach the simulator at ${socketPath}: ${err.message}\n`);
  process.exitCode = 125;
});
req.end(body);
