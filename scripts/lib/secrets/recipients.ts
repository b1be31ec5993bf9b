/**
 * `secrets recipients [add|remove AGE1...]`: who can open the SOPS file.
 *
 * - list: the file's age recipients (read without any key), which one is yours, and the `.sops.yaml`
 *   creation rule's recipients when a rule names the file.
 * - add: the data key wrapped for one more recipient; no value changes (`sops updatekeys`).
 * - remove: a new data key, every value re-encrypted under it and wrapped for the remaining recipients,
 *   so the removed identity can decrypt nothing in the new file (`sops updatekeys` + `sops -r`). The
 *   values themselves are still known to whoever held that identity: rotating them is said.
 *
 * A creation rule that names the file is updated to the new list, so the next sops run agrees.
 */
import { Encrypter, identityToRecipient } from 'age-encryption';
import { EXIT, InputError } from '../core/errors.ts';
import { formatTable } from '../core/format.ts';
import type { Output } from '../core/output.ts';
import {
  commitSops,
  loadAgeIdentities,
  openSops,
  readAgeRecipients,
  readSecretsFile,
  requireYaml,
  rewriteSops,
} from './sops/index.ts';
import { type CreationRule, creationRuleFor, updateRuleRecipients } from './sops-config.ts';

export interface RecipientRow {
  recipient: string;
  /** An age identity found on this machine opens it. */
  yours: boolean;
  /** In the `.sops.yaml` rule that names the file (undefined: no such rule). */
  inRule?: boolean;
}

export interface RecipientsList {
  file: string;
  rows: RecipientRow[];
  rule?: CreationRule;
  /** In the rule but not in the file: `recipients add` each (what `sops updatekeys` would do). */
  missing: string[];
}

export interface RecipientsChange {
  file: string;
  action: 'added' | 'removed' | 'unchanged';
  recipient: string;
  recipients: string[];
  /** The data key was replaced and every value re-encrypted. */
  dataKeyRotated: boolean;
  /** The `.sops.yaml` updated, if one was. */
  ruleUpdated?: string;
  warnings: string[];
}

const AGE_RECIPIENT = /^age1[0-9a-z]{20,}$/;

/** A recipient age can encrypt to, or InputError naming the problem (never echoing a secret key). */
export function checkRecipient(recipient: string): void {
  // Case-insensitive: a secret key typed in lower case must not be echoed back either.
  if (/^age-secret-key-/i.test(recipient))
    throw new InputError(
      'that is an age SECRET key, not a recipient; it has not been stored anywhere',
      'give the public key: age-keygen -y keys.txt prints it (age1…)',
    );
  const encrypter = new Encrypter();
  try {
    if (!AGE_RECIPIENT.test(recipient)) throw new Error('not age1…');
    encrypter.addRecipient(recipient);
  } catch {
    throw new InputError(
      `"${recipient.slice(0, 80)}" is not an age recipient`,
      'age1… (age-keygen -y keys.txt prints one)',
    );
  }
}

async function fileRecipients(file: string): Promise<string[]> {
  requireYaml(file, 'recipients works on', `sops updatekeys ${file}`);
  const { text } = await readSecretsFile(file);
  return readAgeRecipients(text, file);
}

/** The public keys of the age identities this machine has (SOPS_AGE_KEY, key files…). */
async function ownRecipients(env: NodeJS.ProcessEnv): Promise<Set<string>> {
  try {
    const { identities } = await loadAgeIdentities(env);
    return new Set(await Promise.all(identities.map((i) => identityToRecipient(i).catch(() => ''))));
  } catch {
    return new Set();
  }
}

