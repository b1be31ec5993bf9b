/**
 * OpenSSH known_hosts, read and written the way `ssh` does (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"),
 * because ssh2 has no parser and the operator's file is shared with their ssh client: a host accepted
 * here must be accepted by `ssh`, and the reverse.
 *
 * Lookup name: `host` on port 22, `[host]:port` otherwise, lower-cased (ssh lower-cases host names).
 * Host fields: comma-separated patterns with `*`, `?` and `!negation`, or one hashed `|1|salt|hmac`
 * entry (HMAC-SHA1 of the lookup name keyed with the salt, as `HashKnownHosts yes` writes it).
 * Markers: `@revoked` keys are refused; `@cert-authority` lines are skipped (ssh2 has no host
 * certificates, so a CA line can never vouch for a plain key).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type FileKindProbe, notRegular } from '../core/file-kind.ts';
import { notRegularError, readBoundedText } from '../core/read-bounded.ts';

/** 'a+' (read, append, create), non-blocking: a FIFO put in place after the check cannot block the open. */
const APPEND_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | (constants.O_NONBLOCK ?? 0);

export interface KnownHostsEntry {
  /** 1-based line number in the file, for messages that tell the operator where to look. */
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** The host field as written: a pattern list or one hashed entry. */
  hosts: string;
  keyType: string;
  /** The key blob in base64, as written. */
  key: string;
}

export type HostKeyCheck =
  | { status: 'known'; entry: KnownHostsEntry }
  | { status: 'revoked'; entry: KnownHostsEntry }
  /** Known with a different key of the same type: possible man-in-the-middle, never accepted. */
  | { status: 'changed'; known: KnownHostsEntry[] }
  /** Known only under other key types: the server no longer offers the key we know; never accepted. */
  | { status: 'other-types'; known: KnownHostsEntry[] }
  | { status: 'unknown' };

/** The name a host is filed under: `host` for port 22, `[host]:port` otherwise (ssh's put_host_port). */
export function lookupName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith('#')) return;
    let marker: KnownHostsEntry['marker'];
    if (fields[0].startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return; // an unknown marker: ssh ignores the line, so do we
    }
    const [hosts, keyType, key] = fields;
    // Old SSH1 lines ("host bits exponent modulus") and damaged lines have no usable key: skip as ssh does.
    if (!hosts || !keyType || !key || /^\d+$/.test(keyType)) return;
    entries.push({ line: i + 1, ...(marker ? { marker } : {}), hosts, keyType, key });
  });
  return entries;
}

