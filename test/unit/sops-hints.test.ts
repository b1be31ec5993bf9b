/**
 * What an operator is told to do about the SOPS file points at commands that exist and need no sops
 * binary: secrets/README.md and the refusal hints name the suite's own recipes, and sops only as an
 * alternative where it is one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { editByHand, layoutHint, notSopsHint, restoreHint } from '../../scripts/lib/secrets/sops/hints.ts';
import { PROJECT_ROOT } from '../helpers/run-cli.ts';

const read = (path: string) => readFileSync(join(PROJECT_ROOT, path), 'utf8');
const RECIPES = new Set(
  [...read('justfile').matchAll(/^([a-z][a-z0-9-]*)(?: [^:\n]*)?:(?!=)/gm)].map((m) => m[1] as string),
);
const namedRecipes = (text: string) => [...text.matchAll(/\bjust ([a-z][a-z0-9-]*)/g)].map((m) => m[1]);

describe('the way to change the SOPS file', () => {
  const FILE = 'secrets/bootstrap.sops.yaml';
  const hints = [restoreHint(FILE), notSopsHint(FILE), editByHand(FILE), layoutHint(FILE)];

  it('secrets/README.md names the suite commands, sops only as an alternative', () => {
    const readme = read('secrets/README.md');
    expect(readme).toContain('`just secrets-set KEY`');
    expect(readme).toContain('`just secrets-edit`');
    expect(readme).not.toMatch(/Edit with `sops/);
    expect(readme).toMatch(/`sops secrets\/bootstrap\.sops\.yaml` works too where sops is installed/);
  });

  it('every just recipe named there and in the hints exists', () => {
    const named = [...namedRecipes(read('secrets/README.md')), ...hints.flatMap(namedRecipes)];
    expect(named.length).toBeGreaterThan(4);
    for (const recipe of named) expect(RECIPES, `just ${recipe}`).toContain(recipe);
  });

  it('a tampered file is restored from git and changed with the suite, never "re-encrypted with sops"', () => {
    expect(restoreHint(FILE)).toMatch(
      /^restore it from git .*git checkout -- secrets\/bootstrap\.sops\.yaml/,
    );
    expect(restoreHint(FILE)).toMatch(/just secrets-set KEY, just secrets-edit/);
    for (const hint of hints) expect(hint).not.toMatch(/\b(re-?encrypt|edit) it with sops\b|\buse sops\b/);
  });
});
