import { redactor } from './redact.ts';

/**
 * What a child process (kubectl and its credential plugins, docker, the editor, the sops binary, a key
 * command) inherits from this process's environment: all of it except
 * - every name the secrets layer withholds (the schema's keys: under `--from-env` or `sops exec-env` they
 *   hold the values themselves), registered where the names are defined;
 * - the age key sources sops reads (`age/keysource.go`): the key itself, or the file or command that
 *   yields it. Only the sops binary needs them, and it asks for them by name (`Command.passEnv`);
 * - every variable whose value holds a secret the redactor knows, under whatever name (a value copied
 *   into another variable, a connection string built from one).
 * A child that must receive a value gets that one only, named in its command (README "Security model").
 */
export const AGE_KEY_VARIABLES = [
  'SOPS_AGE_KEY',
  'SOPS_AGE_KEY_FILE',
  'SOPS_AGE_KEY_CMD',
  'SOPS_AGE_SSH_PRIVATE_KEY_FILE',
  'SOPS_AGE_SSH_PRIVATE_KEY_CMD',
] as const;

const withheld = new Set<string>(AGE_KEY_VARIABLES);

/** Names no child inherits from this environment from now on. */
export function withholdFromChildren(names: Iterable<string>): void {
  for (const name of names) withheld.add(name);
}

/**
 * The environment for one child: `base` less what is withheld, then `passEnv` (withheld names this child
 * needs, taken from `base`) and `extra` (its own variables) on top.
 */
export function childEnv(
  opts: {
    base?: NodeJS.ProcessEnv;
    passEnv?: readonly string[];
    extra?: Readonly<Record<string, string>>;
  } = {},
): NodeJS.ProcessEnv {
  const base = opts.base ?? process.env;
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || withheld.has(name) || redactor.holds(value)) continue;
    out[name] = value;
  }
  for (const name of opts.passEnv ?? []) if (base[name] !== undefined) out[name] = base[name];
  return { ...out, ...opts.extra };
}
