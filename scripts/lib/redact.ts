import { createHash } from 'node:crypto';

/**
 * Every byte a command prints passes through one Redactor. Secret values are registered before any
 * external command runs, together with the encodings they travel in (base64 in Secret manifests,
 * URL-encoding in connection strings, JSON escaping in --json output), so that none of those forms
 * can leak through stdout, stderr, an error message or a log line.
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

  registerAll(values: Record<string, string | undefined>): void {
    for (const [name, value] of Object.entries(values)) if (value) this.register(value, name);
  }

  redact(text: string): string {
    let out = text;
    for (const { text: secret, label } of this.patterns) {
      if (out.includes(secret)) out = out.split(secret).join(label);
    }
    return out;
  }

  get size(): number {
    return this.patterns.length;
  }
}

function encodedForms(value: string): string[] {
  const forms = new Set<string>([value]);
  forms.add(Buffer.from(value, 'utf8').toString('base64'));
  forms.add(encodeURIComponent(value));
  forms.add(JSON.stringify(value).slice(1, -1));
  // A value that spans lines can leak one line at a time.
  for (const line of value.split('\n')) forms.add(line);
  return [...forms];
}

/** `sha256:1a2b3c4d`: enough for a person to recognise a value, useless to recover it. */
export function fingerprint(value: string): string {
  return `sha256:${createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 8)}`;
}

/** `NAME (44 chars, sha256:1a2b3c4d)`: how a secret is shown wherever a person needs to see it. */
export function describeSecret(name: string, value: string): string {
  return `${name} (${[...value].length} chars, ${fingerprint(value)})`;
}

/** The process-wide redactor: every output path of every command goes through it. */
export const redactor = new Redactor();
