/**
 * `bifrost check-bundle` through the CLI, as operators run it: each class of defect is planted in a temporary
 * copy of cloud/bifrost and must make the command exit 2 naming it; the shipped bundle's own known problems
 * are pinned as a list; a copy with those fixed exits 0.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BundleProblem, bundleProblems, readHostBundle } from '../scripts/lib/bifrost/check-bundle.ts';
import { BIFROST_PLAN, type PlanStep } from '../scripts/lib/bifrost/plan.ts';
import { matchersOf } from '../scripts/lib/bifrost/traefik-routes.ts';
import { LocalExecutor } from '../scripts/lib/exec/local.ts';
import { PROJECT_ROOT, runScript } from './helpers/run-cli.ts';
import { tempDir } from './helpers/temp.ts';

const SHIPPED = resolve(PROJECT_ROOT, 'cloud', 'bifrost');
const root = tempDir('sf-check-bundle-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ENV = { PATH: process.env.PATH ?? '', NO_COLOR: '1' };
let copies = 0;

/** A fresh copy of the shipped bundle with `edits` applied: file → (text → text). */
function plant(edits: Record<string, (text: string) => string>): string {
  const dir = join(root, `bundle-${++copies}`);
  cpSync(SHIPPED, dir, { recursive: true });
  for (const [file, edit] of Object.entries(edits)) {
    const path = join(dir, file);
    const before = readFileSync(path, 'utf8');
    const after = edit(before);
    // A planting that changes nothing would test the shipped bundle instead.
    expect(after, `the edit of ${file} changed nothing`).not.toBe(before);
    writeFileSync(path, after);
  }
  return dir;
}

/** Replaces exactly one occurrence (a test whose anchor disappears must fail, not pass vacuously). */
const swap = (from: string, to: string) => (text: string) => {
  expect(text.split(from).length - 1, `"${from}" occurs once`).toBe(1);
  // A function, so that `$$` in `to` is written as it is (a string replacement would turn it into `$`).
  return text.replace(from, () => to);
};

/** Several edits of one file, in order. */
const all =
  (...edits: ((text: string) => string)[]) =>
  (text: string) =>
    edits.reduce((acc, edit) => edit(acc), text);

async function check(dir: string): Promise<{ exitCode: number; ok: boolean; problems: BundleProblem[] }> {
  const run = await runScript('bifrost.ts', ['check-bundle', '--dir', dir, '--json'], ENV);
  const result = JSON.parse(run.stdout) as { ok: boolean; dir: string; problems: BundleProblem[] };
  expect(result.dir).toBe(dir);
  return { exitCode: run.exitCode, ok: result.ok, problems: result.problems };
}

const key = (p: BundleProblem) => `${p.file}:${p.line ?? '-'} [${p.check}] ${p.problem}`;

/** The planted copy's new problems are exactly `patterns` (`file:line [check] problem`), in order. */
async function expectPlanted(
  edits: Record<string, (text: string) => string>,
  patterns: RegExp[],
): Promise<BundleProblem[]> {
  const extra = await planted(edits);
  expect(extra.map(key)).toEqual(patterns.map((p) => expect.stringMatching(p)));
  return extra;
}

let shippedRun: ReturnType<typeof check> | undefined;

/** The problems a planted copy has beyond the shipped bundle's own. */
async function planted(edits: Record<string, (text: string) => string>): Promise<BundleProblem[]> {
  // Without the line: a planted line moves the shipped problems below it.
  const same = (p: BundleProblem) => `${p.file} [${p.check}] ${p.problem}`;
  shippedRun ??= check(SHIPPED);
  const shipped = new Set((await shippedRun).problems.map(same));
  const { exitCode, problems } = await check(plant(edits));
  expect(exitCode).toBe(2);
  return problems.filter((p) => !shipped.has(same(p)));
}

