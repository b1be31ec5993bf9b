import { createHash, type Hash } from 'node:crypto';
import { formatFloatF, GoTime } from './go-values.ts';
import type { Scalar } from './tree.ts';

/**
 * sops's MAC: SHA-512 over every value's bytes in walk order, nothing between them and no keys,
 * printed as upper-case hex. Under `mac_only_encrypted` only encrypted values count, after a fixed
 * prefix so that such a MAC can never equal an ordinary one.
 */
const MAC_ONLY_ENCRYPTED_INIT = Buffer.from(
  '8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69',
  'hex',
);

/** sops's `ToBytes`: Go's text forms (`True`/`False` are from sops's Python days). */
export function macBytes(value: Exclude<Scalar, null>): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (typeof value === 'bigint') return Buffer.from(value.toString(), 'utf8');
  if (typeof value === 'number') return Buffer.from(formatFloatF(value), 'utf8');
  if (typeof value === 'boolean') return Buffer.from(value ? 'True' : 'False', 'utf8');
  if (value instanceof GoTime) return Buffer.from(value.nano, 'utf8');
  throw new TypeError('unreachable: unknown scalar');
}

export class MacHasher {
  private readonly hash: Hash = createHash('sha512');

  constructor(private readonly macOnlyEncrypted: boolean) {
    if (macOnlyEncrypted) this.hash.update(MAC_ONLY_ENCRYPTED_INIT);
  }

  /** One leaf (never a comment or null): hashed unless only encrypted values count and it is not. */
  add(bytes: Uint8Array, encrypted: boolean): void {
    if (!this.macOnlyEncrypted || encrypted) this.hash.update(bytes);
  }

  hex(): string {
    return this.hash.digest('hex').toUpperCase();
  }
}
