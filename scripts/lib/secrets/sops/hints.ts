/**
 * What an operator is told to do about a SOPS file the suite refuses, one wording per case. The guide
 * needs no sops binary, so the way out is git and the suite's own commands; the sops binary is named only
 * where it really does what the suite cannot.
 */

const SET = 'node --import tsx scripts/secrets.ts set KEY';
const EDIT = 'node --import tsx scripts/secrets.ts edit';

/** A file changed outside sops (a value, the order, the MAC, the metadata): git has the good copy. */
export function restoreHint(file: string): string {
  return `restore it from git (git diff -- ${file} shows what changed; git checkout -- ${file} undoes it), then make the change with \`${SET} --secrets-file ${file}\` or \`${EDIT} --secrets-file ${file}\` (just secrets-set KEY, just secrets-edit), which write the MAC anew`;
}

/** A file with no sops metadata at all. */
export function notSopsHint(file: string): string {
  return `check that ${file} is the right file; a new bootstrap file is made with \`just secrets-init AGE1…\` (to encrypt a plaintext file as it is, the sops binary: sops --encrypt --in-place FILE)`;
}

/** A value this writer will not change in place (not a string): the suite's editor can. */
export function editByHand(file: string): string {
  return `edit it with \`${EDIT} --secrets-file ${file}\` (just secrets-edit), or with the sops binary (sops ${file})`;
}

/** A file not laid out as sops writes it, or one this writer could not reproduce: nothing here can write it. */
export function layoutHint(file: string): string {
  return `restore it from git (git checkout -- ${file}) if it was changed by hand; otherwise the sops binary rewrites it in its own layout (sops ${file}, then save)`;
}
