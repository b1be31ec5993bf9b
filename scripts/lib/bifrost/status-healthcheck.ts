/**
 * Whether the NetBird agent's healthcheck tells a connected agent from one that is not. At the pinned
 * client `netbird status` exits 0 whenever its daemon answers, logged out included, so only what the
 * healthcheck makes of the output says more. Images cannot be run here: the healthcheck line is read as
 * the image's sh would run it, over the pinned client's outputs in each state (NETBIRD_CLIENT_STATUS), and
 * must pass in the connected state alone. The lines it reads are the ones such a healthcheck is made of:
 * `netbird status` (with or without --json) piped into busybox grep, joined by `&&`, `||`, `;`, and
 * `exit`, `true`, `false`; anything else is a line it cannot tell, which is a problem of its own.
 */
import { NETBIRD_CLIENT_STATUS } from './pinned-images.ts';

type State = (typeof NETBIRD_CLIENT_STATUS.states)[number];

/** Why the healthcheck does not pass exactly when the agent is connected; undefined when it does. */
export function agentHealthcheckProblem(test: unknown): string | undefined {
  const facts = NETBIRD_CLIENT_STATUS;
  let outcomes: { state: State; passes: boolean }[];
  try {
    const run = healthcheckRunner(test);
    outcomes = facts.states.map((state) => ({ state, passes: run(state) === 0 }));
  } catch (err) {
    return `check-bundle cannot tell whether the healthcheck fails while the agent is not connected to management: ${(err as Error).message}`;
  }
  for (const { state, passes } of outcomes) {
    if (passes === state.healthy) continue;
    return state.healthy
      ? `the healthcheck fails even when the agent is ${state.state}, so it never turns healthy`
      : `the healthcheck passes while the agent is ${state.state}: at ${facts.tag} \`netbird status\` exits 0 whenever the daemon answers, so it must fail unless ${facts.field} is true`;
  }
  return undefined;
}

/** The healthcheck as a function of the client's state: its exit code. */
function healthcheckRunner(test: unknown): (state: State) => number {
  const [kind, ...rest] =
    typeof test === 'string' ? ['CMD-SHELL', test] : Array.isArray(test) ? test.map(String) : [];
  if (kind === 'CMD-SHELL') return shellRunner(rest.join(' '));
  if (kind === 'CMD' && (rest[0] === 'sh' || rest[0] === '/bin/sh') && rest[1] === '-c' && rest[2])
    return shellRunner(rest[2]);
  if (kind === 'CMD' && rest.length > 0) {
    return (state) => runCommand(rest, '', state).exit;
  }
  throw new Error('it has no test command');
}

type Token = { word: string } | { op: '|' | '||' | '&&' | ';' };

/** sh's words and operators, with '…' and "…" quoting (no expansion is read: `$` is refused). */
function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = line.slice(i, i + 2);
    if (two === '||' || two === '&&') {
      tokens.push({ op: two });
      i += 2;
      continue;
    }
    if (c === '|' || c === ';') {
      tokens.push({ op: c });
      i++;
      continue;
    }
    let word = '';
    while (i < line.length && !/[\s|;&]/.test(line[i] as string)) {
      const ch = line[i] as string;
      if (ch === "'" || ch === '"') {
        const end = line.indexOf(ch, i + 1);
        if (end < 0) throw new Error(`an unclosed ${ch} quote`);
        const quoted = line.slice(i + 1, end);
        if (ch === '"' && /[$`\\]/.test(quoted)) throw new Error('a "…" word that sh would expand');
        word += quoted;
        i = end + 1;
      } else if (/[$`\\<>()]/.test(ch)) {
        throw new Error(`\`${ch}\` outside quotes, which this reading of sh does not follow`);
      } else {
        word += ch;
        i++;
      }
    }
    tokens.push({ word });
  }
  return tokens;
}

