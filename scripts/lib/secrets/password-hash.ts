/**
 * One-way password hashes a consumer receives instead of the password. A salted hash differs at every
 * computation, so whoever renders one keeps the hash the place already holds while it still verifies
 * against the password: a new salt would change the file, and restart its reader, at every run.
 */
import bcrypt from 'bcryptjs';

export interface PasswordHash {
  /** For people: the scheme and its cost. */
  scheme: string;
  hash(password: string): string;
  /** The stored hash verifies `password` and is as strong as a new one; a malformed one never matches. */
  matches(password: string, stored: string): boolean;
}

/**
 * bcrypt's work factor. 10 is Go's bcrypt.DefaultCost, which NetBird's embedded Dex uses for the passwords
 * it hashes itself (netbirdio/netbird@v0.66.0:idp/dex/provider.go); Dex takes any valid bcrypt hash as a
 * static password (@v0.66.0:idp/dex/config.go).
 */
const BCRYPT_COST = 10;

/** bcrypt reads at most 72 bytes of a password: the rest would be ignored without a word. */
export const BCRYPT_MAX_BYTES = 72;

export const BCRYPT: PasswordHash = {
  scheme: `bcrypt, cost ${BCRYPT_COST}`,
  hash: (password) => bcrypt.hashSync(password, BCRYPT_COST),
  matches: (password, stored) => {
    try {
      return bcrypt.getRounds(stored) >= BCRYPT_COST && bcrypt.compareSync(password, stored);
    } catch {
      return false;
    }
  },
};
