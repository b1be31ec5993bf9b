import { InputError } from '../../core/errors.ts';
import type { LeafPlace } from './tree.ts';

/** sops's encryption rules; a file may carry at most one of them. */
export interface RuleSet {
  unencryptedSuffix?: string;
  encryptedSuffix?: string;
  unencryptedRegex?: string;
  encryptedRegex?: string;
  unencryptedCommentRegex?: string;
  encryptedCommentRegex?: string;
}

const DEFAULT_UNENCRYPTED_SUFFIX = '_unencrypted';

export type ShouldEncrypt = (place: LeafPlace, isComment: boolean) => boolean;

/** Each rule's name in a file's metadata. */
export const RULE_FIELDS: Record<keyof RuleSet, string> = {
  unencryptedSuffix: 'unencrypted_suffix',
  encryptedSuffix: 'encrypted_suffix',
  unencryptedRegex: 'unencrypted_regex',
  encryptedRegex: 'encrypted_regex',
  unencryptedCommentRegex: 'unencrypted_comment_regex',
  encryptedCommentRegex: 'encrypted_comment_regex',
};

/**
 * A Go RE2 pattern as a JS RegExp. RE2 has no look-around or back-references and writes flags
 * as a `(?i)` prefix; anything JS would read differently is refused rather than guessed.
 */
function compileRe2(pattern: string, field: string, where: string): RegExp {
  let source = pattern;
  let flags = '';
  const prefix = /^\(\?([ims]+)\)/.exec(source);
  if (prefix) {
    flags = [...new Set(prefix[1])].join('');
    source = source.slice(prefix[0].length);
  }
  source = source.replaceAll('(?P<', '(?<').replaceAll('\\A', '^').replaceAll('\\z', '$');
  if (/\(\?[=!]|\(\?<[=!]|\\[1-9]|\\k<|\(\?[a-zA-Z-]+[:)]|\[\[:/.test(source)) {
    throw new InputError(
      `${where}: sops.${field} uses regex syntax the native decryptor cannot match like Go`,
      'install the sops binary for this file',
    );
  }
  // RE2 matches code points, as JS does with `u`; some patterns RE2 accepts (`\-` outside a
  // class) are only valid without it.
  for (const extra of ['u', '']) {
    try {
      return new RegExp(source, flags + extra);
    } catch {
      // try the next flag set
    }
  }
  throw new InputError(`${where}: sops.${field} is not a valid regular expression`);
}

/**
 * sops's `Tree.shouldBeEncrypted`: starts from "encrypt", then applies the one rule the file has
 * (`unencrypted_suffix: _unencrypted` when it names none). Suffixes and regexes look at each path
 * element, never the joined path; comment regexes at the comments before the item.
 */
export function compileRules(rules: RuleSet, where: string): ShouldEncrypt {
  const set = (Object.keys(RULE_FIELDS) as (keyof RuleSet)[]).filter((k) => rules[k]);
  if (set.length > 1) {
    throw new InputError(
      `${where}: the sops metadata sets ${set.map((k) => RULE_FIELDS[k]).join(' and ')}; sops allows only one`,
      'restore the file from version control; it was edited outside sops',
    );
  }
  const [name] = set;
  const value = name ? (rules[name] as string) : DEFAULT_UNENCRYPTED_SUFFIX;
  switch (name ?? 'unencryptedSuffix') {
    case 'unencryptedSuffix':
      return ({ path }) => !path.some((p) => p.endsWith(value));
    case 'encryptedSuffix':
      return ({ path }) => path.some((p) => p.endsWith(value));
    case 'unencryptedRegex': {
      const re = compileRe2(value, 'unencrypted_regex', where);
      return ({ path }) => !path.some((p) => re.test(p));
    }
    case 'encryptedRegex': {
      const re = compileRe2(value, 'encrypted_regex', where);
      return ({ path }) => path.some((p) => re.test(p));
    }
    case 'unencryptedCommentRegex': {
      const re = compileRe2(value, 'unencrypted_comment_regex', where);
      return ({ comments }) => !comments.some((level) => level.some((c) => re.test(c)));
    }
    default: {
      const re = compileRe2(value, 'encrypted_comment_regex', where);
      // The comment line that switches encryption on stays readable itself: skip the newest one.
      return ({ comments }, isComment) =>
        comments.some((level, i) =>
          level.some(
            (c, j) => !(isComment && i === comments.length - 1 && j === level.length - 1) && re.test(c),
          ),
        );
    }
  }
}

/** The rule as it is written into a file's metadata (snake_case name and value). */
export function ruleField(rules: RuleSet): [string, string] {
  const set = (Object.keys(RULE_FIELDS) as (keyof RuleSet)[]).filter((k) => rules[k]);
  const [name] = set;
  return name
    ? [RULE_FIELDS[name], rules[name] as string]
    : ['unencrypted_suffix', DEFAULT_UNENCRYPTED_SUFFIX];
}
