/**
 * The real sops library as a test oracle (../shared/tools/real-sops/real-sops-decrypt: sops 3.9.2's own
 * decrypt.Data, MAC verified). Skips with a printed reason where ../shared is missing; required where
 * SECRETS_FLOW_REQUIRE_TIERS is set.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { requireShared } from './tiers.ts';

const dir = requireShared('tools/real-sops', 'the real sops decryption cross-check');

/** The oracle's path, or undefined (skip) without ../shared. */
export const realSopsDecryptBin = dir ? join(dir, 'real-sops-decrypt') : undefined;

/** What sops decrypts `file` to (JSON of the first document), with `keysFile` as SOPS_AGE_KEY_FILE. */
export async function realSopsDecrypt(file: string, keysFile: string): Promise<unknown> {
  if (!realSopsDecryptBin) throw new Error('real-sops-decrypt is not available');
  const r = await execa(realSopsDecryptBin, [file], {
    env: { SOPS_AGE_KEY_FILE: keysFile },
    reject: false,
    timeout: 120_000,
  });
  if (r.exitCode !== 0) throw new Error(`real sops refused ${file} (exit ${r.exitCode}): ${r.stderr}`);
  return JSON.parse(String(r.stdout));
}
