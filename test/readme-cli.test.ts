/**
 * The README and the commands agree: every command the README shows (`just RECIPE …` and
 * `node --import tsx scripts/X.ts …` or `node bin/run.mjs scripts/X.ts …`, in code blocks and in inline code) names a recipe the justfile has
 * and a script that exists, and every option shown with it, and every option the recipe itself passes,
 * is one that command's own parser takes and its --help lists (for `just rehearse…`, also the product
 * command it runs with --local). Each command is reached in-process through
 * the command its script exports (the same main its entry point runs), with `--help` last, so the parser
 * judges each option and nothing runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Command } from '../scripts/lib/core/cli.ts';
import { rehearsedCommand, splitRehearsal } from '../scripts/lib/sandbox/rehearse.ts';
import { capturedOutput } from './helpers/bifrost-fixture.ts';
import { PROJECT_ROOT } from './helpers/run-cli.ts';

const README = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
const JUSTFILE = readFileSync(join(PROJECT_ROOT, 'justfile'), 'utf8');

/** One command as the README shows it. */
interface Shown {
  /** The README line it is on (1-based). */
  line: number;
  text: string;
  /** `just`'s recipe, or undefined for a `node --import tsx scripts/X.ts` invocation. */
  recipe?: string;
  words: string[];
}

/** What a recipe runs: its script and the words its body passes it (its parameters' places left out). */
interface RecipeCommand {
  script: string;
  words: string[];
}

/** Each recipe of the justfile and what it runs (undefined: not a project script, like `test`). */
function justfileRecipes(): Map<string, RecipeCommand | undefined> {
  const recipes = new Map<string, RecipeCommand | undefined>();
  const lines = JUSTFILE.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const head = /^@?([a-z][\w-]*)(?: [^:=]*(?:=[^:]*)?)?:(?!=)/.exec(lines[i] as string);
    if (!head) continue;
    const body: string[] = [];
    while (lines[i + 1]?.startsWith('    ')) body.push((lines[++i] as string).trim());
    const run = /scripts\/([\w-]+\.ts)(.*)$/.exec(body.join(' '));
    const words = (run?.[2] ?? '').split(/\s+/).filter((w) => w && !/^"\$|^\{\{/.test(w));
    recipes.set(head[1] as string, run ? { script: run[1] as string, words } : undefined);
  }
  return recipes;
}

