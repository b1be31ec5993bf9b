import { CONSUMERS, type ConsumerId, keysFor, type SecretUse, specOf } from './schema.ts';

export interface SecretProblem {
  key: string;
  kind: 'missing' | 'malformed';
  /**
   * 'warning' for a value made by hand (a vendor's token) that does not match the vendor's documented
   * format: a vendor changing its format must not block a deploy. `--strict` makes it an error.
   */
  severity: 'error' | 'warning';
  /** Says what is wrong and what a valid value looks like; never holds the value. */
  detail: string;
}

// Values travel through env files, YAML and process environments: a control character there is a
// copy-paste slip (most often a trailing newline) and breaks a consumer far from here.
const hasControlCharacter = (v: string) =>
  [...v].some((ch) => (ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f');

/** Every missing or malformed key the given consumers need, all at once, in schema order. */
export function findProblems(
  values: Readonly<Record<string, string | undefined>>,
  consumers: readonly ConsumerId[],
  opts: { presenceOnly?: boolean; strict?: boolean } = {},
): SecretProblem[] {
  const { required, optional } = keysFor(consumers);
  const problems: SecretProblem[] = [];
  for (const key of [...required, ...optional]) {
    const spec = specOf(key);
    if (!spec) continue;
    const value = values[key];
    if (value === undefined || value === '') {
      if (required.includes(key)) {
        const readers = (spec.uses as readonly SecretUse[])
          .filter((u) => u.required && consumers.includes(u.consumer))
          .map((u) => CONSUMERS[u.consumer].title);
        problems.push({
          key,
          kind: 'missing',
          severity: 'error',
          detail: `missing (needed by ${[...new Set(readers)].join(', ')})`,
        });
      }
      continue;
    }
    if (opts.presenceOnly) continue;
    const shape = shapeProblem(value);
    if (shape) {
      problems.push({ key, kind: 'malformed', severity: 'error', detail: shape });
      continue;
    }
    if (spec.format && !spec.format.test(value)) {
      const vendors = spec.generate.kind === 'manual' && !opts.strict;
      problems.push({
        key,
        kind: 'malformed',
        severity: vendors ? 'warning' : 'error',
        detail: `${vendors ? 'unexpected format' : 'malformed'}: expected ${spec.format.expected}; got ${[...value].length} characters${vendors ? ' (used as it is; --strict refuses it)' : ''}`,
      });
    }
  }
  return problems;
}

export function shapeProblem(value: string): string | undefined {
  if (/^\s|\s$/.test(value)) return 'malformed: starts or ends with white space (a copy-paste slip?)';
  if (hasControlCharacter(value)) return 'malformed: contains a control character such as a newline or tab';
  return undefined;
}

/** Splits problems into what stops a command and what it only warns about. */
export function splitProblems(problems: readonly SecretProblem[]): {
  errors: SecretProblem[];
  warnings: SecretProblem[];
} {
  return {
    errors: problems.filter((p) => p.severity === 'error'),
    warnings: problems.filter((p) => p.severity === 'warning'),
  };
}

export function formatProblems(problems: readonly SecretProblem[]): string {
  return problems.map((p) => `  - ${p.key}: ${p.detail}`).join('\n');
}
