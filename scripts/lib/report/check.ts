/**
 * `secrets check`: a table of every key the chosen runtime backend's consumers read: present, length,
 * format, who needs it; never a value. Without an age key only the key names are checked.
 */
import { EXIT } from '../core/errors.ts';
import { formatTable } from '../core/format.ts';
import type { Output } from '../core/output.ts';
import { LocalExecutor } from '../exec/local.ts';
import { type BackendChoice, describeBackendChoice } from '../kube/backend-choice.ts';
import {
  CONSUMERS,
  consumersFor,
  SECRET_SCHEMA,
  type SecretSpec,
  type SecretUse,
  specOf,
} from '../secrets/schema.ts';
import { loadSecrets } from '../secrets/source.ts';
import { findProblems, type SecretProblem } from '../secrets/validate.ts';

const SPECS = SECRET_SCHEMA as readonly SecretSpec[];
const usesOf = (spec: SecretSpec) => spec.uses as readonly SecretUse[];

/**
 * A key's status column. A problem names itself (a vendor-format mismatch is only a warning); otherwise a
 * present key is "ok", or "present" when only names could be read, and an absent one is "missing" only
 * when a consumer here requires it.
 */
function keyStatus(
  problem: SecretProblem | undefined,
  present: boolean,
  keyless: boolean,
  required: boolean,
): string {
  if (problem) return problem.severity === 'warning' ? 'unexpected format' : problem.kind;
  if (present) return keyless ? 'present' : 'ok';
  return required ? 'missing' : 'optional';
}

export async function secretsCheck(
  out: Output,
  file: string,
  fromEnv: boolean,
  strict: boolean,
  backend: BackendChoice,
): Promise<number> {
  const loaded = await loadSecrets({
    secretsFile: file,
    fromEnv,
    required: [],
    allowKeyless: true,
    executor: new LocalExecutor(),
  });
  for (const warning of loaded.warnings) out.warn(warning);
  const keyless = loaded.kind === 'key-names-only';
  const consumers = consumersFor(backend.id);
  const usedHere = (spec: SecretSpec) => usesOf(spec).filter((u) => consumers.includes(u.consumer));
  const values = keyless ? Object.fromEntries(loaded.present.map((k) => [k, 'x'])) : loaded.values;
  const problems = findProblems(values, consumers, { presenceOnly: keyless, strict });
  out.info(`source  ${loaded.describe}`);
  out.info(`backend ${describeBackendChoice(backend)}\n`);
  const rows = SPECS.filter((spec) => usedHere(spec).length > 0).map((spec) => {
    const value = loaded.values[spec.key];
    const present = keyless ? loaded.present.includes(spec.key) : Boolean(value);
    const problem = problems.find((p) => p.key === spec.key);
    const required = usedHere(spec).some((u) => u.required);
    return {
      key: spec.key,
      present,
      length: !keyless && value ? [...value].length : undefined,
      status: keyStatus(problem, present, keyless, required),
      detail: problem?.detail,
      neededBy: [
        ...new Set(
          usedHere(spec)
            .filter((u) => u.required)
            .map((u) => CONSUMERS[u.consumer].title),
        ),
      ],
    };
  });
  const lines = rows.map((r) => [
    r.key,
    r.status,
    r.length === undefined ? '' : String(r.length),
    r.neededBy.join('; ') || '(optional)',
  ]);
  out.info(formatTable(['key', 'status', 'length', 'needed by'], lines, { rule: false }));
  for (const r of rows.filter((x) => x.detail)) out.info(out.color.red(`\n${r.key}: ${r.detail}`));
  const bad = rows.filter((r) => r.status === 'missing' || r.status === 'malformed');
  out.result({
    ok: bad.length === 0,
    source: { kind: loaded.kind, file: loaded.file },
    backend: backend.id,
    keys: rows,
  });
  if (bad.length > 0) {
    // A missing key the suite can generate needs no editor: `init --fill` adds exactly those.
    const generatable = bad.filter(
      (r) => r.status === 'missing' && specOf(r.key)?.generate.kind !== 'manual',
    );
    const fill = generatable.length
      ? `add ${generatable.map((r) => r.key).join(', ')} with \`node --import tsx scripts/secrets.ts init --fill --secrets-file ${file}\` (generates only the missing keys); `
      : '';
    out.error(
      `${bad.length} key(s) missing or malformed`,
      `${fill}set the others with \`node --import tsx scripts/secrets.ts set KEY --secrets-file ${file}\` (the value from stdin or a prompt; just secrets-set KEY) or edit the file: \`node --import tsx scripts/secrets.ts edit --secrets-file ${file}\` (just secrets-edit)`,
    );
    return EXIT.badInput;
  }
  out.info(
    out.color.green(
      `\nall required keys present${keyless ? ' (names only: no age key to check values)' : ' and well-formed'}`,
    ),
  );
  return EXIT.ok;
}
