/**
 * One command shape: every entry point parses through scripts/lib/core/cli.ts, so every --help
 * (each subcommand's too) ends with the same exit-code table, a mistyped flag gets a suggestion and
 * exit 2, a negative number is refused by the one number parser, aliases behave like their canonical
 * flags, and bifrost-bootstrap's --dry-run is the real plan run against a recording executor.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { DockerCli } from '../scripts/lib/bifrost/docker.ts';
import { dryRunBootstrap } from '../scripts/lib/bifrost/dry-run.ts';
import { runBifrostBootstrap } from '../scripts/lib/bifrost/engine.ts';
import { BIFROST_PLAN, type PlanStep } from '../scripts/lib/bifrost/plan.ts';
import { type Command, numberFlag, parseCli, suggestFlag } from '../scripts/lib/core/cli.ts';
import { InputError } from '../scripts/lib/core/errors.ts';
import { formatCommand } from '../scripts/lib/exec/executor.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { DockerSimulator } from '../scripts/lib/sandbox/docker-simulator.ts';
import { bifrostSecrets, capturedOutput, makeBundle } from './helpers/bifrost-fixture.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

const env = () => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: tempDir('sf-home-'),
  NO_COLOR: '1',
});

const EXIT_TABLE = /Exit codes:\n {2}0 {4}.+\n {2}1 {4}.+\n {2}2 {4}.+\n.+\n {2}130 {2}interrupted by SIGINT/;

/**
 * Commands issued concurrently have no order of their own: the two pre-flight checks, and the services
 * of one batched `up` (in the order their steps asked). Everything else is compared in order.
 */
/**
 * Commands in a comparable order: the one events stream first (the simulator records a call when it
 * ends, the dry run when it is issued) with its --until bound (the run's deadlines, scaled) left out, the
 * two pre-flight calls sorted, the services of one up sorted.
 */
const settled = (commands: readonly string[]) => {
  const isEvents = (c: string) => c.startsWith('docker events ');
  const events = commands.filter(isEvents).map((c) => c.replace(/ --until=-\d+s$/, ' --until=…'));
  const sorted = commands
    .filter((c) => !isEvents(c))
    .map((c) =>
      c.replace(
        /( up -d --no-deps(?: --force-recreate)?) (.+)$/,
        (_m, head: string, services: string) => `${head} ${services.split(' ').sort().join(' ')}`,
      ),
    );
  return [...events, ...sorted.slice(0, 2).sort(), ...sorted.slice(2)];
};

/** The command groups: each dispatches to subcommands through its own table (defineGroup). */
const GROUPS = ['bifrost.ts', 'secrets.ts', 'sops.ts', 'runtime.ts'];

/**
 * A group's subcommands, read from its dispatch table rather than listed here: given no command, the
 * group refuses naming every command it dispatches to.
 */
async function subcommandsOf(script: string): Promise<string[]> {
  const { command } = (await import(/* @vite-ignore */ `../scripts/${script}`)) as { command: Command };
  const err = await command.main([], capturedOutput().out).catch((e: unknown) => e);
  const listed =
    err instanceof InputError && /^no command given: say which to run \((.+)\)$/.exec(err.message);
  if (!listed) throw new Error(`${script} with no command did not name its commands: ${String(err)}`);
  return (listed[1] as string).split(', ');
}

const SUBCOMMANDS: Record<string, string[]> = Object.fromEntries(
  await Promise.all(GROUPS.map(async (script) => [script, await subcommandsOf(script)])),
);
const SINGLE = [
  'bifrost-bootstrap.ts',
  'provision-bifrost.ts',
  'create-bootstrap-secrets.ts',
  'render-infisical-secrets.ts',
  'render-runtime-secrets.ts',
  'demo.ts',
  'rehearse.ts',
];

/**
 * --help in-process, through the script's exported command (the same main the entry point hands to
 * runMain; every script runs it only as the entry point, so importing one runs nothing). Every script is
 * also spawned once with --help below (the entry point's wiring: exit 0, the text on stdout), so this only
 * skips a node start per help.
 */
async function helpOf(
  script: string,
  argv: string[],
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const { command } = (await import(/* @vite-ignore */ `../scripts/${script}`)) as { command: Command };
  const captured = capturedOutput();
  const exitCode = await command.main(argv, captured.out);
  return { exitCode, stdout: captured.text(), stderr: '' };
}

