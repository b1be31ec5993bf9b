import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { InputError, WorkError } from '../../core/errors.ts';
import { Branch, fromPlain, isComplex, scalarText } from './tree.ts';

/**
 * `sops exec-env` (≥ 3.11): the top-level scalars of the first document become environment
 * variables, unchanged for strings, `ValToString` for the rest; a map or list refuses the file.
 */

// The tree behind each decrypted document: a plain object has lost float-versus-int (`7.0` vs `7`),
// which `exec-env` prints differently.
const branchOfDocument = new WeakMap<object, Branch>();

export function rememberBranch(doc: unknown, branch: Branch): void {
  if (doc !== null && typeof doc === 'object') branchOfDocument.set(doc, branch);
}

export function execEnvPairs(doc: unknown, path: string): Record<string, string> {
  const known = doc !== null && typeof doc === 'object' ? branchOfDocument.get(doc) : undefined;
  const branch = known ?? fromPlain(doc, '');
  if (!(branch instanceof Branch))
    throw new InputError(`${path}: the first document is not a map of keys to values`);
  const entries: [string, string][] = [];
  for (const { key, value } of branch.pairs()) {
    if (isComplex(value)) {
      throw new InputError(
        `${path}: cannot use complex value in environment; offending key ${key}`,
        'exec-env passes top-level strings, numbers and booleans only; move nested values to their own keys',
      );
    }
    if (key.includes('=') || key === '') {
      throw new InputError(`${path}: the key "${key}" cannot be an environment variable name`);
    }
    const text = scalarText(value);
    if (key.includes('\0') || text.includes('\0')) {
      throw new InputError(
        `${path}: the key or value at ${key} contains a NUL byte, which no environment can hold`,
      );
    }
    entries.push([key, text]);
  }
  // A later duplicate wins, as Go's os/exec keeps the last of repeated variables.
  return Object.fromEntries(entries);
}

/**
 * Runs `/bin/sh -c COMMAND` (`cmd.exe /C` on Windows) with stdio inherited and `vars` over the
 * current environment, forwarding termination signals; resolves to the child's exit code.
 */
export function runWithEnv(
  command: string,
  vars: Record<string, string>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const [shell, args] =
    process.platform === 'win32' ? ['cmd.exe', ['/C', command]] : ['/bin/sh', ['-c', command]];
  return new Promise((resolve, reject) => {
    const child = spawn(shell as string, args as string[], { stdio: 'inherit', env: { ...env, ...vars } });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const s of signals) process.on(s, forward);
    const done = () => {
      for (const s of signals) process.off(s, forward);
    };
    child.on('error', (err) => {
      done();
      reject(new WorkError(`cannot run ${shell}: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
