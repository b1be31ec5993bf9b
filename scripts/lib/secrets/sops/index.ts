/**
 * A native SOPS reader and writer for age keys: YAML, JSON, dotenv and binary files, the MAC
 * always verified. Anything it does not support (PGP/KMS-only files, Shamir key groups, SSH or
 * plugin identities, INI) is refused with an error that says to install the sops binary.
 * Format reference: shared/reference/sops-format.md.
 */
export { findAgeIdentities, type IdentitySearch } from './age-keys.ts';
export { type DecryptedFile, decryptSopsFile, decryptSopsText, readPlainKeyNames } from './decrypt.ts';
export { type EncryptOptions, encryptSops } from './encrypt.ts';
export { execEnvPairs } from './exec-env.ts';
export type { RuleSet } from './rules.ts';
export { formatForPath, isSopsFile, type SopsFormat } from './stores.ts';