describe('the scripts and their subcommands', () => {
  it('every script is checked here, and each group names the subcommands its table dispatches to', async () => {
    const scripts = readdirSync(join(PROJECT_ROOT, 'scripts')).filter((n) => n.endsWith('.ts'));
    expect([...SINGLE, ...GROUPS].sort()).toEqual(scripts.sort());
    for (const script of GROUPS) {
      const subs = SUBCOMMANDS[script] ?? [];
      expect(subs.length, `${script}'s subcommands`).toBeGreaterThan(0);
      // The same table answers an unknown command with every name.
      const { command } = (await import(/* @vite-ignore */ `../scripts/${script}`)) as { command: Command };
      const err = await command.main(['no-such-command'], capturedOutput().out).catch((e: unknown) => e);
      expect((err as InputError).hint).toContain(`one of: ${subs.join(', ')} `);
    }
  });
});

describe('every entry has the same guard', () => {
  // Importing a script must define its command and nothing more: it runs only as the main module. One
  // child imports every script with `--help` in its argv, so a script without the guard prints its help.
  it('importing each script prints nothing and exits nothing', async () => {
    const scripts = [...SINGLE, ...GROUPS].sort();
    const urls = scripts.map((s) => pathToFileURL(join(PROJECT_ROOT, 'scripts', s)).href);
    const code = `for (const u of ${JSON.stringify(urls)}) { await import(u); process.stderr.write('imported ' + u.split('/').pop() + '\\n'); }`;
    const child = await execa(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', code, 'x', '--help'],
      {
        env: env(),
        extendEnv: false,
        reject: false,
        cwd: PROJECT_ROOT,
        timeout: 60_000,
      },
    );
    expect(child.stdout).toBe('');
    expect(String(child.stderr).trim().split('\n')).toEqual(scripts.map((s) => `imported ${s}`));
    expect(child.exitCode).toBe(0);
  });

  // An entry point defines its command and hands it to runMain (which runs its main); its work lives in
  // scripts/lib/. The closing guard is the same, line for line, in every script.
  it('each script is at most 150 lines and ends with the guard every other script ends with', () => {
    const scripts = [...SINGLE, ...GROUPS].sort();
    const tails = new Map<string, string>();
    for (const script of scripts) {
      const text = readFileSync(join(PROJECT_ROOT, 'scripts', script), 'utf8');
      const lines = text.trimEnd().split('\n');
      expect(lines.length, `${script}: move its work into scripts/lib/`).toBeLessThanOrEqual(150);
      expect(text, `${script} exports the command its guard runs`).toMatch(/^export const command\b/m);
      tails.set(script, lines.slice(-3).join('\n'));
    }
    const [guard] = tails.values();
    expect(guard).toMatch(/^if \(isMainModule\(import\.meta\.url\)\) \{\n {2}await runMain\(command\);\n\}$/);
    for (const [script, tail] of tails) expect(tail, `${script}'s last three lines`).toBe(guard);
  });
});

describe('the test bundles are the scripts operators run', () => {
  // Most tests start a script from its bundle (test/helpers/script-bundles.ts). Here each script also
  // starts as operators start it, `node --import tsx scripts/X.ts`: the same help, and the same usage error.
  it.each([...SINGLE, ...Object.keys(SUBCOMMANDS)])(
    '%s: --help and a mistyped flag, both ways',
    async (script) => {
      for (const args of [['--help'], ['--jsno']]) {
        const [bundled, operators] = await Promise.all([
          runScript(script, args, env()),
          runScript(script, args, env(), { asOperators: true }),
        ]);
        expect(operators).toEqual(bundled);
        expect(operators.exitCode).toBe(args[0] === '--help' ? 0 : 2);
      }
    },
  );
});