/** The agent's shipped healthcheck, as docker-compose.yml writes it. */
const AGENT_HEALTHCHECK = String.raw`["CMD-SHELL", "netbird status --json | grep -q '\"management\":{\"url\":\"[^\"]*\",\"connected\":true'"]`;

/** Two problems of two classes, for the output-format tests. */
const TWO_PROBLEMS: Record<string, (text: string) => string> = {
  'netbird/config.yaml.tmpl': swap('  logLevel: info\n', '  logLevel: info\n  relayz: true\n'),
  'docker-compose.yml': swap('image: postgres:16.6-alpine', 'image: postgres:16.7-alpine'),
};

describe('bifrost check-bundle', () => {
  it('passes the shipped cloud/bifrost: exit 0, no problems', async () => {
    const { exitCode, ok, problems } = await check(SHIPPED);
    expect(problems).toEqual([]);
    expect(ok).toBe(true);
    expect(exitCode).toBe(0);
    const run = await runScript('bifrost.ts', ['check-bundle', '--dir', SHIPPED], ENV);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('the bundle is sound');
    expect(run.exitCode).toBe(0);
  });

  // Defects the shipped bundle once had, put back one defect at a time: each is named again.
  it('names each defect the bundle had before it was fitted to its pinned images', async () => {
    await expectPlanted(
      {
        'netbird/config.yaml.tmpl': swap(
          '  store:\n',
          '  idp:\n    type: authentik\n    authentik:\n      managementToken: "${NB_IDP_MGMT_TOKEN}"\n  store:\n',
        ),
      },
      [
        /^netbird\/config\.yaml\.tmpl:\d+ \[config-key\] server\.idp is not a key netbirdio\/netbird-server:0\.66\.0 reads/,
        /^netbird\/config\.yaml\.tmpl:\d+ \[step-graph\] the netbird-config step reads NB_IDP_MGMT_TOKEN but does not wait for the netbird-mgmt-token step/,
      ],
    );
    await expectPlanted(
      {
        'docker-compose.yml': swap(
          '["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090"]',
          '["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:9090/metrics || exit 1"]',
        ),
      },
      [
        /\[healthcheck\] netbird-server: the healthcheck runs wget, which netbirdio\/netbird-server:0\.66\.0 does not have/,
      ],
    );
    await expectPlanted(
      {
        'docker-compose.yml': swap(
          '["CMD", "/busybox/wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz/ready"]',
          '["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1"]',
        ),
      },
      [
        /\[healthcheck\] netbird-proxy: the healthcheck runs sh, which netbirdio\/reverse-proxy:0\.66\.0 does not have/,
      ],
    );
    await expectPlanted(
      {
        'docker-compose.yml': swap(
          'image: netbirdio/dashboard:v2.33.0',
          'image: netbirdio/dashboard:v2.38.1',
        ),
      },
      [/\[image-facts\] netbird-dashboard: netbirdio\/dashboard:v2\.38\.1 has no row/],
    );
    await expectPlanted(
      {
        'traefik/dynamic.yml': swap(
          'rule: Host(`netbird.madhan.app`) && (PathPrefix(`/signalexchange.SignalExchange/`) || PathPrefix(`/management.ManagementService/`))',
          'rule: Host(`netbird.madhan.app`) && PathPrefix(`/signalexchange.SignalExchange/`, `/management.ManagementService/`)',
        ),
      },
      [/\[traefik-rule\] http router netbird-grpc: PathPrefix\(…\) has 2 arguments/],
    );
  });

  it('prints every problem with file:line, check and fix, and exits 2 (text output)', async () => {
    const dir = plant(TWO_PROBLEMS);
    const run = await runScript('bifrost.ts', ['check-bundle', '--dir', dir], ENV);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toMatch(
      /^netbird\/config\.yaml\.tmpl:\d+: \[config-key\] server\.relayz is not a key/m,
    );
    expect(run.stdout).toMatch(
      /^docker-compose\.yml:\d+: \[image-facts\] authentik-postgres: postgres:16\.7-alpine/m,
    );
    expect(run.stdout.match(/^ {4}fix: /gm)).toHaveLength(2);
    expect(run.stderr).toMatch(/^error: .*: 2 problem\(s\) in the bundle$/m);
  });

  it('--json prints one result: ok, dir and problems of { check, file, line?, problem, fix }', async () => {
    const dir = plant(TWO_PROBLEMS);
    const run = await runScript('bifrost.ts', ['check-bundle', '--dir', dir, '--json'], ENV);
    expect(run.exitCode).toBe(2);
    const result = JSON.parse(run.stdout);
    expect(Object.keys(result).sort()).toEqual(['dir', 'ok', 'problems']);
    expect(result.ok).toBe(false);
    expect(result.problems).toHaveLength(2);
    for (const p of result.problems) {
      expect(Object.keys(p).sort()).toEqual(['check', 'file', 'fix', 'line', 'problem']);
      expect(typeof p.line).toBe('number');
    }
  });

  it('a compose service no plan step starts', async () => {
    const extra = await expectPlanted(
      {
        'docker-compose.yml': swap('\nnetworks:\n', '\n  whoami:\n    image: traefik:v3.3\n\nnetworks:\n'),
      },
      [
        /^docker-compose\.yml:\d+ \[unstarted-service\] service whoami is defined, but no plan step starts it/,
      ],
    );
    expect(extra[0]?.fix).toContain('NOT_STARTED_BY_PLAN');
  });

  it('a plan step naming a service compose does not define', async () => {
    const extra = await planted({
      'docker-compose.yml': swap('  netbird-dashboard:\n', '  netbird-ui:\n'),
    });
    expect(extra.map((p) => `[${p.check}] ${p.problem}`)).toEqual(
      expect.arrayContaining([
        '[plan-service] docker-compose.yml has no service netbird-dashboard (the netbird-dashboard step needs it)',
        expect.stringMatching(/^\[unstarted-service\] service netbird-ui is defined/),
      ]),
    );
  });

  it('a ${NAME} in the config template that no source provides', async () => {
    await expectPlanted(
      {
        'netbird/config.yaml.tmpl': swap(
          '  logFile: console\n',
          '  logFile: "${NB_LOG_PATH}"\n  signalUri: "${NB_PROXY_TOKEN}"\n',
        ),
      },
      [
        /^netbird\/config\.yaml\.tmpl:13 \[template-placeholder\] \$\{NB_LOG_PATH\} has no source/,
        // A schema name the engine's render step does not allow is refused on the host: named too.
        /^netbird\/config\.yaml\.tmpl:14 \[template-placeholder\] \$\{NB_PROXY_TOKEN\} is not one of the engine's CONFIG_PLACEHOLDERS/,
      ],
    );
  });

  it('a config key the pinned NetBird server does not read (nested ones too), and a required one missing', async () => {
    await expectPlanted(
      {
        'netbird/config.yaml.tmpl': all(
          swap('  dataDir: /var/lib/netbird\n', '  relayz: true\n'),
          swap('  store:\n    engine: sqlite\n', '  store:\n    engine: sqlite\n    file: store.db\n'),
        ),
      },
      [
        /^netbird\/config\.yaml\.tmpl:15 \[config-key\] server\.relayz is not a key/,
        /^netbird\/config\.yaml\.tmpl:41 \[config-key\] server\.store\.file is not a key/,
        /^netbird\/config\.yaml\.tmpl:- \[config-key\] server\.dataDir is missing/,
      ],
    );
  });

  it("NetBird's owner: the block missing, its email not an address, its password the plain secret instead of the hash", async () => {
    const OWNER =
      '    owner:\n      email: "admin@madhan.app"\n      password: "${NB_OWNER_PASSWORD_HASH}"\n';
    // Without the block, the server offers its unauthenticated /setup to whoever comes first.
    await expectPlanted({ 'netbird/config.yaml.tmpl': swap(OWNER, '') }, [
      /^netbird\/config\.yaml\.tmpl:\d+ \[owner\] server\.auth\.owner is missing: NetBird's unauthenticated \/setup/,
    ]);
    // The plain password's placeholder: a value the schema never renders, and no bcrypt hash either.
    await expectPlanted(
      {
        'netbird/config.yaml.tmpl': all(
          swap('email: "admin@madhan.app"', 'email: "admin at madhan.app"'),
          swap('password: "${NB_OWNER_PASSWORD_HASH}"', 'password: "${NB_OWNER_PASSWORD}"'),
        ),
      },
      [
        /^netbird\/config\.yaml\.tmpl:27 \[template-placeholder\] \$\{NB_OWNER_PASSWORD\} has no source/,
        /^netbird\/config\.yaml\.tmpl:26 \[owner\] server\.auth\.owner\.email is not an email address/,
        /^netbird\/config\.yaml\.tmpl:27 \[owner\] server\.auth\.owner\.password is not "\$\{NB_OWNER_PASSWORD_HASH\}".*netbirdio\/netbird#7169/,
      ],
    );
    // A literal password, even one that looks like a hash, is not the operator's secret's hash.
    await expectPlanted(
      {
        'netbird/config.yaml.tmpl': swap(
          '"${NB_OWNER_PASSWORD_HASH}"',
          '"$2b$10$abcdefghijklmnopqrstuuj7m4XYqbm74SxoBcXyw8to0CQ061DVG"',
        ),
      },
      [/^netbird\/config\.yaml\.tmpl:27 \[owner\] server\.auth\.owner\.password is not/],
    );
  });

  it('a healthcheck running a program the pinned image lacks, or one the facts do not list', async () => {
    // curl is in the dashboard image: only psql, which the postgres row does not list, is a problem.
    await expectPlanted(
      {
        'docker-compose.yml': all(
          swap(
            '["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:80/ || exit 1"]',
            '["CMD", "curl", "-fsS", "http://127.0.0.1:80/"]',
          ),
          swap('["CMD-SHELL", "pg_isready -d authentik -U authentik"]', '["CMD", "psql", "-c", "select 1"]'),
        ),
      },
      [
        /^docker-compose\.yml:\d+ \[healthcheck\] authentik-postgres: the healthcheck runs psql, which the facts for postgres:16\.6-alpine do not list/,
      ],
    );
    await expectPlanted(
      {
        'docker-compose.yml': swap(
          '["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090"]',
          '["CMD-SHELL", "curl -fsS http://127.0.0.1:9090/metrics || exit 1"]',
        ),
      },
      [
        /\[healthcheck\] netbird-server: the healthcheck runs curl, which netbirdio\/netbird-server:0\.66\.0 does not have/,
      ],
    );
  });

  it('a healthcheck flag the pinned client lacks, and traefik --ping without ping in its static config', async () => {
    const extra = await planted({
      'docker-compose.yml': swap(AGENT_HEALTHCHECK, '["CMD", "netbird", "status", "--check", "ready"]'),
      'traefik/traefik.yml': swap('ping: {}\n', ''),
    });
    expect(extra.map((p) => `[${p.check}] ${p.problem}`)).toEqual([
      expect.stringMatching(
        /^\[healthcheck\] traefik: `traefik healthcheck --ping` needs `ping` in the static config/,
      ),
      expect.stringMatching(
        /^\[healthcheck\] netbird-agent: `netbird status` has no --check flag in netbirdio\/netbird:0\.66\.0 \(added in v0\.67\.0/,
      ),
      expect.stringMatching(
        /^\[agent-healthcheck\] netbird-agent: check-bundle cannot tell whether the healthcheck fails while the agent is not connected to management: `netbird status --check ready`/,
      ),
    ]);
  });

  it("Traefik's ACME resolver: an account email Let's Encrypt takes, and the propagation block, not the deprecated keys", async () => {
    const EMAIL = '      email: madhankumaravelu93@gmail.com\n';
    const resolver = /^traefik\/traefik\.yml:\d+ \[traefik-acme\] certificate resolver cloudflare-dns/;
    const extra = await expectPlanted({ 'traefik/traefik.yml': swap(EMAIL, '') }, [
      new RegExp(
        `${resolver.source} has no account email: Traefik registers a new ACME account at every start`,
      ),
    ]);
    expect(extra[0]?.fix).toContain('traefik/traefik@v3.3.7:pkg/provider/acme/provider.go');
    for (const [email, problem] of [
      ['ops@example.com', 'has an account email at example.com, an example domain'],
      ['ops', 'has an account email that is not an address \\("ops"\\)'],
      [
        'ops@bifrost.test',
        'has an account email at bifrost.test, which is not a public domain \\(.test is reserved\\)',
      ],
    ] as const) {
      await expectPlanted({ 'traefik/traefik.yml': swap(EMAIL, `      email: ${email}\n`) }, [
        new RegExp(`${resolver.source} ${problem}: Let's Encrypt refuses to register the account`),
      ]);
    }
    const PROPAGATION = '        propagation:\n          delayBeforeChecks: 10s\n';
    await expectPlanted({ 'traefik/traefik.yml': swap(PROPAGATION, '        delayBeforeCheck: 10\n') }, [
      new RegExp(`${resolver.source}: dnsChallenge\\.delayBeforeCheck is deprecated since Traefik v3\\.3`),
    ]);
    await expectPlanted(
      {
        'traefik/traefik.yml': swap(
          PROPAGATION,
          '        disablePropagationCheck: true\n        propagation:\n          delayBeforeCheck: 10s\n',
        ),
      },
      [
        new RegExp(`${resolver.source}: dnsChallenge\\.disablePropagationCheck is deprecated`),
        new RegExp(
          `${resolver.source}: dnsChallenge\\.propagation\\.delayBeforeCheck is not a propagation setting`,
        ),
      ],
    );
    // Another address the operator reads, and another valid propagation setting, pass: nothing is pinned to the shipped values.
    const dir = plant({
      'traefik/traefik.yml': all(
        swap(EMAIL, '      email: ops@madhan.app\n'),
        swap('delayBeforeChecks: 10s', 'delayBeforeChecks: 30s\n          requireAllRNS: true'),
      ),
    });
    expect((await check(dir)).problems).toEqual([]);
  });

  it("the agent's healthcheck fails unless the agent is connected to management", async () => {
    const agent = /^docker-compose\.yml:\d+ \[agent-healthcheck\] netbird-agent: /;
    const cases: [string, string][] = [
      // What the bundle had: `netbird status` exits 0 while the daemon answers, logged out or not.
      ['["CMD", "netbird", "status"]', 'the healthcheck passes while the agent is logged out'],
      // `connected` alone also matches the signal state, which stays up when management is down.
      [
        String.raw`["CMD-SHELL", "netbird status --json | grep -q '\"connected\":true'"]`,
        'the healthcheck passes while the agent is logged in, management unreachable',
      ],
      [
        String.raw`["CMD-SHELL", "netbird status --json | grep -q '\"management\":{\"url\":\"[^\"]*\",\"connected\":false'"]`,
        'the healthcheck fails even when the agent is connected to management, so it never turns healthy',
      ],
      // Looking for the bad states instead: an empty output (the daemon down) then looks healthy.
      [
        '["CMD-SHELL", "netbird status | grep -q -e Disconnected -e NeedsLogin && exit 1 || exit 0"]',
        'the healthcheck passes while the agent is down (its daemon does not answer)',
      ],
      [
        // A form the check does not model is named, not passed.
        `["CMD-SHELL", "netbird status --yaml | grep -q 'connected: true'"]`,
        'check-bundle cannot tell whether the healthcheck fails while the agent is not connected to management: `netbird status --yaml`',
      ],
    ];
    for (const [test, problem] of cases) {
      const extra = await expectPlanted({ 'docker-compose.yml': swap(AGENT_HEALTHCHECK, test) }, [
        new RegExp(`${agent.source}${problem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      ]);
      expect(extra[0]?.fix).toContain('management.connected');
    }
    // The plain summary's Management line tells it too: the check reads what the line does, not its text.
    const dir = plant({
      'docker-compose.yml': swap(
        AGENT_HEALTHCHECK,
        `["CMD-SHELL", "netbird status | grep -q '^Management: Connected' || exit 1"]`,
      ),
    });
    expect((await check(dir)).problems).toEqual([]);
  });

  it('an image tag the facts table has no row for', async () => {
    await expectPlanted(
      {
        'docker-compose.yml': swap('image: postgres:16.6-alpine', 'image: postgres:16.7-alpine'),
      },
      [/^docker-compose\.yml:\d+ \[image-facts\] authentik-postgres: postgres:16\.7-alpine has no row/],
    );
  });

  it('a ${VAR} compose interpolates with no source in .env (a default is a source)', async () => {
    await expectPlanted(
      {
        'docker-compose.yml': swap(
          '      NB_HOSTNAME: bifrost-agent\n',
          '      NB_HOSTNAME: bifrost-agent\n      NB_LOG_LEVEL: ${NB_AGENT_LOG_LEVEL}\n      NB_X: ${NB_X_DEFAULTED:-info}\n      NB_Y: $NB_BARE\n      NB_Z: $$SHELL_ONLY\n',
        ),
      },
      [
        /^docker-compose\.yml:\d+ \[compose-variable\] \$\{NB_AGENT_LOG_LEVEL\} is interpolated by compose, but \.env never sets it/,
        /^docker-compose\.yml:\d+ \[compose-variable\] \$\{NB_BARE\} is interpolated by compose/,
      ],
    );
  });

  it('an env_file that neither exists in the bundle nor is rendered by the engine', async () => {
    await expectPlanted(
      {
        'docker-compose.yml': swap(
          'env_file: [netbird/dashboard.env]',
          'env_file: [netbird/dashboard-ui.env]',
        ),
      },
      [
        /^docker-compose\.yml:\d+ \[service-input\] service netbird-dashboard reads netbird\/dashboard-ui\.env, which is neither in the bundle nor rendered on the host/,
      ],
    );
  });

  it('a Traefik router pointing at an undefined service (dynamic config and labels)', async () => {
    await expectPlanted(
      {
        'traefik/dynamic.yml': swap('      service: netbird-dashboard\n', '      service: netbird-ui\n'),
        'docker-compose.yml': swap(
          '    container_name: netbird-dashboard\n',
          '    container_name: netbird-dashboard\n    labels:\n      - traefik.http.routers.ui.rule=Host(`ui.example`)\n      - traefik.http.routers.ui.service=nowhere@docker\n',
        ),
      },
      [
        /^docker-compose\.yml:126 \[traefik-service\] http router ui: its service nowhere@docker is not defined/,
        /^traefik\/dynamic\.yml:24 \[traefik-service\] http router netbird: its service netbird-ui is not defined/,
      ],
    );
  });

  it('a Traefik v3 rule with a multi-argument matcher (HTTP and TCP)', async () => {
    await expectPlanted(
      {
        'traefik/dynamic.yml': all(
          swap('rule: Host(`auth.madhan.app`)', 'rule: Host(`auth.madhan.app`, `sso.madhan.app`)'),
          swap('rule: HostSNI(`*`)', 'rule: HostSNI(`a.example`, `b.example`)'),
        ),
      },
      [
        /^traefik\/dynamic\.yml:5 \[traefik-rule\] http router authentik: Host\(…\) has 2 arguments/,
        /^traefik\/dynamic\.yml:\d+ \[traefik-rule\] tcp router proxy-passthrough: HostSNI\(…\) has 2 arguments/,
      ],
    );
  });

  it("reads the host's copy without its secret or generated files, ignoring names no upload writes", async () => {
    const dir = plant({});
    writeFileSync(join(dir, '.secrets.env'), 'NB_RELAY_SECRET=CANARY-host-secret\n', { mode: 0o600 });
    mkdirSync(join(dir, 'env'), { recursive: true });
    writeFileSync(join(dir, 'env/traefik.env'), 'CF_DNS_API_TOKEN=CANARY-host-token\n', { mode: 0o600 });
    writeFileSync(join(dir, 'netbird/config.yaml'), 'server: {}\n');
    writeFileSync(join(dir, '.bundle-manifest.json'), '{}');
    writeFileSync(join(dir, 'traefik/odd\nname.yml'), 'x: 1\n');
    const local = new LocalExecutor();
    const read: string[] = [];
    const executor = {
      ...local,
      where: local.where,
      run: local.run.bind(local),
      close: local.close.bind(local),
      files: {
        ...local.files,
        readFile: (path: string) => {
          read.push(path);
          return local.files.readFile(path);
        },
      },
    };
    const files = await readHostBundle(executor, dir);
    expect([...files.keys()]).toEqual([
      'docker-compose.yml',
      'env/README.md',
      'netbird/config.yaml.tmpl',
      'netbird/dashboard.env',
      'netbird/proxy.env',
      'traefik/dynamic.yml',
      'traefik/traefik.yml',
    ]);
    // Only the bundle's own files were read: no secret, nothing generated, nothing with an odd name.
    expect(read.map((p) => p.slice(dir.length + 1)).sort()).toEqual([...files.keys()]);
    expect(await bundleProblems(files)).toEqual([]);
  });

  describe("the plan's proxy token step and its graph", () => {
    const shipped = () => readHostBundle(new LocalExecutor(), SHIPPED);
    const withStep = (id: string, edit: (s: PlanStep) => PlanStep | undefined) =>
      BIFROST_PLAN.flatMap((s) => {
        if (s.id !== id) return [s];
        const edited = edit(s);
        return edited ? [edited] : [];
      });
    const problemsOf = async (plan: readonly PlanStep[]) =>
      (await bundleProblems(await shipped(), plan)).map(key);

    it('the proxy token step missing: the proxy waits for nothing that mints its token', async () => {
      const plan = withStep('netbird-proxy-token', () => undefined).map((s) =>
        s.id === 'netbird-proxy' ? { ...s, after: ['netbird-server'] } : s,
      );
      expect(await problemsOf(plan)).toEqual([
        expect.stringMatching(
          /^scripts\/lib\/bifrost\/plan\.ts:- \[proxy-token\] the netbird-proxy step waits for no step minting NB_PROXY_TOKEN/,
        ),
      ]);
    });

    it('minting with a bare `netbird-server` (not on the image PATH), or without --config', async () => {
      const bare = withStep('netbird-proxy-token', (s) =>
        s.kind === 'proxy-token' ? { ...s, command: ['netbird-server', ...s.command.slice(1)] } : s,
      );
      expect(await problemsOf(bare)).toEqual([
        expect.stringMatching(
          /\[proxy-token\] the netbird-proxy-token step runs `netbird-server`, which is not on netbirdio\/netbird-server:0\.66\.0's PATH/,
        ),
      ]);
      const noConfig = withStep('netbird-proxy-token', (s) =>
        s.kind === 'proxy-token' ? { ...s, command: s.command.slice(0, 5) } : s,
      );
      expect(await problemsOf(noConfig)).toEqual([
        expect.stringMatching(/\[proxy-token\] .*token create.* \(missing: --config\)/),
      ]);
    });

    it('minting before the server is up, or in another container', async () => {
      const early = withStep('netbird-proxy-token', (s) => ({ ...s, after: [] }));
      expect(await problemsOf(early)).toEqual([
        expect.stringMatching(
          /\[proxy-token\] the netbird-proxy-token step does not wait for netbird-server/,
        ),
      ]);
      const elsewhere = withStep('netbird-proxy-token', (s) =>
        s.kind === 'proxy-token' ? { ...s, container: 'authentik-server' } : s,
      );
      expect(await problemsOf(elsewhere)).toEqual([
        expect.stringMatching(
          /\[proxy-token\] .* runs in authentik-server, which is not a netbirdio\/netbird-server service/,
        ),
      ]);
    });

    it('NetBird waiting on the ak-shell token it does not read', async () => {
      const waits = withStep('netbird-config', (s) => ({ ...s, after: ['netbird-mgmt-token'] }));
      expect(await problemsOf(waits)).toEqual([
        expect.stringMatching(
          /\[step-graph\] the netbird-config step waits for netbird-mgmt-token, but nothing it renders or receives names NB_IDP_MGMT_TOKEN/,
        ),
      ]);
    });
  });

  it("the reverse proxy's settings that must agree with Traefik and compose", async () => {
    await expectPlanted(
      {
        'netbird/proxy.env': all(
          swap('NB_PROXY_ACME_CHALLENGE_TYPE=', 'NB_PROXY_ACME_CHALENGE_TYPE='),
          swap('NB_PROXY_ALLOW_INSECURE=true\n', ''),
        ),
      },
      [
        /^netbird\/proxy\.env:\d+ \[reverse-proxy\] netbird-proxy: NB_PROXY_ACME_CHALENGE_TYPE is not a setting netbirdio\/reverse-proxy:0\.66\.0 reads/,
        /^netbird\/proxy\.env:\d+ \[reverse-proxy\] netbird-proxy: the management address is plain http:\/\/ and NB_PROXY_ALLOW_INSECURE is not true/,
      ],
    );
    await expectPlanted(
      { 'netbird/proxy.env': swap('NB_PROXY_PROXY_PROTOCOL=true', 'NB_PROXY_PROXY_PROTOCOL=false') },
      [
        /\[reverse-proxy\] netbird-proxy: Traefik's tcp service netbird-proxy sends a PROXY protocol header, and the proxy does not read one/,
      ],
    );
    await expectPlanted({ 'traefik/dynamic.yml': swap('        proxyProtocol: { version: 2 }\n', '') }, [
      /\[reverse-proxy\] netbird-proxy: the proxy waits for a PROXY protocol header that Traefik's tcp service netbird-proxy does not send/,
    ]);
    await expectPlanted(
      {
        'netbird/proxy.env': swap(
          'NB_PROXY_TRUSTED_PROXIES=172.30.0.10',
          'NB_PROXY_TRUSTED_PROXIES=10.0.0.0/8',
        ),
      },
      [
        /\[reverse-proxy\] netbird-proxy: NB_PROXY_TRUSTED_PROXIES \(10\.0\.0\.0\/8\) does not include Traefik's address 172\.30\.0\.10/,
      ],
    );
    await expectPlanted({ 'traefik/dynamic.yml': (t) => t.slice(0, t.indexOf('tcp:\n')) }, [
      /^docker-compose\.yml:\d+ \[reverse-proxy\] netbird-proxy: no Traefik TCP router passes TLS through to it/,
    ]);
    // A range that holds Traefik's address is as good as the address itself.
    const dir = plant({
      'netbird/proxy.env': swap(
        'NB_PROXY_TRUSTED_PROXIES=172.30.0.10',
        'NB_PROXY_TRUSTED_PROXIES=10.1.0.0/16,172.30.0.0/24',
      ),
    });
    expect((await check(dir)).problems).toEqual([]);
  });

  it('reads matchers and their argument counts from a rule', () => {
    expect(matchersOf('Host(`a`) && (PathPrefix(`/x`) || Header(`K`, "v")) && !Query(`q`)')).toEqual([
      { name: 'Host', args: 1 },
      { name: 'PathPrefix', args: 1 },
      { name: 'Header', args: 2 },
      { name: 'Query', args: 1 },
    ]);
  });
});
