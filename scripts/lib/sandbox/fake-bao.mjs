#!/usr/bin/env node
// A stand-in for the `bao` CLI inside the OpenBao pod (tests, the sandbox): the few commands the runtime
// setup runs, against a JSON state file instead of a server. Plain JavaScript with no imports beyond
// node:, so each call starts as fast as node does. Facts from shared/reference/openbao-runtime.md §3–§4:
//   - flags are parsed the way Go's `flag` package does: only before the first positional argument (a
//     lone "-" is positional); a later `-cas=0` is data, a key named `-cas` (kv-builder);
//   - data arguments (kv-builder): `-` alone is one JSON object from stdin, `KEY=-` is all of stdin
//     verbatim (trailing newline included), `@FILE` / `KEY=@FILE` read a file (`@-` opens a file named
//     "-", never stdin), `KEY=\@x` is a literal `@x`, `KEY=value` literal; stdin is consumed once;
//   - enabling a path twice: `path is already in use at P/`, exit 2; `kv put -cas=0` on an existing path:
//     `check-and-set parameter did not match the current version`, exit 2;
//   - the token: BAO_TOKEN, else VAULT_TOKEN; none, or not the expected one, is `permission denied`.
//
// Environment:
//   FAKE_BAO_STATE         the state file (JSON; created 0600). Required.
//   FAKE_BAO_LOG           appends one JSON line per invocation: argv, and stdin as its length and SHA-256
//                          (a policy's HCL verbatim: it is no secret), so a log never holds a value.
//   FAKE_BAO_TOKEN_SHA256  hex SHA-256 of the one accepted token (the token itself appears nowhere);
//                          unset: any non-empty token is accepted.
//   FAKE_BAO_FAIL          "policy", "role", "kv put", ...: invocations whose words start so fail with a
//                          server error (exit 2) that quotes their stdin back, as a careless server might,
//                          so that the caller's redaction is exercised.
//   FAKE_BAO_HANG          the same, for invocations that never answer (a stuck server), to test
//                          timeouts and interrupts; each log line carries the pid.
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const ADDR = 'http://127.0.0.1:8200';
const argv = process.argv.slice(2);
const statePath = process.env.FAKE_BAO_STATE;

let stdinText;
/** All of stdin, once; a second reader gets the error kv-builder gives. */
let stdinUsed = false;
function readStdin() {
  if (stdinText === undefined) {
    try {
      stdinText = readFileSync(0, 'utf8');
    } catch {
      stdinText = '';
    }
  }
  return stdinText;
}
function consumeStdin() {
  if (stdinUsed) fail(1, 'Failed to parse K=V data: stdin already consumed');
  stdinUsed = true;
  return readStdin();
}

