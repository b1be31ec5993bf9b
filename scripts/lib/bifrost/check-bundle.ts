/**
 * `bifrost check-bundle`: reads a bundle directory against the plan (plan.ts), the secret schema and the
 * facts of the pinned images (pinned-images.ts), with no host and no secret. Images cannot be pulled on
 * these machines, so a service the plan never starts, a healthcheck the image cannot run, a config key the
 * server ignores or a route Traefik drops would otherwise surface only on the VPS. Every problem is
 * returned at once, with its file, line where it helps, and the fix.
 */
import { parse } from 'yaml';
import { InputError } from '../core/errors.ts';
import type { Executor } from '../exec/executor.ts';
import { hashedNames, namesFor } from '../secrets/schema.ts';
import {
  type ComposeService as BundleService,
  bundleMountsOf,
  composeVariables,
  envFilesOf,
  isHostGenerated,
} from './bundle.ts';
import { memoryBundle } from './bundle-preflight.ts';
import { HOST_MINTED, planServiceProblems, serviceInputProblems } from './bundle-rules.ts';
import { parseEnvFile } from './env-file.ts';
import {
  NETBIRD_CLIENT_STATUS,
  NETBIRD_SERVER_CONFIG,
  PROXY_TOKEN_FACTS,
  pinnedImage,
  REVERSE_PROXY_SETTINGS,
} from './pinned-images.ts';
import {
  BIFROST_PLAN,
  CONFIG_PLACEHOLDERS,
  NB_IDP_MGMT_TOKEN,
  NB_PROXY_TOKEN,
  NOT_STARTED_BY_PLAN,
  type PlanStep,
  SERVICE_SECRET_FILES,
} from './plan.ts';
import { agentHealthcheckProblem } from './status-healthcheck.ts';
import { placeholdersOf } from './template.ts';
import { acmeFindings } from './traefik-acme.ts';
import {
  type Routing,
  readDynamicConfig,
  readLabels,
  ruleProblems,
  undefinedService,
} from './traefik-routes.ts';
import { type BundleFile, bundlePathProblem, MANIFEST, readLocalBundle } from './upload.ts';
import { lineOfText, yamlLineFinder } from './yaml-lines.ts';

export type CheckId =
  | 'unstarted-service'
  | 'plan-service'
  | 'template-placeholder'
  | 'config-key'
  | 'healthcheck'
  | 'image-facts'
  | 'compose-variable'
  | 'service-input'
  | 'traefik-service'
  | 'traefik-rule'
  | 'reverse-proxy'
  | 'traefik-acme'
  | 'agent-healthcheck'
  | 'owner'
  | 'proxy-token'
  | 'step-graph';

export interface BundleProblem {
  check: CheckId;
  /** Relative to the bundle directory. */
  file: string;
  line?: number;
  problem: string;
  fix: string;
}

const COMPOSE = 'docker-compose.yml';

/** What the checks read of a compose service, beyond the bundle's own env files and mounts. */
interface ComposeService extends BundleService {
  image?: string;
  healthcheck?: { test?: unknown };
  labels?: unknown;
}

/** What every check reads: the bundle's files (as a provision uploads them) and the parsed compose file. */
interface Context {
  files: ReadonlyMap<string, string>;
  services: Record<string, ComposeService>;
  composeDoc: unknown;
  composeLine: (path: readonly (string | number)[]) => number | undefined;
  problems: BundleProblem[];
}

/** check-bundle on a local directory: exactly the files a provision would upload. */
export async function checkBundle(dir: string): Promise<BundleProblem[]> {
  // The host-generated files are rendered there, not read here.
  return bundleProblems(uploadedText(await readLocalBundle(dir, isHostGenerated)));
}

/** The files of an upload as check-bundle reads them: text by path, the host-generated ones left out. */
export function uploadedText(files: readonly BundleFile[]): Map<string, string> {
  return new Map(files.filter((f) => !isHostGenerated(f.path)).map((f) => [f.path, String(f.content)]));
}

/** One problem as the commands print it: `file:line: [check] problem`, then the fix. */
export function formatBundleProblem(p: BundleProblem): string {
  return `${p.file}${p.line ? `:${p.line}` : ''}: [${p.check}] ${p.problem}\n    fix: ${p.fix}`;
}

/**
 * The gate provision-bifrost and bifrost-bootstrap pass before anything is uploaded or started: every
 * problem check-bundle finds, in one InputError (exit 2), or nothing.
 */
export function requireSoundBundle(problems: readonly BundleProblem[], where: string): void {
  if (problems.length === 0) return;
  throw new InputError(
    `nothing done: the bundle ${where} fails check-bundle (${problems.length} problem(s)):\n${problems
      .map((p) => formatBundleProblem(p).replace(/^/gm, '  '))
      .join('\n')}`,
    'fix each as its line says (cloud/bifrost, then `just bifrost-check-bundle`), then run again',
  );
}

/** Files the host alone holds: never part of the bundle the check reads. */
const HOST_ONLY = (rel: string) => isHostGenerated(rel) || rel === MANIFEST;
/** A bundle is a dozen small text files; anything beyond these bounds is not one we uploaded. */
const HOST_BUNDLE_LIMITS = { files: 200, bytes: 1024 * 1024 };
const LIST_SCRIPT = `cd "$1" && find . -type f -size -${HOST_BUNDLE_LIMITS.bytes / 1024}k -print0 | head -c 1000000`;

