/**
 * The front door of the native SOPS reader and writer for age keys (YAML, JSON, dotenv and binary files,
 * the MAC always verified): code outside this folder imports from here only, so what the folder keeps to
 * itself can change without touching its callers. Anything it does not support (PGP/KMS-only files, Shamir
 * key groups, SSH or plugin identities, INI) is refused with an error that says to install the sops binary.
 */
export {
  findAgeIdentities,
  type IdentitySearch,
  keyFileWarnings,
  loadAgeIdentities,
  passedOverSources,
  shlexSplit,
} from './age-keys.ts';
export {
  type DecryptedFile,
  type DecryptedTree,
  decryptFileToTree,
  decryptSopsFile,
  decryptSopsText,
  macOnlyNotices,
  readPlainKeyNames,
  readSopsFile,
} from './decrypt.ts';
export { type EncryptOptions, encryptSops } from './encrypt.ts';
export { execEnvPairs, runWithEnv } from './exec-env.ts';
export { GoTime } from './go-values.ts';
export { editByHand } from './hints.ts';
export { readSecretsFile, sopsTimeoutMs } from './limits.ts';
export { readAgeRecipients } from './metadata.ts';
export {
  commitSops,
  type OpenedSops,
  openSops,
  registerLeaves,
  rewriteSops,
  withValues,
} from './rewrite.ts';
export type { RuleSet } from './rules.ts';
export type { SopsFormat, Store } from './store.ts';
export { formatNamed, requireYaml, SOPS_FORMATS, storeFor } from './stores.ts';
export { Branch, Comment, type Pair, type Value } from './tree.ts';
export { yamlStore } from './yaml-store.ts';
