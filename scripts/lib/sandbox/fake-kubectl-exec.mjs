#!/usr/bin/env node
// A stand-in for `kubectl exec` into the OpenBao pod (tests, the sandbox): accepts
//   kubectl [--kubeconfig K] [--context C] exec [-i] -n NS POD [-c CONTAINER] -- COMMAND ARGS...
// checks namespace, pod and container as the API server would, and runs COMMAND locally with PATH
// pointing at the pod's binaries (FAKE_BAO_BIN, where `bao` is fake-bao.mjs). `sh` is a real shell
// (FAKE_POD_SH, default /bin/sh; "/usr/bin/busybox sh" is the OpenBao image's), so the shell's own
// `read` is what reads the token line. Stdin reaches the command only with -i, as with kubectl. A failing
// command ends like kubectl's: "command terminated with exit code N" on stderr, and that exit code.
// Plain JavaScript with no imports beyond node:, so each call starts as fast as node does.
//
// Environment:
//   FAKE_KUBECTL_LOG       appends one JSON line per call: argv, stdin as length and SHA-256 (never the
//                          bytes), and whether any environment variable holds the token
//                          (FAKE_BAO_TOKEN_SHA256): a caller must not hand the token to kubectl that way.
//   FAKE_KUBECTL_CONTEXTS  comma list of known contexts; another --context is refused as kubectl does.
//   FAKE_BAO_NAMESPACE, FAKE_BAO_POD, FAKE_BAO_CONTAINER  the pod that exists (openbao, openbao-0, openbao).
//   FAKE_BAO_BIN           the directory holding `bao` (required).
//   FAKE_POD_SH            the shell run for `sh` (split on spaces), default /bin/sh.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, openSync, readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const env = process.env;
const sha256 = (text) => createHash('sha256').update(text).digest('hex');

function die(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

let stdin = '';
try {
  stdin = readFileSync(0, 'utf8');
} catch {
  // no stdin
}

if (env.FAKE_KUBECTL_LOG) {
  const want = env.FAKE_BAO_TOKEN_SHA256;
  const envHoldsToken = Boolean(want) && Object.values(env).some((v) => v && sha256(v) === want);
  const fd = openSync(env.FAKE_KUBECTL_LOG, 'a', 0o600);
  appendFileSync(
    fd,
    `${JSON.stringify({ argv: ['kubectl', ...args], stdin: { bytes: Buffer.byteLength(stdin), sha256: sha256(stdin) }, envHoldsToken })}\n`,
  );
}

let context;
let i = 0;
const flagValue = (flag) => {
  const a = args[i];
  if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  i++;
  if (i >= args.length) die(1, `error: flag needs an argument: ${flag}`);
  return args[i];
};
for (; i < args.length; i++) {
  const a = args[i];
  if (a === '--kubeconfig' || a.startsWith('--kubeconfig=')) flagValue('--kubeconfig');
  else if (a === '--context' || a.startsWith('--context=')) context = flagValue('--context');
  else break;
}
if (args[i] !== 'exec') die(1, `fake-kubectl-exec: only exec is simulated (got: ${args.slice(i).join(' ')})`);
if (context !== undefined && env.FAKE_KUBECTL_CONTEXTS !== undefined) {
  if (!env.FAKE_KUBECTL_CONTEXTS.split(',').includes(context))
    die(1, `error: context "${context}" does not exist`);
}
let interactive = false;
let namespace = 'default';
let container;
let pod;
for (i++; i < args.length; i++) {
  const a = args[i];
  if (a === '--') break;
  if (a === '-i' || a === '--stdin') interactive = true;
  else if (a === '-n' || a === '--namespace' || a.startsWith('--namespace='))
    namespace = flagValue(a === '-n' ? '-n' : '--namespace');
  else if (a === '-c' || a === '--container' || a.startsWith('--container='))
    container = flagValue(a === '-c' ? '-c' : '--container');
  else if (a.startsWith('-')) die(1, `error: unknown shorthand flag: '${a}' in ${a}`);
  else if (pod === undefined) pod = a;
  else die(1, 'error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead');
}
const command = args.slice(i + 1);
if (pod === undefined) die(1, "error: expected 'exec (POD | TYPE/NAME) -- COMMAND [args...]'");
if (command.length === 0) die(1, 'error: you must specify at least one command for the container');
if (namespace !== (env.FAKE_BAO_NAMESPACE || 'openbao') || pod !== (env.FAKE_BAO_POD || 'openbao-0'))
  die(1, `Error from server (NotFound): pods "${pod}" not found`);
const containerName = env.FAKE_BAO_CONTAINER || 'openbao';
if (container === undefined)
  process.stderr.write(`Defaulted container "${containerName}" out of: ${containerName}, unseal\n`);
else if (container !== containerName)
  die(1, `error: unable to upgrade connection: container not found ("${container}")`);
if (!env.FAKE_BAO_BIN) die(1, 'fake-kubectl-exec: FAKE_BAO_BIN is not set');

const [program, ...rest] = command;
const shell = (env.FAKE_POD_SH || '/bin/sh').split(' ').filter(Boolean);
const [file, argv] =
  program === 'sh' || program === '/bin/sh' ? [shell[0], [...shell.slice(1), ...rest]] : [program, rest];
const childEnv = { ...env, PATH: `${env.FAKE_BAO_BIN}:/usr/bin:/bin`, BAO_ADDR: 'http://127.0.0.1:8200' };
// The pod's environment is its own: nothing the caller's kubectl had, beyond what the fakes need.
for (const name of Object.keys(childEnv))
  if (!/^(PATH|HOME|BAO_ADDR|FAKE_BAO_.*)$/.test(name)) delete childEnv[name];
const result = spawnSync(file, argv, {
  input: interactive ? stdin : '',
  env: childEnv,
  stdio: ['pipe', 'inherit', 'inherit'],
});
if (result.error)
  die(126, `error: Internal error occurred: error executing command in container: ${result.error.message}`);
const code = result.status ?? 128 + 15;
if (code !== 0) die(code, `command terminated with exit code ${code}`);