/** `HashKnownHosts` form: |1|base64(salt)|base64(HMAC-SHA1(salt, name)). */
export function hashHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const mac = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${mac}`;
}

function matchesHashed(field: string, name: string): boolean {
  const [, , saltB64, macB64] = field.split('|');
  if (!saltB64 || !macB64) return false;
  const salt = Buffer.from(saltB64, 'base64');
  return hashHostName(name, salt) === `|1|${saltB64}|${macB64}`;
}

/** ssh's match_pattern: `*` any run, `?` one character, everything else literal. */
function globMatch(name: string, pattern: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(name);
}

/** ssh's match_hostname: a negated match anywhere vetoes the entry; otherwise any positive match wins. */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) return matchesHashed(field, name);
  let matched = false;
  for (const raw of field.toLowerCase().split(',')) {
    const negated = raw.startsWith('!');
    const pattern = negated ? raw.slice(1) : raw;
    if (!pattern || !globMatch(name, pattern)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function sameKey(a: string, b: string): boolean {
  // Compare bytes, not text: base64 written by other tools may differ in line breaks or padding.
  return Buffer.from(a, 'base64').equals(Buffer.from(b, 'base64'));
}

/**
 * What the file says about `keyType`/`key` (base64 blob) offered by host:port.
 * `@revoked` keys are refused whatever their host field says: a revoked key is never acceptable.
 */
export function checkHostKey(
  entries: readonly KnownHostsEntry[],
  host: string,
  port: number,
  keyType: string,
  key: string,
): HostKeyCheck {
  const revoked = entries.find((e) => e.marker === 'revoked' && sameKey(e.key, key));
  if (revoked) return { status: 'revoked', entry: revoked };
  const name = lookupName(host, port);
  const forHost = entries.filter((e) => !e.marker && hostFieldMatches(e.hosts, name));
  const exact = forHost.find((e) => sameKey(e.key, key));
  if (exact) return { status: 'known', entry: exact };
  const sameType = forHost.filter((e) => e.keyType === keyType);
  if (sameType.length) return { status: 'changed', known: sameType };
  if (forHost.length) return { status: 'other-types', known: forHost };
  return { status: 'unknown' };
}

/**
 * Host key algorithms to offer, the known ones first (like ssh's order_hostkeyalgs), so a server with
 * several host keys presents the one on file rather than a new one that would look like a change.
 */
export function knownHostKeyAlgorithms(
  entries: readonly KnownHostsEntry[],
  host: string,
  port: number,
): string[] {
  const name = lookupName(host, port);
  const algs = new Set<string>();
  for (const e of entries) {
    if (e.marker || !hostFieldMatches(e.hosts, name)) continue;
    // An RSA key is filed as ssh-rsa but negotiated as one of its signature algorithms.
    if (e.keyType === 'ssh-rsa') for (const a of ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']) algs.add(a);
    else algs.add(e.keyType);
  }
  return [...algs];
}

/** The key type inside an SSH wire-format public key blob (its first string). */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.length >= 4 + len ? blob.subarray(4, 4 + len).toString('latin1') : 'unknown';
}

/** OpenSSH's fingerprint format: SHA256: and unpadded base64, as `ssh-keygen -lf` prints it. */
export function fingerprint(blob: Buffer | string): string {
  const bytes = typeof blob === 'string' ? Buffer.from(blob, 'base64') : blob;
  return `SHA256:${createHash('sha256').update(bytes).digest('base64').replace(/=+$/, '')}`;
}

/** The line `StrictHostKeyChecking=accept-new` appends: `name keytype base64`, the name optionally hashed. */
export function formatKnownHostsLine(
  host: string,
  port: number,
  keyType: string,
  key: string,
  { hash = false }: { hash?: boolean } = {},
): string {
  const name = lookupName(host, port);
  return `${hash ? hashHostName(name) : name} ${keyType} ${key}`;
}

const KNOWN_HOSTS_READ = {
  what: 'the known_hosts file',
  kind: 'knownHosts',
  hint: 'give --known-hosts (or UserKnownHostsFile) the path of a regular file',
} as const;

/** The file's entries; a missing file is an empty one (a first connection). */
export async function readKnownHosts(file: string): Promise<KnownHostsEntry[]> {
  try {
    return parseKnownHosts(await readBoundedText(file, KNOWN_HOSTS_READ));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Append one line as ssh does: a missing directory is created 0700 and a missing file 0600 (from
 * creation; an existing file keeps its mode). Appending, not rewriting, keeps concurrent writers' lines.
 */
export async function appendKnownHostsLine(file: string, line: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // As for a read (read-bounded.ts): refused unless a regular file, before and after a non-blocking open.
  const refuse = (st: FileKindProbe) => {
    const kind = notRegular(st);
    if (kind) throw notRegularError(file, KNOWN_HOSTS_READ.what, kind, KNOWN_HOSTS_READ.hint);
  };
  const before = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (before) refuse(before);
  const fh = await open(file, APPEND_FLAGS, 0o600);
  try {
    const st = await fh.stat();
    refuse(st);
    const { size } = st;
    let needsNewline = false;
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      needsNewline = last[0] !== 0x0a;
    }
    await fh.write(`${needsNewline ? '\n' : ''}${line}\n`);
  } finally {
    await fh.close();
  }
}
