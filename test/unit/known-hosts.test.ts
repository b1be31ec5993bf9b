import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  appendKnownHostsLine,
  checkHostKey,
  fingerprint,
  formatKnownHostsLine,
  hashHostName,
  hostFieldMatches,
  keyTypeOfBlob,
  knownHostKeyAlgorithms,
  lookupName,
  parseKnownHosts,
} from '../../scripts/lib/exec/known-hosts.ts';
import { requireTool } from '../helpers/tiers.ts';

/** An SSH wire-format key blob (type string, then filler), base64: enough for matching and fingerprints. */
function fakeKey(type: string, seed: number): string {
  const name = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(name.length);
  return Buffer.concat([len, name, Buffer.alloc(32, seed)]).toString('base64');
}

const ED_A = fakeKey('ssh-ed25519', 1);
const ED_B = fakeKey('ssh-ed25519', 2);
const RSA = fakeKey('ssh-rsa', 3);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kh-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('parseKnownHosts', () => {
  it('reads entries with line numbers and markers, skipping comments, blanks, SSH1 and unknown markers', () => {
    const text = [
      '# a comment',
      '',
      `example.com,10.0.0.1 ssh-ed25519 ${ED_A} comment words`,
      `@revoked * ssh-ed25519 ${ED_B}`,
      `@cert-authority *.example.com ssh-rsa ${RSA}`,
      '@future host ssh-ed25519 AAAA',
      'old.example.com 1024 35 123456789',
      `  [h]:2222\tssh-rsa  ${RSA}  `,
    ].join('\n');
    expect(parseKnownHosts(text)).toEqual([
      { line: 3, hosts: 'example.com,10.0.0.1', keyType: 'ssh-ed25519', key: ED_A },
      { line: 4, marker: 'revoked', hosts: '*', keyType: 'ssh-ed25519', key: ED_B },
      { line: 5, marker: 'cert-authority', hosts: '*.example.com', keyType: 'ssh-rsa', key: RSA },
      { line: 8, hosts: '[h]:2222', keyType: 'ssh-rsa', key: RSA },
    ]);
  });
});

describe('host matching', () => {
  it('files port 22 under the bare name and other ports as [host]:port, lower-cased', () => {
    expect(lookupName('Example.COM', 22)).toBe('example.com');
    expect(lookupName('10.0.0.1', 2222)).toBe('[10.0.0.1]:2222');
  });

  it('matches comma lists, wildcards and negations as ssh does, case-insensitively', () => {
    expect(hostFieldMatches('a.example,B.EXAMPLE', 'b.example')).toBe(true);
    expect(hostFieldMatches('a.example', 'b.example')).toBe(false);
    expect(hostFieldMatches('*.example', 'x.example')).toBe(true);
    expect(hostFieldMatches('host?', 'host1')).toBe(true);
    expect(hostFieldMatches('host?', 'host12')).toBe(false);
    expect(hostFieldMatches('*.example,!bad.example', 'bad.example')).toBe(false);
    expect(hostFieldMatches('[h]:2222', '[h]:2222')).toBe(true);
    expect(hostFieldMatches('[h]:2222', 'h')).toBe(false);
    expect(hostFieldMatches('h', '[h]:2222')).toBe(false);
    expect(hostFieldMatches('[*]:2222', '[anything]:2222')).toBe(true);
    // A dot in a pattern is a dot, not a regular-expression wildcard.
    expect(hostFieldMatches('10.0.0.1', '10x0x0x1')).toBe(false);
  });

  it('matches hashed entries by HMAC-SHA1 of the lookup name', () => {
    const hashed = hashHostName('[h]:2222', Buffer.alloc(20, 7));
    expect(hashed).toMatch(/^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+$/);
    expect(hostFieldMatches(hashed, '[h]:2222')).toBe(true);
    expect(hostFieldMatches(hashed, 'h')).toBe(false);
  });
});

describe('checkHostKey', () => {
  const entries = parseKnownHosts(
    [
      `[h]:2222 ssh-ed25519 ${ED_A}`,
      `other ssh-rsa ${RSA}`,
      `@cert-authority * ssh-ed25519 ${ED_B}`,
      `${hashHostName('hashed')} ssh-ed25519 ${ED_A}`,
    ].join('\n'),
  );

  it('accepts the recorded key, plain or hashed', () => {
    expect(checkHostKey(entries, 'h', 2222, 'ssh-ed25519', ED_A)).toMatchObject({
      status: 'known',
      entry: { line: 1 },
    });
    expect(checkHostKey(entries, 'hashed', 22, 'ssh-ed25519', ED_A)).toMatchObject({ status: 'known' });
  });

  it('reports a different key of the same type as changed, with the recorded entries', () => {
    const r = checkHostKey(entries, 'h', 2222, 'ssh-ed25519', ED_B);
    expect(r).toEqual({ status: 'changed', known: [entries[0]] });
  });

  it('reports a host known only under other key types, and an unknown host', () => {
    expect(checkHostKey(entries, 'other', 22, 'ssh-ed25519', ED_A)).toMatchObject({ status: 'other-types' });
    expect(checkHostKey(entries, 'h', 22, 'ssh-ed25519', ED_A)).toEqual({ status: 'unknown' });
  });

  it('never takes a @cert-authority line for a host key', () => {
    expect(checkHostKey(entries, 'somewhere', 22, 'ssh-ed25519', ED_B)).toEqual({ status: 'unknown' });
  });

  it('refuses a @revoked key even where it is also recorded as the host key', () => {
    const withRevoked = parseKnownHosts(`h ssh-ed25519 ${ED_A}\n@revoked * ssh-ed25519 ${ED_A}\n`);
    expect(checkHostKey(withRevoked, 'h', 22, 'ssh-ed25519', ED_A)).toMatchObject({
      status: 'revoked',
      entry: { line: 2 },
    });
  });

  it('offers the recorded key types first, RSA as its signature algorithms', () => {
    const e = parseKnownHosts(`h ssh-rsa ${RSA}\nh ssh-ed25519 ${ED_A}\nx ecdsa-sha2-nistp256 ${ED_B}\n`);
    expect(knownHostKeyAlgorithms(e, 'h', 22)).toEqual([
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
      'ssh-ed25519',
    ]);
    expect(knownHostKeyAlgorithms(e, 'nobody', 22)).toEqual([]);
  });
});

