import { randomBytes, randomInt } from 'node:crypto';
import type { Generator } from './schema.ts';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A fresh value for a generatable key, the way the design page says to make it (`openssl rand -hex 16`,
 * `-base64 32`, 60 random characters), from the OS CSPRNG. Manual keys have no generator: undefined.
 */
export function generateValue(g: Generator): string | undefined {
  switch (g.kind) {
    case 'hex':
      return randomBytes(g.bytes).toString('hex');
    case 'base64':
      return randomBytes(g.bytes).toString('base64');
    case 'random-chars':
      // randomInt is unbiased, unlike `byte % 62`.
      return Array.from({ length: g.length }, () => ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]).join('');
    case 'manual':
      return undefined;
  }
}