/**
 * The bundle as it sits on the host (bifrost-bootstrap runs there): its non-generated files, listed
 * NUL-separated and read through the executor. Names from the host are validated as upload paths; a name
 * no upload writes is ignored, and the listing is bounded in count and size.
 */
export async function readHostBundle(executor: Executor, dir: string): Promise<Map<string, string>> {
  const listed = await executor.run({ argv: ['sh', '-c', LIST_SCRIPT, 'sh', dir], timeoutMs: 60_000 });
  if (listed.exitCode !== 0) {
    throw new InputError(
      `cannot read the bundle ${dir} on ${executor.where}: ${listed.timedOut ? 'the listing timed out' : listed.stderr.trim() || `exit ${listed.exitCode}`}`,
      'give the bundle directory with --dir, or upload it first (just bifrost-up)',
    );
  }
  const paths = listed.stdout
    .split('\0')
    .map((r) => (r.startsWith('./') ? r.slice(2) : ''))
    .filter((rel) => rel && !bundlePathProblem(rel) && !HOST_ONLY(rel))
    .sort()
    .slice(0, HOST_BUNDLE_LIMITS.files);
  const files = new Map<string, string>();
  for (const rel of paths) {
    const text = await executor.files.readFile(`${dir}/${rel}`);
    if (text !== undefined) files.set(rel, text);
  }
  return files;
}

/**
 * Every check on the bundle's files (relative path → text), with no host and no secret. `plan` is the
 * engine's (another only to show that a defect in the plan's own graph is found).
 */
export async function bundleProblems(
  files: ReadonlyMap<string, string>,
  plan: readonly PlanStep[] = BIFROST_PLAN,
): Promise<BundleProblem[]> {
  const problems: BundleProblem[] = [];
  const composeText = files.get(COMPOSE);
  if (composeText === undefined) {
    return [
      {
        check: 'plan-service',
        file: COMPOSE,
        problem: 'the bundle has no compose file',
        fix: `add ${COMPOSE}`,
      },
    ];
  }
  let composeDoc: { services?: Record<string, ComposeService> };
  try {
    composeDoc = (parse(composeText, { merge: true }) ?? {}) as typeof composeDoc;
  } catch (err) {
    const problem = `not valid YAML: ${(err as Error).message.split('\n')[0]}`;
    return [{ check: 'plan-service', file: COMPOSE, problem, fix: 'fix the YAML' }];
  }
  const ctx: Context = {
    files,
    services: composeDoc.services ?? {},
    composeDoc,
    composeLine: yamlLineFinder(composeText),
    problems,
  };
  checkPlan(ctx);
  checkTemplates(ctx);
  checkImages(ctx);
  checkAcme(ctx);
  checkAgentHealthcheck(ctx);
  checkComposeVariables(ctx);
  await checkServiceInputs(ctx);
  checkReverseProxy(ctx, checkTraefik(ctx));
  checkProxyToken(ctx, plan);
  checkStepGraph(ctx, plan);
  return problems;
}

const PLAN_FILE = 'scripts/lib/bifrost/plan.ts';

/** Whether step `id` waits for `target`, directly or through the steps it waits for. */
function waitsFor(plan: readonly PlanStep[], id: string, target: string, seen = new Set<string>()): boolean {
  const step = plan.find((s) => s.id === id);
  if (!step || seen.has(id)) return false;
  seen.add(id);
  return step.after.some((a) => a === target || waitsFor(plan, a, target, seen));
}

/**
 * The proxy's token: a service that receives NB_PROXY_TOKEN waits for a step that mints it (without a
 * SOPS value the proxy would start with none and exit: REVERSE_PROXY_SETTINGS' root.go), and that step
 * runs `token create` as the pinned server image can: by the binary's full path (its directory is not on
 * PATH), with the flags it requires, in the server's container once the server is up.
 */