describe('every --help', () => {
  it.each(SINGLE)('%s --help ends with the exit-code table', async (script) => {
    const r = await runScript(script, ['--help'], env());
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: node --import tsx scripts/${script.replace('.', '\\.')} `));
    expect(r.stdout).toMatch(EXIT_TABLE);
  });

  for (const [script, subs] of Object.entries(SUBCOMMANDS)) {
    it(`${script} --help lists every subcommand, with the exit-code table`, async () => {
      const r = await runScript(script, ['--help'], env());
      expect(r.exitCode, r.stderr).toBe(0);
      for (const sub of subs) expect(r.stdout).toMatch(new RegExp(`^ {2}${sub} `, 'm'));
      expect(r.stdout).toMatch(EXIT_TABLE);
    });

    it.each(subs)(`${script} %s --help prints its own usage (exit 0)`, async (sub) => {
      const r = await helpOf(script, [sub, '--help']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(
        new RegExp(`^Usage: node --import tsx scripts/${script.replace('.', '\\.')} ${sub} `),
      );
      expect(r.stdout).toMatch(EXIT_TABLE);
    });
  }

  it('the host commands share the SSH options and their help lines', async () => {
    const runs = await Promise.all([
      helpOf('bifrost-bootstrap.ts', ['--help']),
      helpOf('provision-bifrost.ts', ['--help']),
      helpOf('bifrost.ts', ['status', '--help']),
    ]);
    const sshLines = (text: string) =>
      text
        .split('\n')
        .filter((l) =>
          /^ {2}--(local|host|identity|known-hosts|accept-new|remote-dir|docker|compose) /.test(l),
        );
    const [first, ...rest] = runs.map((r) => sshLines(r.stdout));
    expect(first).toHaveLength(8);
    for (const lines of rest) expect(lines).toEqual(first);
  });
});

describe('where a host command runs', () => {
  it.each([
    ['provision-bifrost.ts', []],
    ['bifrost.ts', ['status']],
    ['bifrost.ts', ['token']],
    ['bifrost-bootstrap.ts', []],
  ])('%s %j: exactly one of --local and --host, else exit 2 before anything runs', async (script, pre) => {
    const { command } = (await import(/* @vite-ignore */ `../scripts/${script}`)) as { command: Command };
    for (const where of [[], ['--local', '--host', 'h']]) {
      const captured = capturedOutput();
      const err = await command.main([...pre, ...where], captured.out).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).message).toMatch(/^say where to run: --local .*or --host H/);
      expect(captured.text()).toBe('');
    }
  });
});

describe('a mistyped flag', () => {
  it.each([
    ['bifrost-bootstrap.ts', ['--local', '--dryrun'], '--dryrun', '--dry-run'],
    ['provision-bifrost.ts', ['--host', 'h', '--secret-file', 'x'], '--secret-file', '--secrets-file'],
    ['bifrost.ts', ['status', '--remote-dri', '/x'], '--remote-dri', '--remote-dir'],
    ['secrets.ts', ['check', '--strikt'], '--strikt', '--strict'],
    ['sops.ts', ['decrypt', 'f', '--output-typ', 'json'], '--output-typ', '--output-type'],
    ['create-bootstrap-secrets.ts', ['--kubecfg', 'k'], '--kubecfg', '--kubeconfig'],
  ])('%s %j: exit 2 with a suggestion', async (script, args, typed, meant) => {
    const r = await runScript(script, args, env());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`unknown option ${typed}; did you mean ${meant}?`);
    expect(r.stderr).not.toMatch(/Unknown option '|ERR_PARSE_ARGS/);
  });

  it('far from every flag: no guess', () => {
    expect(suggestFlag('--frobnicate', ['dry-run', 'json', 'host'])).toBeUndefined();
    expect(() => parseCli(['--frobnicate'], { json: { type: 'boolean' } }, 'x')).toThrow(
      /^unknown option --frobnicate$/,
    );
  });

  it('a mistyped subcommand gets a suggestion too', async () => {
    const r = await runScript('bifrost.ts', ['stauts'], env());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown command "stauts"; did you mean status?');
  });

  it('a word every object has (constructor, toString) is an unknown command too, not a crash', async () => {
    for (const word of ['constructor', 'toString']) {
      const r = await runScript('secrets.ts', [word, '--json'], env());
      expect(r.exitCode, r.stderr).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: `unknown command "${word}"` });
    }
  });
});

describe('numeric flags', () => {
  it('a negative number is parsed and refused with a clear message (exit 2), not "ambiguous"', async () => {
    for (const args of [
      ['--host', 'h', '--lock-wait', '-5'],
      ['--host', 'h', '--lock-wait=-5'],
    ]) {
      const r = await runScript('provision-bifrost.ts', args, env());
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain('error: --lock-wait cannot be negative (-5): give a number ≥ 0');
      expect(r.stderr).not.toContain('ambiguous');
    }
    const tail = await runScript('bifrost.ts', ['logs', 'traefik', '--host', 'h', '--tail', '-3'], env());
    expect(tail.exitCode).toBe(2);
    expect(tail.stderr).toContain('--tail cannot be negative (-3): give a whole number ≥ 1');
  });

  it('one parser: non-negative, positive and whole-number variants', () => {
    expect(numberFlag('w', undefined, 'non-negative', 7)).toBe(7);
    expect(numberFlag('w', '0', 'non-negative', 7)).toBe(0);
    expect(() => numberFlag('w', '0', 'positive', 1)).toThrow('--w must be a positive number, not "0"');
    expect(() => numberFlag('n', '1.5', 'positive-integer', 1)).toThrow('--n must be a whole number ≥ 1');
    expect(() => numberFlag('w', 'soon', 'non-negative', 0)).toThrow('--w must be a number ≥ 0, not "soon"');
    expect(() => numberFlag('w', '', 'non-negative', 0)).toThrow('must be a number ≥ 0');
  });

  it('a missing value is a usage error naming the flag', async () => {
    const r = await runScript('provision-bifrost.ts', ['--host'], env());
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--host needs a value');
  });
});

describe('--json and --verbose are what the parser reads', () => {
  it('a --json after -- or taken as an option value is not the flag: the usage error is said as text', async () => {
    const runs = await Promise.all([
      runScript('bifrost-bootstrap.ts', ['--local', '--', '--json'], env()),
      runScript('bifrost-bootstrap.ts', ['--local', '--remote-dir', '--json'], env()),
      runScript('secrets.ts', ['set', '--', '--json'], env(), { input: '' }),
    ]);
    const said = [
      'error: unexpected argument: --json',
      'error: --remote-dir needs a value',
      'error: "--json" is not a key name set can write',
    ];
    for (const [i, r] of runs.entries()) {
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(said[i]);
    }
  });

  it('--json itself still switches JSON mode, also for the usage error of argv the command refuses', async () => {
    const [command, group] = await Promise.all([
      runScript('bifrost-bootstrap.ts', ['--local', '--json', '--bogus'], env()),
      runScript('secrets.ts', ['bogus', '--json'], env()),
    ]);
    expect(JSON.parse(command.stdout)).toMatchObject({
      ok: false,
      error: 'unknown option --bogus',
      exitCode: 2,
    });
    expect(JSON.parse(group.stdout)).toMatchObject({
      ok: false,
      error: 'unknown command "bogus"',
      exitCode: 2,
    });
  });

  it('-v bundled with another short flag, -v alone and --verbose each print every command', async () => {
    const b = makeBundle();
    const base = ['--local', '--dry-run', '--docker', 'docker', '--remote-dir', b.dir];
    const run = (extra: string[]) => runScript('bifrost-bootstrap.ts', [...base, ...extra], env());
    const [quiet, ...verbose] = await Promise.all([run([]), run(['-yv']), run(['-v']), run(['--verbose'])]);
    for (const r of [quiet, ...verbose]) expect(r.exitCode, r.stderr).toBe(0);
    expect(quiet.stdout).not.toMatch(/^\$ docker /m);
    for (const r of verbose) expect(r.stdout).toMatch(/^\$ docker /m);
  });
});

describe('aliases behave like the canonical flags', () => {
  it('--file is --secrets-file (secrets check)', async () => {
    const missing = join(tempDir('sf-alias-'), 'nope.sops.yaml');
    const [canonical, alias] = await Promise.all([
      runScript('secrets.ts', ['check', '--secrets-file', missing, '--json'], env()),
      runScript('secrets.ts', ['check', '--file', missing, '--json'], env()),
    ]);
    expect(canonical.exitCode).toBe(2);
    expect(alias.exitCode).toBe(canonical.exitCode);
    expect(alias.stdout).toBe(canonical.stdout);
    expect(alias.stderr).toBe(canonical.stderr);
    expect(canonical.stderr).toContain(missing);
  });

  it('--dir is --remote-dir (bifrost-bootstrap --dry-run)', async () => {
    const b = makeBundle();
    const args = ['--local', '--dry-run', '--json', '--docker', 'docker'];
    const [canonical, alias] = await Promise.all([
      runScript('bifrost-bootstrap.ts', [...args, '--remote-dir', b.dir], env()),
      runScript('bifrost-bootstrap.ts', [...args, '--dir', b.dir], env()),
    ]);
    expect(canonical.exitCode, canonical.stderr).toBe(0);
    expect(alias.exitCode).toBe(0);
    const [a, c] = [JSON.parse(alias.stdout), JSON.parse(canonical.stdout)];
    expect(a.steps).toEqual(c.steps);
    expect(settled(a.commands)).toEqual(settled(c.commands));
    const paths = (w: { path: string }[]) => w.map((x) => x.path).sort();
    expect(paths(a.writes)).toEqual(paths(c.writes));
  });

  it('--dir is --bundle (bifrost check-bundle)', async () => {
    const b = makeBundle();
    const [canonical, alias] = await Promise.all([
      runScript('bifrost.ts', ['check-bundle', '--bundle', b.dir, '--json'], env()),
      runScript('bifrost.ts', ['check-bundle', '--dir', b.dir, '--json'], env()),
    ]);
    expect(alias.exitCode).toBe(canonical.exitCode);
    expect(alias.stdout).toBe(canonical.stdout);
  });
});

describe('bifrost-bootstrap --dry-run is a recording run of the real plan', () => {
  const cliFor = (dir: string): DockerCli => ({ docker: 'docker', compose: ['docker', 'compose'], dir });
  const silent = () => capturedOutput().out;
  const healthyAtOnce = Object.fromEntries(
    BIFROST_PLAN.flatMap((s) => (s.kind === 'service' ? [[s.service, { healthyAfterMs: 0 }]] : [])),
  );
  const notInspect = (argv: readonly string[]) => argv[1] !== 'inspect';

  it('lists exactly the commands a real run on the simulator issues, in order', async () => {
    const b = makeBundle(bifrostSecrets({ NB_PROXY_TOKEN: undefined }));
    const r = await runScript(
      'bifrost-bootstrap.ts',
      [
        '--local',
        '--remote-dir',
        b.dir,
        '--dry-run',
        '--json',
        '--docker',
        'docker',
        '--compose',
        'docker compose',
      ],
      env(),
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const dry = JSON.parse(r.stdout) as { commands: string[]; steps: string[] };

    // The same bundle, fresh, brought up for real on the simulator.
    const fresh = makeBundle(bifrostSecrets({ NB_PROXY_TOKEN: undefined }));
    const sim = new DockerSimulator({ dir: fresh.dir, timeline: healthyAtOnce, cloudInit: true });
    const result = await runBifrostBootstrap({
      executor: sim,
      cli: cliFor(fresh.dir),
      out: silent(),
      timeScale: 0.05,
    });
    expect(result.ok).toBe(true);
    const real = sim.calls
      .map((c) => c.argv)
      .filter(notInspect)
      .map((argv) => formatCommand(argv).split(fresh.dir).join(b.dir));
    // NetBird's chain and Authentik's run in parallel, so with every container healthy at once their
    // commands interleave (and ready services share an up) as the two runs' timing falls: the same
    // commands, each service started by exactly one up, and the shared start alike.
    const perService = (commands: readonly string[]) =>
      settled(commands)
        .flatMap((c) => {
          const m = /( up -d --no-deps(?: --force-recreate)?) (.+)$/.exec(c);
          return m ? (m[2] as string).split(' ').map((svc) => `${c.slice(0, m.index)}${m[1]} ${svc}`) : [c];
        })
        .sort();
    expect(perService(dry.commands)).toEqual(perService(real));
    expect(settled(dry.commands).slice(0, 4)).toEqual(settled(real).slice(0, 4));
    expect(dry.commands).toContain(
      'docker exec netbird-server /go/bin/netbird-server token create --name bifrost-proxy --config /etc/netbird/config.yaml',
    );
    expect(settled(dry.commands)[0]).toMatch(
      /^docker events --format '\{\{json \.\}\}' .* --since=0s --until=…$/,
    );
    // The config render waits for nothing, so netbird-server starts in the first up with traefik and postgres.
    expect(settled(dry.commands)[3]).toMatch(
      /up -d --no-deps --force-recreate authentik-postgres netbird-server traefik$/,
    );
    expect(dry.steps).toContain('netbird-proxy-token (after netbird-server): would run');
    expect(dry.steps).toContain('netbird-proxy (after netbird-proxy-token): would run');
    expect(dry.steps).toContain('netbird-config: would run');
    expect(dry.steps).toContain('authentik-migrate (after authentik-postgres): would run');
  });

  it('a change to the plan shows up in the dry run with no description code to update', async () => {
    const b = makeBundle();
    const executor = new LocalExecutor();
    const plan: PlanStep[] = BIFROST_PLAN.filter((s) => s.id !== 'authentik-migrate').map((s) => ({
      ...s,
      after: s.after.filter((a) => a !== 'authentik-migrate'),
    }));
    const extra: PlanStep = {
      id: 'authentik-check',
      kind: 'run',
      service: 'authentik-server',
      args: ['check-config'],
      after: ['authentik-postgres'],
      deadlineSec: 60,
    };
    const changed = await dryRunBootstrap({
      executor,
      cli: cliFor(b.dir),
      out: silent(),
      plan: [...plan, extra],
    });
    expect(changed.commands.join('\n')).not.toContain(' migrate');
    expect(changed.commands).toContain(
      formatCommand([
        'docker',
        'compose',
        '-f',
        `${b.dir}/docker-compose.yml`,
        '--project-directory',
        b.dir,
        'run',
        '--rm',
        '--no-deps',
        'authentik-server',
        'check-config',
      ]),
    );
    expect(changed.steps).toContain('authentik-check (after authentik-postgres): would run');
  });
});
