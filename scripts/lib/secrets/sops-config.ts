/**
 * `.sops.yaml` creation rules, as sops reads them: the first `.sops.yaml` from the working directory
 * upwards; the first rule whose `path_regex` matches the file's path relative to that directory (a rule
 * without one matches every file); its `age` recipients, a comma-separated string or a list. The suite
 * follows the rule (init encrypts to it) and keeps it true (recipients add/remove update the rule that
 * names the file), editing only that rule's `age` and keeping the rest of the file, comments included.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { isMap, isSeq, parseDocument, Scalar, YAMLSeq } from 'yaml';
import { InputError } from '../core/errors.ts';
import { readBoundedTextSync } from '../core/read-bounded.ts';
import { writeLocalFileAtomic } from '../exec/local.ts';

export const SOPS_CONFIG = '.sops.yaml';
// sops's FindConfigFile gives up after this many parent directories.
const MAX_DEPTH = 100;

export interface CreationRule {
  /** The `.sops.yaml` it is in. */
  config: string;
  /** Its place in `creation_rules`. */
  index: number;
  pathRegex?: string;
  /** The rule's age recipients, in its order. */
  recipients: string[];
}

/** The `.sops.yaml` sops would use from `cwd`, or undefined. */
export function findSopsConfig(cwd = process.cwd()): string | undefined {
  let dir = resolve(cwd);
  for (let i = 0; i < MAX_DEPTH; i++) {
    const candidate = join(dir, SOPS_CONFIG);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
  return undefined;
}

function recipientsOf(age: unknown): string[] {
  const list = Array.isArray(age) ? age : typeof age === 'string' ? age.split(',') : [];
  return list.map((r) => String(r).trim()).filter(Boolean);
}

function readRules(config: string): { doc: ReturnType<typeof parseDocument>; rules: unknown[] } {
  const doc = parseDocument(
    readBoundedTextSync(config, {
      what: '',
      kind: 'sopsConfig',
      hint: 'make it a regular file, or move it aside',
    }),
  );
  if (doc.errors.length > 0)
    throw new InputError(
      `${config} is not valid YAML: ${doc.errors[0]?.message}`,
      'fix it, or move it aside',
    );
  const rules = (doc.toJS() as { creation_rules?: unknown } | null)?.creation_rules;
  return { doc, rules: Array.isArray(rules) ? rules : [] };
}

/** The creation rule sops would apply to `file`, or undefined when there is no config or no rule matches. */
export function creationRuleFor(file: string, cwd = process.cwd()): CreationRule | undefined {
  const config = findSopsConfig(cwd);
  if (!config) return undefined;
  const rel = relative(dirname(config), resolve(cwd, file));
  const { rules } = readRules(config);
  for (const [index, rule] of rules.entries()) {
    if (rule === null || typeof rule !== 'object') continue;
    const { path_regex: pathRegex, age } = rule as { path_regex?: unknown; age?: unknown };
    if (pathRegex !== undefined && typeof pathRegex !== 'string') continue;
    let matches = true;
    if (pathRegex) {
      try {
        matches = new RegExp(pathRegex).test(rel);
      } catch {
        throw new InputError(
          `${config}: creation rule ${index + 1} has a path_regex that is not a regular expression`,
        );
      }
    }
    if (matches) return { config, index, ...(pathRegex ? { pathRegex } : {}), recipients: recipientsOf(age) };
  }
  return undefined;
}

/**
 * Sets the `age` recipients of one rule, keeping its form (a comma-separated string, or a list) and every
 * other byte's meaning; the file keeps its mode.
 */
export async function updateRuleRecipients(rule: CreationRule, recipients: readonly string[]): Promise<void> {
  const { doc } = readRules(rule.config);
  const rules = doc.get('creation_rules');
  const node = isSeq(rules) ? rules.items[rule.index] : undefined;
  if (!isMap(node)) throw new InputError(`${rule.config}: creation rule ${rule.index + 1} is not a map`);
  const age = node.get('age', true);
  if (isSeq(age)) {
    const seq = new YAMLSeq();
    seq.items = recipients.map((r) => new Scalar(r));
    node.set('age', seq);
  } else {
    node.set('age', new Scalar(recipients.join(',')));
  }
  const mode = statSync(rule.config).mode & 0o7777;
  await writeLocalFileAtomic(rule.config, doc.toString(), mode, 0o600);
}

/** Rules for a new repository: files under secrets/ encrypted to `recipients`; written only when there are none. */
export async function writeDefaultRules(
  recipients: readonly string[],
  cwd = process.cwd(),
): Promise<string | undefined> {
  const config = join(cwd, SOPS_CONFIG);
  if (existsSync(config)) return undefined;
  const text = `# sops creation rules: files under secrets/ are encrypted to these age recipients.\ncreation_rules:\n  - path_regex: ^secrets/.*\\.sops\\.(yaml|json|env)$\n    age: >-\n      ${recipients.join(',\n      ')}\n`;
  await writeLocalFileAtomic(config, text, 0o644, 0o644);
  return config;
}