function checkProxyToken(ctx: Context, plan: readonly PlanStep[]): void {
  const push = (problem: string, fix: string, file = PLAN_FILE) =>
    ctx.problems.push({ check: 'proxy-token', file, problem, fix });
  const minters = plan.filter(
    (s): s is Extract<PlanStep, { kind: 'proxy-token' }> =>
      s.kind === 'proxy-token' && s.key === NB_PROXY_TOKEN,
  );
  const readers = SERVICE_SECRET_FILES.filter((f) =>
    f.entries.some((e) => e.from === NB_PROXY_TOKEN),
  ).flatMap((f) => f.services);
  for (const service of readers) {
    const step = plan.find((s) => s.kind === 'service' && s.service === service);
    if (!step || minters.some((m) => waitsFor(plan, step.id, m.id))) continue;
    push(
      `the ${step.id} step waits for no step minting ${NB_PROXY_TOKEN}: without one in the SOPS file ${service} starts with none and exits (${REVERSE_PROXY_SETTINGS.source})`,
      `add a 'proxy-token' step (key ${NB_PROXY_TOKEN}, after the server's step) to BIFROST_PLAN and put it in ${step.id}'s after`,
    );
  }
  for (const step of minters) {
    const def = ctx.services[step.container];
    const facts = def?.image ? pinnedImage(def.image) : undefined;
    if (!def || facts?.image !== PROXY_TOKEN_FACTS.image) {
      push(
        `the ${step.id} step runs in ${step.container}, which is not a ${PROXY_TOKEN_FACTS.image} service of ${COMPOSE}`,
        `run it in the service whose image is ${PROXY_TOKEN_FACTS.image}`,
      );
      continue;
    }
    const [bin = '', ...args] = step.command;
    const program = facts.programs.find((p) => p.notOnPath && (p.name === bin || p.notOnPath === bin));
    if (program?.notOnPath && bin !== program.notOnPath) {
      push(
        `the ${step.id} step runs \`${bin}\`, which is not on ${facts.image}:${facts.tag}'s PATH ("executable file not found in $PATH"): ${program.note ?? ''} (${program.source})`,
        `run ${program.notOnPath} by its full path, as NetBird's setup does (${PROXY_TOKEN_FACTS.source})`,
      );
    } else if (!program) {
      push(
        `the ${step.id} step runs \`${bin}\`, which the facts for ${facts.image}:${facts.tag} do not list`,
        `run the server binary by its full path (${PROXY_TOKEN_FACTS.source})`,
      );
    }
    const sub = PROXY_TOKEN_FACTS.subcommand;
    const missing = PROXY_TOKEN_FACTS.requiredFlags.filter((f) => !args.includes(f));
    if (sub.some((w, i) => args[i] !== w) || missing.length > 0) {
      push(
        `the ${step.id} step runs \`${step.command.join(' ')}\`; ${facts.image}:${facts.tag} mints a proxy token with \`${sub.join(' ')}\` and ${PROXY_TOKEN_FACTS.requiredFlags.join(', ')}${missing.length ? ` (missing: ${missing.join(', ')})` : ''}`,
        `use \`${program?.notOnPath ?? bin} ${sub.join(' ')} --name NAME --config FILE\` (${PROXY_TOKEN_FACTS.source})`,
      );
    }
    const config = args[args.indexOf('--config') + 1];
    const mounted = bundleMountsOf(def).some((m) => m.target === config);
    if (args.includes('--config') && !mounted) {
      push(
        `the ${step.id} step passes --config ${config ?? ''}, which no bundle file is mounted at in ${step.container}`,
        `pass the path ${COMPOSE} mounts the server's config at`,
      );
    }
    const server = plan.find((s) => s.kind === 'service' && s.service === step.container);
    if (server && !waitsFor(plan, step.id, server.id)) {
      push(
        `the ${step.id} step does not wait for ${server.id}: \`token create\` opens the server's store, which the server creates`,
        `add ${server.id} to its after`,
      );
    }
  }
}

/**
 * Dependencies follow what each step reads: a step waits for the ak-shell token step only when it reads
 * NB_IDP_MGMT_TOKEN (a rendered template naming it, or a service's env file taking it), and such a step
 * does wait for it. A step waiting for a token it never reads is kept down by an Authentik that fails.
 */
function checkStepGraph(ctx: Context, plan: readonly PlanStep[]): void {
  const tokenSteps = plan.filter((s) => s.kind === 'token').map((s) => s.id);
  const envReaders = new Set(
    SERVICE_SECRET_FILES.filter((f) => f.entries.some((e) => e.from === NB_IDP_MGMT_TOKEN)).flatMap(
      (f) => f.services,
    ),
  );
  for (const step of plan) {
    const template = step.kind === 'render' ? ctx.files.get(step.template) : undefined;
    const reads =
      (template !== undefined && placeholdersOf(template).includes(NB_IDP_MGMT_TOKEN)) ||
      (step.kind === 'service' && envReaders.has(step.service));
    for (const token of tokenSteps) {
      const waits = step.after.includes(token);
      if (reads && !waitsFor(plan, step.id, token)) {
        ctx.problems.push({
          check: 'step-graph',
          file: step.kind === 'render' ? step.template : PLAN_FILE,
          line: template === undefined ? undefined : lineOfText(template, `\${${NB_IDP_MGMT_TOKEN}}`),
          problem: `the ${step.id} step reads ${NB_IDP_MGMT_TOKEN} but does not wait for the ${token} step that mints it`,
          fix: `add ${token} to ${step.id}'s after in ${PLAN_FILE}`,
        });
      } else if (!reads && waits) {
        ctx.problems.push({
          check: 'step-graph',
          file: PLAN_FILE,
          problem: `the ${step.id} step waits for ${token}, but nothing it renders or receives names ${NB_IDP_MGMT_TOKEN}: an Authentik that fails to mint keeps it (and what follows it) down for nothing`,
          fix: `remove ${token} from ${step.id}'s after in ${PLAN_FILE}`,
        });
      }
    }
  }
}

