#!/usr/bin/env node
// The docker CLI of the sandbox: forwards its argv and stdin to a DockerSimulator served on the unix
// socket $DOCKER_SIM_SOCKET (scripts/lib/sandbox/docker-sim-server.ts) and prints what it answers,
// as it answers.
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
// The answer streams, one JSON object a line (docker-sim-server.ts): output is written as it comes.
// Killed (SIGTERM), this process's socket closes and the simulator ends the call.
const req = request(
  { socketPath, path: '/run', method: 'POST', headers: { 'content-type': 'application/json' } },
  (res) => {
    let partial = '';
    let ended = false;
    res.setEncoding('utf8');
    res.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        if (!line) continue;
        const f = JSON.parse(line);
        if (f.stdout !== undefined) process.stdout.write(f.stdout);
        if (f.stderr !== undefined) process.stderr.write(f.stderr);
        if (f.exitCode !== undefined) {
          ended = true;
          process.exitCode = f.exitCode;
        }
      }
    });
    res.on('end', () => {
      if (ended) return;
      process.stderr.write('docker (sandbox): the simulator went away\n');
      process.exitCode = 125;
    });
  },
);
req.on('error', (err) => {
  process.stderr.write(`docker (sandbox): cannot reach the simulator at ${socketPath}: ${err.message}\n`);
  process.exitCode = 125;
});
// Whoever reads the output went away (a closed pipe): so does this call.
process.stdout.on('error', () => process.exit(141));
req.end(body);
