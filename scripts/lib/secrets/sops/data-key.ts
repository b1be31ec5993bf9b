import { armor, Decrypter } from 'age-encryption';
import { InputError } from '../../core/errors.ts';
import { defaultKeysFile, type IdentitySearch, ignoredSource, loadAgeIdentities } from './age-keys.ts';
import type { AgeEntry, SopsMetadata } from './metadata.ts';

const DATA_KEY_BYTES = 32;
const NO_MATCH = "no identity matched any of the file's recipients";

export interface IdentitySource {
  env: NodeJS.ProcessEnv;
  /** Use exactly these identities instead of looking in `env`. */
  identities?: string[];
}

/** A recipient type the age library here cannot decrypt for, or undefined for X25519 and PQ. */
function unsupportedRecipient(recipient: string): string | undefined {
  if (recipient.startsWith('ssh-')) return 'an SSH recipient';
  if (/^age1(?!pq1)[a-z0-9]+1/.test(recipient)) return 'a plugin recipient';
  return undefined;
}

function decrypterFor(identities: string[]): Decrypter {
  const decrypter = new Decrypter();
  identities.forEach((identity, i) => {
    try {
      decrypter.addIdentity(identity);
    } catch {
      throw new InputError(
        `identity ${i + 1} of those given is not an age identity (AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)`,
      );
    }
  });
  return decrypter;
}

/** One age entry: the 32-byte data key, undefined if no identity matches, or a problem. */
async function tryEntry(
  decrypter: Decrypter,
  entry: AgeEntry,
  label: string,
): Promise<Uint8Array | string | undefined> {
  let file: Uint8Array;
  try {
    file = armor.decode(entry.enc);
  } catch (err) {
    return `${label}: enc is not an ASCII-armored age file (${(err as Error).message})`;
  }
  try {
    const key = await readWhole(await decrypter.decrypt(streamOf(file)));
    return key.length === DATA_KEY_BYTES
      ? key
      : `${label}: decrypts to ${key.length} bytes, not a 32-byte data key`;
  } catch (err) {
    const message = (err as Error).message;
    return message === NO_MATCH ? undefined : `${label}: ${message}`;
  }
}

/**
 * The age library reads a Uint8Array input's result through `new Response(stream)`, which loads Node's
 * fetch implementation (~30 ms of CPU, a third of a command's start). Given a stream it returns the
 * stream: reading it here costs nothing more.
 */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

async function readWhole(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
  return Buffer.concat(chunks);
}

export interface RecoveredKey {
  key: Uint8Array;
  /**
   * The age key sources that were set but unusable (a SOPS_AGE_KEY_FILE that does not exist, a malformed
   * SOPS_AGE_KEY), though another key opened the file. sops ≥ 3.11 says nothing then; an operator who set
   * them meant them, so they are said. Never key material.
   */
  warnings: string[];
}

/**
 * The data key, as sops's `MasterKey.Decrypt` gets it: every `enc` in file order, each tried with
 * every identity (never chosen by comparing recipient strings); the first that opens wins.
 */
export async function recoverDataKey(
  meta: SopsMetadata,
  file: string,
  source: IdentitySource,
): Promise<RecoveredKey> {
  // sops runs SOPS_AGE_KEY_CMD once per age entry it tries, telling it which recipient that is.
  const runsKeyCmd = !source.identities && Boolean(source.env.SOPS_AGE_KEY_CMD);
  const load = async (recipient?: string): Promise<IdentitySearch> =>
    source.identities
      ? {
          identities: source.identities,
          searched: [`identities given by the caller: ${source.identities.length}`],
          problems: [],
        }
      : loadAgeIdentities(source.env, recipient);
  let search = await load(runsKeyCmd ? meta.ageEntries[0]?.recipient : undefined);
  let decrypter = decrypterFor(search.identities);
  const problems: string[] = [];

  for (const [index, entry] of meta.ageEntries.entries()) {
    if (runsKeyCmd && index > 0) {
      search = await load(entry.recipient);
      decrypter = decrypterFor(search.identities);
    }
    const label = `sops.age[${index}] (${entry.recipient})`;
    const unsupported = unsupportedRecipient(entry.recipient);
    if (unsupported) {
      problems.push(`${label} is ${unsupported}: not supported natively; install the sops binary to use it`);
      continue;
    }
    const result = await tryEntry(decrypter, entry, label);
    if (result instanceof Uint8Array)
      return {
        key: result,
        warnings: search.problems.map((p) => ignoredSource(p, file)),
      };
    if (result) problems.push(result);
  }

  const lines = [
    `${file}: no age identity decrypts the data key`,
    `  recipients in the file: ${meta.ageEntries.map((e) => e.recipient).join(', ')}`,
    '  searched:',
    ...search.searched.map((s) => `    ${s}`),
    ...[...new Set([...search.problems, ...problems])].map((p) => `  problem: ${p}`),
  ];
  const defaultFile = defaultKeysFile(source.env) ?? '~/.config/sops/age/keys.txt';
  throw new InputError(
    lines.join('\n'),
    `put the age secret key (AGE-SECRET-KEY-1…) of one of those recipients in a keys file and set SOPS_AGE_KEY_FILE=/path/to/keys.txt, or save it as ${defaultFile}`,
  );
}