/** Every compose service is started by a plan step or marked as started otherwise, and vice versa. */
function checkPlan(ctx: Context): void {
  const started = new Set(BIFROST_PLAN.flatMap((s) => (s.kind === 'service' ? [s.service] : [])));
  const byHand = new Set(NOT_STARTED_BY_PLAN.map((s) => s.service));
  for (const service of Object.keys(ctx.services)) {
    if (started.has(service) || byHand.has(service)) continue;
    ctx.problems.push({
      check: 'unstarted-service',
      file: COMPOSE,
      line: ctx.composeLine(['services', service]),
      problem: `service ${service} is defined, but no plan step starts it (the bootstrap never runs it: "bad gateway after redeploy")`,
      fix: `add a step for ${service} to BIFROST_PLAN in scripts/lib/bifrost/plan.ts, or list it in NOT_STARTED_BY_PLAN with who starts it`,
    });
  }
  for (const { message } of planServiceProblems(ctx.services)) {
    ctx.problems.push({
      check: 'plan-service',
      file: COMPOSE,
      problem: message,
      fix: `define the service in ${COMPOSE}, or remove the step from scripts/lib/bifrost/plan.ts`,
    });
  }
  for (const { service } of NOT_STARTED_BY_PLAN) {
    if (Object.hasOwn(ctx.services, service)) continue;
    ctx.problems.push({
      check: 'plan-service',
      file: COMPOSE,
      problem: `NOT_STARTED_BY_PLAN names ${service}, which ${COMPOSE} does not define`,
      fix: `remove ${service} from NOT_STARTED_BY_PLAN in scripts/lib/bifrost/plan.ts`,
    });
  }
}

/** The render steps' templates: each placeholder has a source, and each key is one the server reads. */
function checkTemplates(ctx: Context): void {
  const provided = new Set([...namesFor('bifrost-secrets-env').map((n) => n.name), ...HOST_MINTED]);
  for (const step of BIFROST_PLAN) {
    if (step.kind !== 'render') continue;
    const text = ctx.files.get(step.template);
    if (text === undefined) {
      ctx.problems.push({
        check: 'template-placeholder',
        file: step.template,
        problem: `the ${step.id} step renders ${step.template}, which is not in the bundle`,
        fix: `add ${step.template}`,
      });
      continue;
    }
    for (const name of new Set(placeholdersOf(text))) {
      const line = lineOfText(text, `\${${name}}`);
      if (!provided.has(name)) {
        ctx.problems.push({
          check: 'template-placeholder',
          file: step.template,
          line,
          problem: `\${${name}} has no source: no secret of the schema goes to .secrets.env under that name, and the engine does not mint it`,
          fix: `use one of ${CONFIG_PLACEHOLDERS.map((n) => `\${${n}}`).join(', ')}, or add the secret to scripts/lib/secrets/schema.ts (consumer bifrost-secrets-env) and to CONFIG_PLACEHOLDERS`,
        });
      } else if (!(CONFIG_PLACEHOLDERS as readonly string[]).includes(name)) {
        ctx.problems.push({
          check: 'template-placeholder',
          file: step.template,
          line,
          problem: `\${${name}} is not one of the engine's CONFIG_PLACEHOLDERS, so the render step refuses the template`,
          fix: `add ${name} to CONFIG_PLACEHOLDERS in scripts/lib/bifrost/plan.ts`,
        });
      }
    }
    checkConfigKeys(ctx, step.template, step.output, text);
  }
}

/** A rendered config's keys against what the image that mounts it reads (a non-strict YAML load ignores the rest). */
function checkConfigKeys(ctx: Context, template: string, output: string, text: string): void {
  const reader = Object.entries(ctx.services).find(([, s]) =>
    bundleMountsOf(s).some((m) => m.source === output),
  );
  if (!reader) return;
  const [service, def] = reader;
  const facts = NETBIRD_SERVER_CONFIG;
  if (def.image !== `${facts.image}:${facts.tag}`) {
    ctx.problems.push({
      check: 'config-key',
      file: template,
      problem: `${service} (${def.image}) reads ${output}, but the config-key facts are for ${facts.image}:${facts.tag}`,
      fix: `read combined/cmd/config.go at the new tag and update NETBIRD_SERVER_CONFIG in scripts/lib/bifrost/pinned-images.ts`,
    });
    return;
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    const problem = `not valid YAML: ${(err as Error).message.split('\n')[0]}`;
    ctx.problems.push({ check: 'config-key', file: template, problem, fix: 'fix the YAML' });
    return;
  }
  const line = yamlLineFinder(text);
  const known = facts.keys;
  const isKnown = (path: string) =>
    known.some((k) => k === path || k.startsWith(`${path}.`) || k.startsWith(`${path}[]`));
  const walk = (node: unknown, prefix: string, yamlPath: (string | number)[]): void => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (!isKnown(path)) {
        ctx.problems.push({
          check: 'config-key',
          file: template,
          line: line([...yamlPath, key]),
          problem: `${path} is not a key ${facts.image}:${facts.tag} reads: its loader ignores it without a word`,
          fix: `remove or rename it (the keys it reads: ${facts.source}, NETBIRD_SERVER_CONFIG in scripts/lib/bifrost/pinned-images.ts)`,
        });
      } else if (Array.isArray(value)) {
        for (const [i, v] of value.entries()) walk(v, `${path}[]`, [...yamlPath, key, i]);
      } else {
        walk(value, path, [...yamlPath, key]);
      }
    }
  };
  walk(doc, '', []);
  checkOwner(ctx, template, doc, line);
  const server = ((doc as { server?: unknown } | null)?.server ?? {}) as Record<string, unknown>;
  for (const required of facts.required) {
    if (server[required.replace(/^server\./, '')] !== undefined) continue;
    ctx.problems.push({
      check: 'config-key',
      file: template,
      problem: `${required} is missing: ${facts.image}:${facts.tag} refuses to start without it`,
      fix: `set ${required} (${facts.source}, Validate)`,
    });
  }
}