/** A list of pipelines joined by `&&`, `||` and `;`, run as sh runs them; `exit N` ends the line. */
function shellRunner(line: string): (state: State) => number {
  const tokens = tokenize(line);
  const pipelines: { joiner: '&&' | '||' | ';' | undefined; commands: string[][] }[] = [];
  let joiner: '&&' | '||' | ';' | undefined;
  let commands: string[][] = [[]];
  const close = (next: '&&' | '||' | ';' | undefined) => {
    if (commands.some((c) => c.length === 0)) throw new Error('an empty command');
    pipelines.push({ joiner, commands });
    joiner = next;
    commands = [[]];
  };
  for (const t of tokens) {
    if ('word' in t) (commands[commands.length - 1] as string[]).push(t.word);
    else if (t.op === '|') commands.push([]);
    else close(t.op);
  }
  close(undefined);
  return (state) => {
    let status = 0;
    for (const p of pipelines) {
      if ((p.joiner === '&&' && status !== 0) || (p.joiner === '||' && status === 0)) continue;
      let stdin = '';
      for (const argv of p.commands) {
        if (argv[0] === 'exit') return argv[1] === undefined ? status : Number(argv[1]);
        const r = runCommand(argv, stdin, state);
        stdin = r.stdout;
        status = r.exit;
      }
    }
    return status;
  };
}

/** One command of the line: the pinned client's `netbird status`, busybox grep, true or false. */
function runCommand(argv: string[], stdin: string, state: State): { exit: number; stdout: string } {
  const [name, ...args] = argv;
  if (name === 'true' || name === 'false') return { exit: name === 'true' ? 0 : 1, stdout: '' };
  if (name === 'grep') return grep(args, stdin);
  if (name === 'netbird' && args[0] === 'status') {
    const flags = args.slice(1);
    if (flags.some((f) => !/^--?[a-z]/.test(f) || /^(-d|--detail|--yaml|--ipv4)$/.test(f))) {
      throw new Error(
        `\`netbird ${args.join(' ')}\`: only \`netbird status\` and \`netbird status --json\` are read`,
      );
    }
    return { exit: state.exitCode, stdout: flags.includes('--json') ? state.json : state.text };
  }
  throw new Error(`\`${argv.join(' ')}\` is not \`netbird status\`, grep, true, false or exit`);
}

/** busybox grep over `stdin`: -q -s -E -F -G -i -v -x and -e PATTERN (exit 0 when a line is selected). */
function grep(args: string[], stdin: string): { exit: number; stdout: string } {
  const opts = new Set<string>();
  const patterns: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    for (const [j, o] of [...a.slice(1)].entries()) {
      if (o === 'e') {
        const rest = a.slice(j + 2);
        const pattern = rest || args[++i];
        if (pattern === undefined) throw new Error('grep -e without a pattern');
        patterns.push(pattern);
        break;
      }
      if (!'qsEFGivx'.includes(o)) throw new Error(`grep -${o}, which this reading does not follow`);
      opts.add(o);
    }
  }
  if (patterns.length === 0) {
    if (args[i] === undefined) throw new Error('grep without a pattern');
    patterns.push(args[i++] as string);
  }
  if (i < args.length) throw new Error('grep reading a file, not the output of `netbird status`');
  const flags = opts.has('i') ? 'i' : '';
  const regexes = patterns.map((p) => {
    const source = opts.has('F') ? p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : toJsRegex(p, opts.has('E'));
    return new RegExp(opts.has('x') ? `^(?:${source})$` : source, flags);
  });
  const lines = stdin === '' ? [] : stdin.replace(/\n$/, '').split('\n');
  const selected = lines.filter((l) => regexes.some((r) => r.test(l)) !== opts.has('v'));
  return {
    exit: selected.length > 0 ? 0 : 1,
    stdout: opts.has('q') ? '' : selected.map((l) => `${l}\n`).join(''),
  };
}

/**
 * A POSIX basic (or, with `extended`, extended) regular expression as a JavaScript one. In a BRE `+ ? ( ) { } |`
 * are literal and their `\`-escaped forms are the operators (GNU and busybox); a bracket expression
 * takes `\` literally. Character classes like [[:alpha:]] are refused rather than guessed.
 */
function toJsRegex(pattern: string, extended: boolean): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j++;
      if (j >= pattern.length) throw new Error(`an unclosed [ in the grep pattern ${pattern}`);
      const body = pattern.slice(i + 1, j);
      if (body.includes('[:') || body.includes('[=') || body.includes('[.'))
        throw new Error(`a POSIX class in the grep pattern ${pattern}`);
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = j;
    } else if (c === '\\') {
      const n = pattern[++i];
      if (n === undefined) throw new Error(`a trailing \\ in the grep pattern ${pattern}`);
      out += !extended && '+?(){}|'.includes(n) ? n : `\\${n}`;
    } else if (!extended && '+?(){}|'.includes(c)) {
      out += `\\${c}`;
    } else {
      out += c;
    }
  }
  return out;
}