function fail(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

/** How the bao CLI prints a server's error answer. */
function apiError(what, method, path, status, errors) {
  fail(
    2,
    `${what}: Error making API request.\n\nURL: ${method} ${ADDR}/v1/${path}\nCode: ${status}. Errors:\n\n${errors
      .map((e) => `* ${e}`)
      .join('\n')}`,
  );
}

function loadState() {
  if (!statePath) fail(1, 'fake-bao: FAKE_BAO_STATE is not set');
  if (!existsSync(statePath)) return { auth: {}, mounts: {}, policies: {}, kv: {} };
  return JSON.parse(readFileSync(statePath, 'utf8'));
}

function saveState(state) {
  const temp = `${statePath}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(temp, statePath);
}

function record() {
  const log = process.env.FAKE_BAO_LOG;
  if (!log) return;
  const isPolicy = argv[0] === 'policy' && argv[1] === 'write';
  const text = readStdin();
  const stdin = isPolicy
    ? { bytes: Buffer.byteLength(text), text }
    : { bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
  const fd = openSync(log, 'a', 0o600);
  appendFileSync(fd, `${JSON.stringify({ argv: ['bao', ...argv], stdin, pid: process.pid })}\n`);
}

function checkToken() {
  const token = process.env.BAO_TOKEN || process.env.VAULT_TOKEN || '';
  const want = process.env.FAKE_BAO_TOKEN_SHA256;
  const ok = token !== '' && (!want || createHash('sha256').update(token).digest('hex') === want);
  if (!ok)
    apiError(`Error running ${argv.slice(0, 2).join(' ')}`, 'GET', 'auth/token/lookup-self', 403, [
      'permission denied',
    ]);
}

/** Go `flag` semantics: flags up to the first positional ("-" alone and "--" end them too). */
function parseFlags(args, known) {
  const flags = {};
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a.length < 2 || a[0] !== '-') break;
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    if (!known.includes(name)) fail(1, `flag provided but not defined: -${name}`);
    if (eq !== -1) flags[name] = body.slice(eq + 1);
    else {
      i++;
      if (i >= args.length) fail(1, `flag needs an argument: -${name}`);
      flags[name] = args[i];
    }
  }
  return { flags, rest: args.slice(i) };
}

/** kv-builder: the data arguments of `kv put` / `write`, in order. */
function parseData(args) {
  const data = {};
  for (const arg of args) {
    if (arg === '-') {
      const text = consumeStdin();
      let obj;
      try {
        obj = JSON.parse(text);
      } catch (err) {
        fail(1, `Failed to parse K=V data: ${err.message}`);
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
        fail(1, 'Failed to parse K=V data: stdin is not a JSON object');
      Object.assign(data, obj);
      continue;
    }
    if (arg.startsWith('@')) {
      Object.assign(data, JSON.parse(readFileOr(arg.slice(1))));
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq === -1) fail(1, `Failed to parse K=V data: format must be key=value: ${arg}`);
    const key = arg.slice(0, eq);
    let value = arg.slice(eq + 1);
    if (value === '-') value = consumeStdin();
    else if (value.startsWith('@')) value = readFileOr(value.slice(1));
    else if (value.startsWith('\\@')) value = value.slice(1);
    data[key] = value;
  }
  return data;
}

function readFileOr(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    return fail(
      1,
      `Failed to parse K=V data: error reading file: open ${file}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`,
    );
  }
}

function injectedFailure(what, method, path) {
  const spec = process.env.FAKE_BAO_FAIL;
  if (!spec || !argv.join(' ').startsWith(spec)) return;
  apiError(what, method, path, 500, [`internal error (FAKE_BAO_FAIL) while handling: ${readStdin()}`]);
}

// ---- commands ------------------------------------------------------------------------------------

function enable(kind) {
  const known = kind === 'auth' ? ['path', 'description'] : ['path', 'description', 'version'];
  const { flags, rest } = parseFlags(argv.slice(2), known);
  if (rest.length !== 1) fail(1, `Too many or too few arguments (expected 1, got ${rest.length})`);
  let type = rest[0];
  if (type === 'kv' && flags.version === '2') type = 'kv-v2';
  const path = (flags.path ?? type).replace(/\/$/, '');
  const state = loadState();
  const table = kind === 'auth' ? state.auth : state.mounts;
  const what = kind === 'auth' ? `Error enabling ${type} auth` : 'Error enabling';
  injectedFailure(what, 'POST', `sys/${kind === 'auth' ? 'auth' : 'mounts'}/${path}`);
  if (table[path] || (kind === 'secrets' && ['sys', 'auth', 'cubbyhole', 'identity'].includes(path)))
    apiError(what, 'POST', `sys/${kind === 'auth' ? 'auth' : 'mounts'}/${path}`, 400, [
      `path is already in use at ${path}/`,
    ]);
  table[path] = kind === 'auth' ? { type, config: {}, roles: {} } : { type };
  saveState(state);
  process.stdout.write(
    kind === 'auth'
      ? `Success! Enabled ${type} auth method at: ${path}/\n`
      : `Success! Enabled the ${type} secrets engine at: ${path}/\n`,
  );
}

function write() {
  const { rest } = parseFlags(argv.slice(1), ['force', 'format', 'field']);
  const [path, ...dataArgs] = rest;
  if (!path) fail(1, 'Not enough arguments (expected 1, got 0)');
  const what = `Error writing data to ${path}`;
  const data = parseData(dataArgs);
  injectedFailure(what, 'PUT', path);
  const state = loadState();
  const m = /^auth\/(.+)\/(config|role\/([^/]+))$/.exec(path);
  const auth = m ? state.auth[m[1]] : undefined;
  if (!m || !auth)
    apiError(what, 'PUT', path, 404, [`no handler for route "${path}". route entry not found.`]);
  if (m[2] === 'config') {
    if (!data.kubernetes_host) apiError(what, 'PUT', path, 400, ['no host provided']);
    auth.config = data;
  } else {
    if (!data.bound_service_account_names || !data.bound_service_account_namespaces)
      apiError(what, 'PUT', path, 400, [
        'bound_service_account_names and bound_service_account_namespaces must be set',
      ]);
    auth.roles[m[3]] = data;
  }
  saveState(state);
  process.stdout.write(`Success! Data written to: ${path}\n`);
}

function policyWrite() {
  const { rest } = parseFlags(argv.slice(2), []);
  if (rest.length !== 2) fail(1, `Incorrect number of arguments (expected 2, got ${rest.length})`);
  const [name, source] = rest;
  const hcl = source === '-' ? consumeStdin() : readFileOr(source);
  const what = 'Error uploading policy';
  injectedFailure(what, 'PUT', `sys/policies/acl/${name}`);
  if (!/path\s+"[^"]+"\s*\{[^}]*capabilities\s*=/.test(hcl))
    apiError(what, 'PUT', `sys/policies/acl/${name}`, 400, ['failed to parse policy: no path rule']);
  const state = loadState();
  state.policies[name] = hcl;
  saveState(state);
  process.stdout.write(`Success! Uploaded policy: ${name}\n`);
}

/** `-mount=M PATH` or `M/PATH`: the mount and the secret's path below it. */
function kvTarget(flags, path, state) {
  let mount = flags.mount;
  let rel = path;
  if (mount === undefined) {
    const cut = path.indexOf('/');
    mount = cut === -1 ? path : path.slice(0, cut);
    rel = cut === -1 ? '' : path.slice(cut + 1);
  }
  mount = mount.replace(/\/$/, '');
  const apiPath = `${mount}/data/${rel}`;
  if (state.mounts[mount]?.type !== 'kv-v2')
    apiError(`Error making API request`, 'GET', `sys/internal/ui/mounts/${mount}/${rel}`, 403, [
      "preflight capability check returned 403, please ensure client's policies grant access to path",
    ]);
  state.kv[mount] ??= {};
  return { mount, rel, apiPath, secrets: state.kv[mount] };
}

function kvPut(patch) {
  const { flags, rest } = parseFlags(argv.slice(2), ['mount', 'cas', 'method', 'format', 'field']);
  const [path, ...dataArgs] = rest;
  if (!path) fail(1, 'Not enough arguments (expected >1, got 0)');
  if (dataArgs.length === 0) fail(1, 'Must supply data');
  const data = parseData(dataArgs);
  const state = loadState();
  const { rel, apiPath, secrets } = kvTarget(flags, path, state);
  const what = `Error writing data to ${apiPath}`;
  injectedFailure(what, patch ? 'PATCH' : 'PUT', apiPath);
  const secret = secrets[rel];
  const current = secret ? secret.versions.length : 0;
  if (patch && !secret) fail(2, `Error: No value found at ${apiPath}`);
  if (flags.cas !== undefined && Number(flags.cas) !== current)
    apiError(what, patch ? 'PATCH' : 'PUT', apiPath, 400, [
      'check-and-set parameter did not match the current version',
    ]);
  const before = secret ? secret.versions[current - 1].data : {};
  const versions = secret ? secret.versions : [];
  versions.push({ data: patch ? { ...before, ...data } : data, created_time: new Date().toISOString() });
  secrets[rel] = { versions };
  saveState(state);
  process.stdout.write(
    `=== Secret Path ===\n${apiPath}\n\n======= Metadata =======\nKey                Value\n---                -----\nversion            ${versions.length}\n`,
  );
}

function kvGet() {
  const { flags, rest } = parseFlags(argv.slice(2), ['mount', 'format', 'field', 'version']);
  const [path] = rest;
  if (!path) fail(1, 'Not enough arguments (expected 1, got 0)');
  const state = loadState();
  const { rel, apiPath, secrets } = kvTarget(flags, path, state);
  const secret = secrets[rel];
  if (!secret) fail(2, `No value found at ${apiPath}`);
  const version = secret.versions.length;
  const data = secret.versions[version - 1].data;
  if (flags.field !== undefined) {
    if (!(flags.field in data)) fail(1, `Field "${flags.field}" not present in secret`);
    process.stdout.write(`${data[flags.field]}\n`);
    return;
  }
  process.stdout.write(`${JSON.stringify({ data: { data, metadata: { version } } }, null, 2)}\n`);
}

record();
if (process.env.FAKE_BAO_HANG && argv.join(' ').startsWith(process.env.FAKE_BAO_HANG))
  setInterval(() => {}, 60_000);
else main();

function main() {
  const words = argv.slice(0, 2).join(' ');
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help')
    fail(
      127,
      'Usage: bao <command> [args] (fake-bao: auth enable, secrets enable, write, policy write, kv put|patch|get)',
    );
  checkToken();
  switch (words) {
    case 'auth enable':
      enable('auth');
      break;
    case 'secrets enable':
      enable('secrets');
      break;
    case 'policy write':
      policyWrite();
      break;
    case 'kv put':
      kvPut(false);
      break;
    case 'kv patch':
      kvPut(true);
      break;
    case 'kv get':
      kvGet();
      break;
    default:
      if (argv[0] === 'write') write();
      else fail(127, `fake-bao: "${argv.join(' ')}" is not simulated`);
  }
}