/** The .secrets.env name of the owner's password hash: the only value server.auth.owner.password may take. */
const OWNER_HASH = hashedNames('bifrost-secrets-env').find((h) => h.key === 'NB_OWNER_PASSWORD')?.name;

/** An email address as people write one: local@domain, the domain dotted labels; no spaces or placeholders. */
const EMAIL =
  /^[^\s@"'<>(),;:\\[\]{}$]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

/**
 * NetBird's first admin is seeded: without server.auth.owner the pinned server offers POST /setup,
 * unauthenticated, until an admin exists, so whoever reaches it first after the boot owns the mesh
 * (netbirdio/netbird@v0.66.0:management/server/instance/manager.go loadSetupRequired,
 * management/server/http/handlers/instance/instance_handler.go). The password must be the bcrypt hash: a
 * plain password is stored as the hash and the owner never logs in (netbirdio/netbird#7169).
 */
function checkOwner(
  ctx: Context,
  template: string,
  doc: unknown,
  line: (path: readonly (string | number)[]) => number | undefined,
): void {
  const hash = `\${${OWNER_HASH}}`;
  const auth = (doc as { server?: { auth?: { owner?: unknown } } } | null)?.server?.auth;
  const owner = auth?.owner as { email?: unknown; password?: unknown } | null | undefined;
  const problem = (at: (string | number)[], text: string, fix: string) =>
    ctx.problems.push({ check: 'owner', file: template, line: line(at), problem: text, fix });
  if (!owner || typeof owner !== 'object') {
    problem(
      ['server', 'auth'],
      "server.auth.owner is missing: NetBird's unauthenticated /setup then makes whoever reaches it first the mesh's owner",
      `add server.auth.owner with email: "<the admin's address>" and password: "${hash}"`,
    );
    return;
  }
  if (typeof owner.email !== 'string' || !EMAIL.test(owner.email)) {
    problem(
      ['server', 'auth', 'owner', 'email'],
      'server.auth.owner.email is not an email address: the owner logs in with it',
      `set it once to the admin's address, e.g. email: "admin@example.org"`,
    );
  }
  if (owner.password !== hash) {
    problem(
      ['server', 'auth', 'owner', 'password'],
      `server.auth.owner.password is not "${hash}": anything else is no bcrypt hash of NB_OWNER_PASSWORD, and a plain password is stored as the hash, so the owner never logs in (netbirdio/netbird#7169)`,
      `set password: "${hash}" (provision-bifrost renders the hash into .secrets.env)`,
    );
  }
}

/** Shell words that are not programs the image must hold. */
const SHELL_BUILTINS = new Set(['exit', 'true', 'false', 'test', '[', 'echo', ':']);

/** Each service's image has a facts row, and its healthcheck runs only what that image has. */
function checkImages(ctx: Context): void {
  for (const [service, def] of Object.entries(ctx.services)) {
    if (!def.image) continue;
    const facts = pinnedImage(def.image);
    const at = (...path: string[]) => ctx.composeLine(['services', service, ...path]);
    if (!facts) {
      ctx.problems.push({
        check: 'image-facts',
        file: COMPOSE,
        line: at('image'),
        problem: `${service}: ${def.image} has no row in the pinned-image facts, so nothing says what it holds`,
        fix: `read the image's sources at that tag and add (or update) its row in scripts/lib/bifrost/pinned-images.ts`,
      });
      continue;
    }
    const commands = healthcheckCommands(def.healthcheck?.test);
    const image = `${facts.image}:${facts.tag}`;
    const has =
      facts.programs
        .filter((p) => p.present)
        .map((p) => p.name)
        .join(', ') || 'none known';
    for (const argv of commands) {
      const [name, sub, ...rest] = argv as [string, string?, ...string[]];
      if (SHELL_BUILTINS.has(name)) continue;
      const problem = (text: string, fix: string) =>
        ctx.problems.push({
          check: 'healthcheck',
          file: COMPOSE,
          line: at('healthcheck', 'test'),
          problem: `${service}: ${text}`,
          fix,
        });
      const program = facts.programs.find((p) => p.name === name);
      if (!program) {
        problem(
          `the healthcheck runs ${name}, which the facts for ${image} do not list`,
          `confirm ${name} is in ${image} at the source and add a row to scripts/lib/bifrost/pinned-images.ts, or use a program it lists (${has})`,
        );
        continue;
      }
      if (!program.present) {
        problem(
          `the healthcheck runs ${name}, which ${image} does not have (${program.note ?? program.source}), so it never turns healthy`,
          `use a program the image has (${has}), or a check that needs none`,
        );
        continue;
      }
      const accepted = sub === undefined ? undefined : program.flags?.[sub];
      for (const flag of accepted
        ? rest.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0] as string)
        : []) {
        if (accepted?.includes(flag)) continue;
        const later = program.addedLater?.[flag];
        problem(
          `\`${name} ${sub}\` has no ${flag} flag in ${image}${later ? ` (added in ${later})` : ''}, so the healthcheck always fails`,
          later
            ? `drop ${flag} (at ${facts.tag} \`${name} ${sub}\` alone exits 0 when the daemon answers), or pin a release that has it`
            : `use a flag \`${name} ${sub}\` has at ${facts.tag}`,
        );
      }
      if (program.needsStaticKey && !mountedConfigHas(ctx, def, program.needsStaticKey)) {
        problem(
          `\`${argv.join(' ')}\` needs \`${program.needsStaticKey}\` in the static config, which no file mounted into ${service} sets`,
          `add \`${program.needsStaticKey}: {}\` to the service's static config (${program.source})`,
        );
      }
    }
  }
}