describe('keys and lines', () => {
  it('reads the key type from a blob and formats accept-new lines', () => {
    expect(keyTypeOfBlob(Buffer.from(RSA, 'base64'))).toBe('ssh-rsa');
    expect(keyTypeOfBlob(Buffer.alloc(2))).toBe('unknown');
    expect(formatKnownHostsLine('H', 22, 'ssh-ed25519', ED_A)).toBe(`h ssh-ed25519 ${ED_A}`);
    expect(formatKnownHostsLine('h', 2222, 'ssh-ed25519', ED_A)).toBe(`[h]:2222 ssh-ed25519 ${ED_A}`);
    const hashed = formatKnownHostsLine('h', 2222, 'ssh-ed25519', ED_A, { hash: true });
    const [entry] = parseKnownHosts(hashed);
    expect(entry?.hosts.startsWith('|1|')).toBe(true);
    expect(checkHostKey(parseKnownHosts(hashed), 'h', 2222, 'ssh-ed25519', ED_A).status).toBe('known');
  });

  it('appends like ssh: directory 0700 and file 0600 from creation, never joining a line without newline', async () => {
    const dir = tempDir();
    const file = join(dir, 'sub', '.ssh', 'known_hosts');
    const old = process.umask(0);
    try {
      await appendKnownHostsLine(file, 'a ssh-ed25519 AAAA');
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, 'sub', '.ssh')).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileSync(file, 'a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB'); // a hand edit without a final newline
    await appendKnownHostsLine(file, 'c ssh-ed25519 CCCC');
    expect(readFileSync(file, 'utf8')).toBe('a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\nc ssh-ed25519 CCCC\n');
  });
});

// Cross-checks against OpenSSH's own tools: what ssh-keygen writes we read, and what we write it reads.
const sshKeygen = requireTool('ssh-keygen', 'known_hosts cross-checks against OpenSSH');

describe.skipIf(!sshKeygen)('against ssh-keygen', () => {
  const keygen = (...args: string[]) =>
    execFileSync(sshKeygen as string, args, { encoding: 'utf8', stdio: 'pipe' });

  function realKey(dir: string): { type: string; key: string; pub: string } {
    const path = join(dir, `k${Math.random().toString(36).slice(2)}`);
    keygen('-q', '-t', 'ed25519', '-N', '', '-f', path);
    const pub = `${path}.pub`;
    const [type = '', key = ''] = readFileSync(pub, 'utf8').split(' ');
    return { type, key, pub };
  }

  it('prints the same fingerprint as ssh-keygen -lf', () => {
    const { key, pub } = realKey(tempDir());
    expect(keygen('-lf', pub).split(' ')[1]).toBe(fingerprint(key));
  });

  it('matches the entries ssh-keygen -H hashes, and ssh-keygen -F finds the hashed lines we write', () => {
    const dir = tempDir();
    const { type, key } = realKey(dir);
    const file = join(dir, 'known_hosts');
    writeFileSync(file, `[127.0.0.1]:2222 ${type} ${key}\nplain.example,10.1.2.3 ${type} ${key}\n`);
    keygen('-q', '-H', '-f', file);
    const hashed = parseKnownHosts(readFileSync(file, 'utf8'));
    expect(hashed.every((e) => e.hosts.startsWith('|1|'))).toBe(true);
    expect(checkHostKey(hashed, '127.0.0.1', 2222, type, key).status).toBe('known');
    expect(checkHostKey(hashed, '10.1.2.3', 22, type, key).status).toBe('known');
    expect(checkHostKey(hashed, '127.0.0.1', 22, type, key).status).toBe('unknown');

    const ours = join(dir, 'ours');
    writeFileSync(ours, `${formatKnownHostsLine('10.9.8.7', 2200, type, key, { hash: true })}\n`);
    expect(keygen('-F', '[10.9.8.7]:2200', '-f', ours)).toContain(key);
  });
});