/** The option words among `words`, as flags: `--dry-run[=client|server]` is --dry-run, `[--host` is --host. */
function optionsIn(words: readonly string[]): string[] {
  return words
    .map((w) => w.replace(/^[[(]+/, ''))
    .map((w) => /^(--[a-z][a-z0-9-]*|-[a-zA-Z])(?=$|[=[\]|),])/.exec(w)?.[1])
    .filter((w): w is string => w !== undefined);
}

/** Where a command's words end: a shell operator, a redirection, or a comment. */
const END = /\s(?:&&|\|\||;|\||>|<|#)(?:\s|$).*$|[;)]$/;

/** The invocations in one piece of text (a code line, or an inline code span). */
function invocationsIn(text: string, line: number): Shown[] {
  const shown: Shown[] = [];
  // scripts/NAME.ts (upper case) is a placeholder, not a script.
  for (const m of text.matchAll(
    /(?:^|[\s|;&(])(just|node (?:--import tsx|bin\/run\.mjs) scripts\/[a-z][\w-]*\.ts)(?=\s|$)/g,
  )) {
    const start = (m.index ?? 0) + m[0].length - (m[1] as string).length;
    const rest = text.slice(start + (m[1] as string).length).replace(END, '');
    const words = rest.split(/\s+/).filter(Boolean);
    const part = { line, text: text.slice(start).replace(END, '').trim() };
    if (m[1] === 'just') {
      // `just` alone and `just --list` name no recipe.
      if (!words[0] || !/^[a-z][\w-]*$/.test(words[0])) continue;
      shown.push({ ...part, recipe: words[0], words: words.slice(1) });
    } else {
      shown.push({ ...part, words: [(m[1] as string).replace(/^.* scripts\//, ''), ...words] });
    }
  }
  return shown;
}

/**
 * Every `just …`, `node --import tsx scripts/….ts …` and `node bin/run.mjs scripts/….ts …` in the README's code blocks and inline code. An
 * option in prose (inline code such as `--setup-plan`) is documented for the command its paragraph is
 * about: the one the paragraph's first inline code shows (`just runtime-setup --context homelab`
 * configures …). A paragraph that starts otherwise may name other tools' flags (compose's
 * `--force-recreate`), so its options are left alone. A list item or a table row is a paragraph.
 */
function shownCommands(): Shown[] {
  const shown: Shown[] = [];
  let fenced = false;
  let paragraph: { line: number; span: string }[] = [];
  const endParagraph = () => {
    const [lead, ...rest] = paragraph.map(({ line, span }) => ({ span, calls: invocationsIn(span, line) }));
    shown.push(...(lead?.calls ?? []), ...rest.flatMap((s) => s.calls));
    const owner = lead?.calls[0];
    for (const s of rest)
      if (owner && s.calls.length === 0 && /^-/.test(s.span)) owner.words.push(...s.span.split(/\s+/));
    paragraph = [];
  };
  README.split('\n').forEach((raw, i) => {
    if (raw.startsWith('```')) {
      endParagraph();
      fenced = !fenced;
    } else if (fenced) {
      shown.push(...invocationsIn(raw.replace(/\s+#\s.*$/, ''), i + 1));
    } else {
      if (raw.trim() === '' || /^(#|\||\s*(?:[-*]|\d+\.)\s)/.test(raw)) endParagraph();
      for (const m of raw.matchAll(/`([^`]+)`/g)) paragraph.push({ line: i + 1, span: m[1] as string });
    }
  });
  endParagraph();
  return shown;
}

const modules = new Map<string, Command>();
async function commandOf(script: string): Promise<Command> {
  let command = modules.get(script);
  if (!command) {
    command = ((await import(/* @vite-ignore */ `../scripts/${script}`)) as { command: Command }).command;
    modules.set(script, command);
  }
  return command;
}

/** Whether `command` (its subcommand `sub`) takes `flag`: undefined when it does, else why not. */
async function refusal(command: Command, sub: string | undefined, flag: string): Promise<string | undefined> {
  const pre = sub ? [sub] : [];
  const attempt = async (argv: string[]) => {
    const captured = capturedOutput();
    try {
      const code = await command.main([...pre, ...argv, '--help'], captured.out);
      return code === 0 ? { help: captured.text() } : { error: `exit ${code}: ${captured.text()}` };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  // A string option needs its value (a bare --name before --help is refused as "needs a value").
  let r = await attempt([flag]);
  if (r.error && /needs a value/.test(r.error)) r = await attempt([`${flag}=x`]);
  if (r.error) return r.error;
  // Listed in its Options: an option line's own flag (`  --tail N`, `  -y, --yes`), or one named beside it
  // as the same (`; --file F is the same`, `-y/--yes`); a mention in another option's words is not enough.
  const options = (r.help ?? '').slice((r.help ?? '').indexOf('\nOptions:'));
  const listed = new RegExp(`(^ +(?:-\\w, )?|; |, |/)${flag}(?![\\w-])`, 'm');
  return listed.test(options) ? undefined : 'the parser takes it but its --help does not list it';
}

/**
 * The commands that parse `words` given to `script`: the script's own command, and for rehearse.ts also the
 * product command it runs (the words after its command word are that command's, --local added).
 */
function parsersOf(script: string, words: string[]): { script: string; words: string[] }[] {
  if (script !== 'rehearse.ts') return [{ script, words }];
  const { own, words: rehearsed } = splitRehearsal(words);
  const parsers = [{ script, words: own }];
  // A placeholder (`just rehearse bifrost COMMAND`, the table's `+ARGS`) names no command to check.
  const named = rehearsed.slice(0, 2).every((w) => !/^[*+]?[A-Z][A-Z_]*$/.test(w));
  if (rehearsed.length > 0 && rehearsed[0] !== 'clean' && named) {
    const { script: runs, args } = rehearsedCommand(rehearsed, '/rehearsal/bifrost');
    parsers.push({ script: runs, words: args });
  }
  return parsers;
}

describe('the README shows only commands and options that exist', () => {
  const shown = shownCommands();
  const recipes = justfileRecipes();

  it('finds the commands of every section', () => {
    const recipesShown = new Set(shown.flatMap((s) => (s.recipe ? [s.recipe] : [])));
    for (const r of [
      'secrets-init',
      'create-secrets',
      'bifrost-up',
      'runtime-setup',
      'bifrost-token',
      'sops-decrypt',
    ])
      expect(recipesShown).toContain(r);
    expect(shown.filter((s) => !s.recipe).map((s) => s.words[0])).toEqual(
      expect.arrayContaining(['bifrost-bootstrap.ts', 'sops.ts', 'secrets.ts']),
    );
    expect(shown.filter((s) => optionsIn(s.words).length > 0).length).toBeGreaterThanOrEqual(15);
  });

  it("each option shown is one its command's parser takes and its --help lists", async () => {
    const problems: string[] = [];
    for (const s of shown) {
      const where = `README.md:${s.line} \`${s.text}\``;
      let script: string;
      let words: string[];
      if (s.recipe) {
        if (!recipes.has(s.recipe)) {
          problems.push(`${where}: the justfile has no recipe ${s.recipe}`);
          continue;
        }
        const run = recipes.get(s.recipe);
        if (!run) continue; // test, check, bench: not a project script's options
        script = run.script;
        words = [...run.words, ...s.words];
      } else {
        script = s.words[0] as string;
        words = s.words.slice(1);
        if (!existsSync(join(PROJECT_ROOT, 'scripts', script))) {
          problems.push(`${where}: there is no scripts/${script}`);
          continue;
        }
      }
      let parsers: { script: string; words: string[] }[];
      try {
        parsers = parsersOf(script, words);
      } catch (err) {
        problems.push(`${where}: ${(err as Error).message}`);
        continue;
      }
      for (const p of parsers) {
        // A group's subcommand is its first word; a single command ignores a positional before --help.
        const sub = p.words[0]?.startsWith('-') ? undefined : p.words[0];
        const command = await commandOf(p.script);
        for (const flag of new Set(optionsIn(p.words))) {
          const why = await refusal(command, sub, flag);
          if (why) problems.push(`${where}: ${flag} (${p.script}${sub ? ` ${sub}` : ''}): ${why}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});