/** Each ACME resolver in a static config mounted into a Traefik service: its account email, its DNS challenge keys. */
function checkAcme(ctx: Context): void {
  const seen = new Set<string>();
  for (const def of Object.values(ctx.services)) {
    if (pinnedImage(def.image ?? '')?.image !== 'traefik') continue;
    for (const { source } of bundleMountsOf(def)) {
      const text = ctx.files.get(source);
      if (text === undefined || seen.has(source)) continue;
      seen.add(source);
      let doc: unknown;
      try {
        doc = parse(text);
      } catch {
        continue;
      }
      const line = yamlLineFinder(text);
      for (const f of acmeFindings(doc)) {
        ctx.problems.push({
          check: 'traefik-acme',
          file: source,
          line: line(f.path),
          problem: f.problem,
          fix: f.fix,
        });
      }
    }
  }
}

/** The NetBird agent's healthcheck fails unless the agent is connected to management (status-healthcheck.ts). */
function checkAgentHealthcheck(ctx: Context): void {
  const facts = NETBIRD_CLIENT_STATUS;
  for (const [service, def] of Object.entries(ctx.services)) {
    if (def.image !== `${facts.image}:${facts.tag}`) continue;
    const problem = agentHealthcheckProblem(def.healthcheck?.test);
    if (!problem) continue;
    ctx.problems.push({
      check: 'agent-healthcheck',
      file: COMPOSE,
      line: ctx.composeLine(['services', service, 'healthcheck', 'test']),
      problem: `${service}: ${problem}`,
      fix: `test on ${facts.field}: ["CMD-SHELL", ${JSON.stringify(facts.healthcheck)}] (${facts.source})`,
    });
  }
}

/**
 * The argv of each program a healthcheck runs: `CMD` as given; `CMD-SHELL` (or a string) runs
 * `/bin/sh -c`, so `sh` itself first, then the first word of each command of the line.
 */
function healthcheckCommands(test: unknown): string[][] {
  const [kind, ...rest] =
    typeof test === 'string' ? ['CMD-SHELL', test] : Array.isArray(test) ? test.map(String) : [];
  if (kind === 'CMD') return rest.length > 0 ? [rest] : [];
  if (kind !== 'CMD-SHELL') return [];
  const line = rest.join(' ');
  return [
    ['sh'],
    ...line
      .split(/\|\||&&|[;|]/)
      .map((c) => c.trim().split(/\s+/))
      .filter((w) => w[0]),
  ];
}

/** Whether a YAML file bind-mounted from the bundle into the service has `key` at its top level. */
function mountedConfigHas(ctx: Context, def: ComposeService, key: string): boolean {
  return bundleMountsOf(def).some(({ source }) => {
    const text = ctx.files.get(source);
    try {
      return text !== undefined && Object.hasOwn((parse(text) ?? {}) as object, key);
    } catch {
      return false;
    }
  });
}

/**
 * compose interpolates `${VAR}` from `.env` only (env_file feeds containers, not interpolation), and the
 * engine renders `.env` from the schema's bifrost-dot-env names: any other name is empty on the host.
 */
function checkComposeVariables(ctx: Context): void {
  const provided = new Set(namesFor('bifrost-dot-env').map((n) => n.name));
  const text = ctx.files.get(COMPOSE) ?? '';
  const seen = new Set<string>();
  for (const { name, op } of composeVariables(ctx.composeDoc)) {
    // A default (`:-`, `-`) is a source of its own.
    if (provided.has(name) || op.includes('-') || seen.has(name)) continue;
    seen.add(name);
    ctx.problems.push({
      check: 'compose-variable',
      file: COMPOSE,
      line: lineOfText(text, `\${${name}`) ?? lineOfText(text, `$${name}`),
      problem: `\${${name}} is interpolated by compose, but .env never sets it (only the schema's bifrost-dot-env names are rendered there)`,
      fix: `add ${name} to scripts/lib/secrets/schema.ts with consumer bifrost-dot-env, give it a default (\${${name}:-…}), pass it through env_file instead, or write $$ for a variable of the container's shell`,
    });
  }
}

/** env_file and ./ bind mounts: each is in the bundle or rendered by the engine (the upload's own rule). */
async function checkServiceInputs(ctx: Context): Promise<void> {
  for (const { service, message } of await serviceInputProblems(memoryBundle(ctx.files), ctx.files)) {
    ctx.problems.push({
      check: 'service-input',
      file: COMPOSE,
      line: service ? ctx.composeLine(['services', service]) : undefined,
      problem: message,
      fix: 'add the file to the bundle, have the engine render it (SERVICE_SECRET_FILES or a render step in plan.ts), or drop the reference',
    });
  }
}

