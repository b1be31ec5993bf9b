import { createHmac } from 'node:crypto';

/**
 * Every byte a command prints passes through one Redactor. Secret values are registered before any
 * external command runs, together with the encodings they travel in (base64 in Secret manifests,
 * URL-encoding in connection strings, JSON escaping in --json output), so that none of those forms
 * can leak through stdout, stderr, an error message or a log line. Values derived from a secret (a
 * connection string) are secrets of their own: `registerSecrets` in secrets/registry.ts registers them.
 */
export class Redactor {
  // Longest first, so that a secret containing another secret is replaced whole.
  private patterns: { text: string; label: string }[] = [];

  /** Values shorter than this are not secrets worth hiding and would shred ordinary text. */
  static readonly minLength = 4;

  register(value: string, name = 'secret'): void {
    for (const form of encodedForms(value)) {
      if (form.length < Redactor.minLength) continue;
      if (this.patterns.some((p) => p.text === form)) continue;
      this.patterns.push({ text: form, label: `[REDACTED:${name}]` });
    }
    this.patterns.sort((a, b) => b.text.length - a.text.length);
  }

  registerAll(values: Readonly<Record<string, string | undefined>>): void {
    for (const [name, value] of Object.entries(values)) if (value) this.register(value, name);
  }

  redact(text: string): string {
    let out = text;
    for (const { text: secret, label } of this.patterns) {
      if (out.includes(secret)) out = out.split(secret).join(label);
    }
    return out;
  }

  /** Whether `text` holds a registered value in any of its forms (so it must not be handed on). */
  holds(text: string): boolean {
    return this.patterns.some((p) => text.includes(p.text));
  }

  get size(): number {
    return this.patterns.length;
  }

  /** Forgets every registered value: the state of a process that registered none (tests, between files). */
  clear(): void {
    this.patterns = [];
  }
}

/**
 * Every form a value travels in: raw, base64, URL-encoded, JSON-escaped, and each of its lines. The
 * leak tests search for exactly these forms, so what is hidden and what is checked cannot drift apart.
 */
export function encodedForms(value: string): string[] {
  const forms = new Set<string>([value]);
  for (const core of base64Cores(Buffer.from(value, 'utf8'))) forms.add(core);
  forms.add(encodeURIComponent(value));
  forms.add(JSON.stringify(value).slice(1, -1));
  // A value that spans lines can leak one line at a time.
  for (const line of value.split('\n')) forms.add(line);
  return [...forms];
}

/**
 * The base64 of a value embedded in a longer text (a whole env file or manifest base64-encoded) depends
 * on where the value starts modulo 3. For each of the three alignments, the characters that encode only
 * the value's own bytes appear verbatim in the larger encoding; those are the forms to hide. The first
 * whole base64 of the value, with its padding, is one more.
 */
function base64Cores(bytes: Buffer): string[] {
  const cores = [bytes.toString('base64')];
  for (const shift of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    // Skip the group that mixes the filler bytes in, and the last one, which mixes in what follows.
    const end = Math.floor((shift + bytes.length) / 3) * 4;
    const core = encoded.slice(shift === 0 ? 0 : 4, end);
    if (core.length > 0) cores.push(core);
  }
  return cores;
}

// ---- fingerprints ------------------------------------------------------------------------------------

/**
 * Fingerprints are keyed (HMAC-SHA-256 under FINGERPRINT_KEY from the SOPS file): a plain hash of a weak
 * password could be reversed by guessing, a keyed one cannot without the key. Without the key (a source
 * that lacks it, the engine on the VPS) no fingerprint is shown at all, only the length.
 */
let fingerprintKey: Buffer | undefined;

/** Sets (or, with undefined, clears) the key of every fingerprint this process shows. */
export function setFingerprintKey(key: string | undefined): void {
  fingerprintKey = key ? Buffer.from(key, 'utf8') : undefined;
}

export function hasFingerprintKey(): boolean {
  return fingerprintKey !== undefined;
}

/** `hmac:1a2b3c4d`: enough for a person to recognise a value, useless to recover it; undefined without a key. */
export function fingerprint(value: string): string | undefined {
  if (!fingerprintKey) return undefined;
  const mac = createHmac('sha256', fingerprintKey).update('secrets-flow fingerprint\0').update(value, 'utf8');
  return `hmac:${mac.digest('hex').slice(0, 8)}`;
}

/** `NAME (44 chars, hmac:1a2b3c4d)`, or `NAME (44 chars)` without a key: how a secret is shown to a person. */
export function describeSecret(name: string, value: string): string {
  const fp = fingerprint(value);
  return `${name} (${[...value].length} chars${fp ? `, ${fp}` : ''})`;
}

/** The process-wide redactor: every output path of every command goes through it. */
export const redactor = new Redactor();