export async function listRecipients(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RecipientsList> {
  const recipients = await fileRecipients(file);
  const own = await ownRecipients(env);
  const rule = creationRuleFor(file);
  return {
    file,
    rows: recipients.map((recipient) => ({
      recipient,
      yours: own.has(recipient),
      ...(rule ? { inRule: rule.recipients.includes(recipient) } : {}),
    })),
    ...(rule ? { rule } : {}),
    missing: rule ? rule.recipients.filter((r) => !recipients.includes(r)) : [],
  };
}

async function syncRule(file: string, recipients: readonly string[]): Promise<string | undefined> {
  const rule = creationRuleFor(file);
  if (!rule) return undefined;
  if (rule.recipients.length === recipients.length && rule.recipients.every((r) => recipients.includes(r)))
    return undefined;
  await updateRuleRecipients(rule, recipients);
  return rule.config;
}

export async function changeRecipients(opts: {
  file: string;
  action: 'add' | 'remove';
  recipient: string;
  env?: NodeJS.ProcessEnv;
}): Promise<RecipientsChange> {
  const { file, recipient } = opts;
  checkRecipient(recipient);
  const current = await fileRecipients(file);
  const present = current.includes(recipient);
  const unchanged = (opts.action === 'add') === present;
  const next = opts.action === 'add' ? [...current, recipient] : current.filter((r) => r !== recipient);
  if (!unchanged && next.length === 0)
    throw new InputError(
      `${recipient} is the file's only recipient; removing it would leave nobody able to open the file`,
      'add the new recipient first (recipients add AGE1...), then remove this one',
    );
  if (unchanged) {
    // The file already says so; the rule may still lag behind (an earlier run stopped between the two).
    const ruleUpdated = await syncRule(file, current);
    return {
      file,
      action: 'unchanged',
      recipient,
      recipients: current,
      dataKeyRotated: false,
      ...(ruleUpdated ? { ruleUpdated } : {}),
      warnings: [],
    };
  }
  const opened = await openSops(file, opts.env ?? process.env);
  const rotate = opts.action === 'remove';
  const written = await rewriteSops(opened, opened.branch, {
    recipients: next,
    rotateDataKey: rotate,
  });
  await commitSops(opened, written.text);
  const ruleUpdated = await syncRule(file, next);
  const warnings = [...opened.warnings];
  if (written.droppedComments)
    warnings.push(
      `${written.droppedComments} comment line(s) were dropped: they were encrypted with the old data key`,
    );
  return {
    file,
    action: rotate ? 'removed' : 'added',
    recipient,
    recipients: next,
    dataKeyRotated: rotate,
    ...(ruleUpdated ? { ruleUpdated } : {}),
    warnings,
  };
}

/**
 * `secrets recipients [add|remove AGE1...]`: without an action the file's recipients and its creation
 * rule's; with one, the change and what it means (`usage` is how the command is started, for the hints).
 */
export async function secretsRecipients(
  file: string,
  positionals: readonly string[],
  usage: string,
  out: Output,
): Promise<number> {
  const [action, recipient] = positionals;
  if (action === undefined) {
    const list = await listRecipients(file);
    const rows = list.rows.map((r) => [
      r.recipient,
      r.yours ? 'yours' : '',
      r.inRule === undefined ? '' : r.inRule ? 'in rule' : 'not in rule',
    ]);
    out.data(formatTable(['recipient', 'key here', '.sops.yaml'], rows, { rule: false }));
    if (list.rule) out.info(`creation rule ${list.rule.index + 1} of ${list.rule.config} names ${file}`);
    for (const r of list.missing)
      out.warn(`${r} is in ${list.rule?.config} but not in the file: add it with \`recipients add ${r}\``);
    out.result({ ok: true, ...list });
    return EXIT.ok;
  }
  if ((action !== 'add' && action !== 'remove') || recipient === undefined)
    throw new InputError(
      `recipients ${action}: expected add AGE1... or remove AGE1...`,
      `see ${usage} recipients --help`,
    );
  const r = await changeRecipients({ file, action, recipient });
  for (const warning of r.warnings) out.warn(warning);
  if (r.action === 'unchanged')
    out.info(
      `unchanged  ${recipient} is ${action === 'add' ? 'already' : 'not'} a recipient of ${file}; nothing written`,
    );
  else
    out.info(
      out.color.green(
        `${r.action.padEnd(10)} ${recipient}: ${file} is encrypted to ${r.recipients.length} recipient(s)${r.dataKeyRotated ? '; new data key, every value re-encrypted' : ''}`,
      ),
    );
  if (r.ruleUpdated) out.info(`updated    ${r.ruleUpdated} (its creation rule for ${file})`);
  if (r.action === 'removed')
    out.warn(
      `the removed identity cannot open the new file, but older copies (git history) still hold values it could read: rotate them (${usage} rotate KEY..., and set the hand-made ones anew)`,
    );
  out.result({ ok: true, ...r });
  return EXIT.ok;
}