/**
 * Traefik's routers, from the dynamic files its static config's file provider loads (through the
 * service's bind mounts) and from container labels: each names a defined service and has a rule v3 takes.
 */
function checkTraefik(ctx: Context): Routing {
  const routing: Routing = { routers: [], services: new Map() };
  const dynamicFiles = new Set<string>();
  for (const [service, def] of Object.entries(ctx.services)) {
    readLabels(service, def.labels, routing);
    const mounts = new Map(
      bundleMountsOf(def).flatMap((m) => (m.target ? [[m.target, m.source] as const] : [])),
    );
    for (const rel of mounts.values()) {
      const text = ctx.files.get(rel);
      let providers: { file?: { filename?: string; directory?: string } } | undefined;
      try {
        providers = text ? (parse(text) as { providers?: typeof providers } | null)?.providers : undefined;
      } catch {
        providers = undefined;
      }
      const file = providers?.file;
      if (!file) continue;
      for (const [target, src] of mounts) {
        const dirPrefix = file.directory ? `${file.directory.replace(/\/$/, '')}/` : undefined;
        if (target === file.filename || (dirPrefix && target.startsWith(dirPrefix))) dynamicFiles.add(src);
      }
    }
  }
  const lines = new Map<string, (path: readonly (string | number)[]) => number | undefined>([
    [COMPOSE, ctx.composeLine],
  ]);
  for (const file of dynamicFiles) {
    const text = ctx.files.get(file);
    if (text === undefined) continue;
    try {
      readDynamicConfig(file, text, routing);
      lines.set(file, yamlLineFinder(text));
    } catch (err) {
      const problem = `not valid YAML: ${(err as Error).message.split('\n')[0]}`;
      ctx.problems.push({ check: 'traefik-service', file, problem, fix: 'fix the YAML' });
    }
  }
  for (const router of routing.routers) {
    const line = lines.get(router.file)?.(router.path);
    const where = `${router.protocol} router ${router.name}`;
    const missing = undefinedService(router, routing);
    if (missing) {
      ctx.problems.push({
        check: 'traefik-service',
        file: router.file,
        line,
        problem: `${where}: ${missing}, so Traefik drops the router`,
        fix: `define ${router.service ?? 'a service'} under ${router.protocol}.services, or point the router at one that is`,
      });
    }
    for (const problem of ruleProblems(router)) {
      ctx.problems.push({
        check: 'traefik-rule',
        file: router.file,
        line: lines.get(router.file)?.([...router.path, 'rule']) ?? line,
        problem: `${where}: ${problem}`,
        fix: 'one argument per matcher: join alternatives with || (PathPrefix(`/a`) || PathPrefix(`/b`))',
      });
    }
  }
  return routing;
}

interface ComposeServiceNet extends ComposeService {
  container_name?: string;
  environment?: Record<string, unknown> | string[];
  networks?: unknown;
}

/**
 * The NetBird reverse proxy sits behind Traefik's TCP passthrough and has no port of its own, so its
 * settings must agree with Traefik's and compose's, or its domain is unreachable with no error at deploy
 * time: a passthrough exists; the PROXY protocol is on at both ends or at neither; the proxy trusts the
 * header from Traefik's fixed address (from any other source it is ignored, and the TLS handshake reads it
 * as garbage); a plain-HTTP management address comes with NB_PROXY_ALLOW_INSECURE=true; and every
 * NB_PROXY_* name is one the pinned proxy reads.
 */
