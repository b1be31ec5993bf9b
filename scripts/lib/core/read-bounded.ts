/**
 * The one way this tool reads a local file it did not write (configuration, keys, the SOPS file): the
 * path is stat'ed first and anything but a regular file is refused without being opened (opening a
 * FIFO blocks a thread until a writer comes, and no signal ends that; a device never ends), then it is
 * opened non-blocking (a FIFO swapped in after the check cannot block either), checked again on the
 * open file, and never read past its kind's limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { InputError } from './errors.ts';
import { notRegular } from './file-kind.ts';

const MiB = 1024 * 1024;

/**
 * How large each kind of file may be. Every limit is far above what a real one holds (a homelab SOPS
 * file is a few KiB, a private key under 16 KiB, a kubeconfig with inline certificates tens of KiB);
 * they only stop a file that never ends or was never meant for this.
 */
export const READ_LIMITS = {
  secretsFile: { bytes: 16 * MiB, noun: 'a SOPS file' },
  sopsConfig: { bytes: 1 * MiB, noun: 'a .sops.yaml' },
  /** SOPS_AGE_KEY_FILE, keys.txt. */
  ageKeys: { bytes: 1 * MiB, noun: 'an age keys file' },
  identity: { bytes: 1 * MiB, noun: 'an SSH private key' },
  /** Thousands of hosts fit in a few MiB. */
  knownHosts: { bytes: 64 * MiB, noun: 'a known_hosts file' },
  /** Each file of the ssh config on its own, every Include too. */
  sshConfig: { bytes: 1 * MiB, noun: 'an ssh config file' },
  /** cloud/runtime/apps.yaml or --apps. */
  appsTable: { bytes: 1 * MiB, noun: 'an apps table' },
  /** ~/.vault-token (the bao CLI's token helper file). */
  tokenFile: { bytes: 64 * 1024, noun: 'a token file' },
  /** One manifest file that `check` scans. */
  manifest: { bytes: 16 * MiB, noun: 'a manifest file' },
  /** Each file of a KUBECONFIG list on its own. */
  kubeconfig: { bytes: 16 * MiB, noun: 'a kubeconfig' },
  /** The deploy record, the rendered env files, the manifest, a template: read over SFTP or locally. */
  hostFile: { bytes: 16 * MiB, noun: 'a file read from the host' },
} as const;

export type ReadKind = keyof typeof READ_LIMITS;

export interface BoundedRead {
  /** Names the file in messages: "the ssh config", "--identity". Empty: the path alone. */
  what: string;
  kind: ReadKind;
  /** The fix for a path that is not a regular file. */
  hint: string;
  /** The fix for a file over the limit; default: `hint`. */
  sizeHint?: string;
}

export function formatBytes(n: number): string {
  return n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}

function label(path: string, what: string): string {
  return what ? `${what} ${path}` : path;
}

/** The refusal of a path that is not a regular file: "the ssh config /x is a FIFO, not a regular file". */
export function notRegularError(path: string, what: string, kind: string, hint: string): InputError {
  return new InputError(`${label(path, what)} is ${kind}, not a regular file`, hint);
}

/** The refusal of a file over its kind's limit; `size` is what stat said or what was read before stopping. */
export function tooLargeError(path: string, read: BoundedRead, size: number): InputError {
  const { bytes, noun } = READ_LIMITS[read.kind];
  return new InputError(
    `${label(path, read.what)} is ${size} bytes, larger than ${noun} may be here (limit: ${bytes} bytes, ${formatBytes(bytes)})`,
    read.sizeHint ?? read.hint,
  );
}

function check(path: string, st: Stats, read: BoundedRead): void {
  const kind = notRegular(st);
  if (kind) throw notRegularError(path, read.what, kind, read.hint);
  if (st.size > READ_LIMITS[read.kind].bytes) throw tooLargeError(path, read, st.size);
}

const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);
const CHUNK = 64 * 1024;

/**
 * The file's bytes and its stat. Refusals are InputErrors naming the file; anything else (ENOENT,
 * EACCES) is the fs error itself, for the caller to word (a missing default file is often fine).
 */
export async function readBounded(path: string, read: BoundedRead): Promise<{ data: Buffer; stat: Stats }> {
  check(path, await stat(path), read);
  const handle = await open(path, READ_FLAGS);
  try {
    const st = await handle.stat();
    check(path, st, read);
    const limit = READ_LIMITS[read.kind].bytes;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const { bytesRead, buffer } = await handle.read({ buffer: Buffer.alloc(CHUNK) });
      if (bytesRead === 0) break;
      total += bytesRead;
      // A file that grows while it is read stops here too.
      if (total > limit) throw tooLargeError(path, read, total);
      chunks.push(buffer.subarray(0, bytesRead));
    }
    return { data: Buffer.concat(chunks), stat: st };
  } finally {
    await handle.close();
  }
}

/** readBounded as UTF-8 text. */
export async function readBoundedText(path: string, read: BoundedRead): Promise<string> {
  return (await readBounded(path, read)).data.toString('utf8');
}

/** readBoundedText for the callers that run synchronously (configuration looked up while options resolve). */
export function readBoundedTextSync(path: string, read: BoundedRead): string {
  check(path, statSync(path), read);
  const fd = openSync(path, READ_FLAGS);
  try {
    check(path, fstatSync(fd), read);
    const limit = READ_LIMITS[read.kind].bytes;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buffer = Buffer.alloc(CHUNK);
      const bytesRead = readSync(fd, buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > limit) throw tooLargeError(path, read, total);
      chunks.push(buffer.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