function checkReverseProxy(ctx: Context, routing: Routing): void {
  const facts = REVERSE_PROXY_SETTINGS;
  const services = ctx.services as Record<string, ComposeServiceNet>;
  for (const [service, def] of Object.entries(services)) {
    if (def.image !== `${facts.image}:${facts.tag}`) continue;
    const { env, fileOf } = serviceEnvironment(ctx, def);
    const problem = (name: string | undefined, text: string, fix: string) => {
      const file = name ? (fileOf.get(name) ?? COMPOSE) : COMPOSE;
      const where = file === COMPOSE ? ctx.composeLine(['services', service]) : undefined;
      const line = name && file !== COMPOSE ? lineOfText(ctx.files.get(file) ?? '', `${name}=`) : where;
      ctx.problems.push({ check: 'reverse-proxy', file, line, problem: `${service}: ${text}`, fix });
    };
    for (const name of env.keys()) {
      if (!name.startsWith('NB_PROXY_') || facts.env.includes(name)) continue;
      problem(
        name,
        `${name} is not a setting ${facts.image}:${facts.tag} reads, so it is ignored`,
        `remove or rename it (the settings it reads: ${facts.source})`,
      );
    }
    const truthy = (name: string) => /^(1|t|true)$/i.test(env.get(name) ?? '');
    if (
      (env.get('NB_PROXY_MANAGEMENT_ADDRESS') ?? '').startsWith('http://') &&
      !truthy('NB_PROXY_ALLOW_INSECURE')
    ) {
      problem(
        'NB_PROXY_MANAGEMENT_ADDRESS',
        'the management address is plain http:// and NB_PROXY_ALLOW_INSECURE is not true, so the proxy never sends its token',
        `set NB_PROXY_ALLOW_INSECURE=true beside it (${facts.insecureSource})`,
      );
    }
    const names = new Set([service, def.container_name].filter(Boolean));
    const passthrough = routing.routers.filter((r) => {
      if (r.protocol !== 'tcp') return false;
      if (r.provider === 'docker') return r.path[1] === service;
      const backend = r.service ? routing.tcpBackends?.get(r.service.split('@')[0] as string) : undefined;
      return Boolean(backend?.addresses.some((a) => names.has(a.replace(/:\d+$/, ''))));
    });
    if (passthrough.length === 0) {
      problem(
        undefined,
        'no Traefik TCP router passes TLS through to it, and it publishes no port: its domain is unreachable',
        'add a tcp router (HostSNI(`*`), tls.passthrough) and a tcp service to it in the dynamic config, as traefik/dynamic.yml does',
      );
      continue;
    }
    const ppOn = truthy('NB_PROXY_PROXY_PROTOCOL');
    for (const router of passthrough) {
      const backend = router.service
        ? routing.tcpBackends?.get(router.service.split('@')[0] as string)
        : undefined;
      if (!backend) continue;
      if (backend.proxyProtocol !== undefined && !ppOn) {
        problem(
          'NB_PROXY_PROXY_PROTOCOL',
          `Traefik's tcp service ${router.service} sends a PROXY protocol header, and the proxy does not read one (NB_PROXY_PROXY_PROTOCOL is not true): every TLS handshake fails`,
          'set NB_PROXY_PROXY_PROTOCOL=true, or drop proxyProtocol from the tcp service',
        );
      } else if (backend.proxyProtocol === undefined && ppOn) {
        problem(
          'NB_PROXY_PROXY_PROTOCOL',
          `the proxy waits for a PROXY protocol header that Traefik's tcp service ${router.service} does not send`,
          "add `proxyProtocol: { version: 2 }` to the tcp service's loadBalancer, or set NB_PROXY_PROXY_PROTOCOL=false",
        );
      }
    }
    if (!ppOn) continue;
    const traefikIps = Object.values(services)
      .filter((s) => s.image?.startsWith('traefik:'))
      .flatMap((s) => fixedAddresses(s.networks));
    const trusted = (env.get('NB_PROXY_TRUSTED_PROXIES') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (traefikIps.length === 0) {
      problem(
        'NB_PROXY_TRUSTED_PROXIES',
        'Traefik has no fixed address on its network, so NB_PROXY_TRUSTED_PROXIES cannot name it',
        `give the traefik service an ipv4_address and list it in NB_PROXY_TRUSTED_PROXIES (${facts.proxyProtocolSource})`,
      );
    } else if (!traefikIps.some((ip) => trusted.some((range) => inRange(ip, range)))) {
      problem(
        'NB_PROXY_TRUSTED_PROXIES',
        `NB_PROXY_TRUSTED_PROXIES (${trusted.join(',') || 'empty'}) does not include Traefik's address ${traefikIps.join(', ')}: the proxy ignores its PROXY header and the TLS handshake fails`,
        `list ${traefikIps[0]} in NB_PROXY_TRUSTED_PROXIES (${facts.proxyProtocolSource})`,
      );
    }
  }
}

/** A service's environment as the container gets it from the bundle (env_file in order, then environment). */
function serviceEnvironment(
  ctx: Context,
  def: ComposeServiceNet,
): { env: Map<string, string>; fileOf: Map<string, string> } {
  const env = new Map<string, string>();
  const fileOf = new Map<string, string>();
  for (const file of envFilesOf(def)) {
    const text = ctx.files.get(file);
    if (text === undefined) continue;
    for (const [k, v] of parseEnvFile(text)) {
      env.set(k, v);
      fileOf.set(k, file);
    }
  }
  const environment = def.environment ?? {};
  const pairs = Array.isArray(environment)
    ? environment.map((e) => String(e).split(/=(.*)/s).slice(0, 2) as [string, string?])
    : Object.entries(environment).map(
        ([k, v]) => [k, v === null || v === undefined ? undefined : String(v)] as const,
      );
  for (const [k, v] of pairs) {
    if (v === undefined) continue;
    env.set(k, v);
    fileOf.set(k, COMPOSE);
  }
  return { env, fileOf };
}

/** The ipv4_address of each network a compose service joins with one. */
function fixedAddresses(networks: unknown): string[] {
  if (!networks || typeof networks !== 'object' || Array.isArray(networks)) return [];
  return Object.values(networks as Record<string, { ipv4_address?: unknown } | null>).flatMap((n) =>
    typeof n?.ipv4_address === 'string' ? [n.ipv4_address] : [],
  );
}

/** Whether an IPv4 address is `range` (an address or a CIDR prefix). */
function inRange(ip: string, range: string): boolean {
  const toInt = (a: string) =>
    a
      .split('.')
      .reduce(
        (n, octet) => (n === undefined || !/^\d{1,3}$/.test(octet) ? undefined : n * 256 + Number(octet)),
        0 as number | undefined,
      );
  const [base = '', bitsText] = range.split('/');
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const a = toInt(ip);
  const b = toInt(base);
  if (a === undefined || b === undefined || !(bits >= 0 && bits <= 32) || base.split('.').length !== 4)
    return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}
