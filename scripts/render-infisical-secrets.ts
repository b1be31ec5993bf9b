/**
 * render-infisical-secrets: the runtime tier's InfisicalSecret CRs (design page "Runtime Secrets
 * (Infisical)"), one per app of cloud/infisical/apps.yaml, and a check that rendered output holds no
 * Secret resources. Reads and writes files only; applying is Argo CD's job.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { COMMON_OPTIONS, defineCommand, type Flags, runMain } from './lib/cli.ts';
import { EXIT } from './lib/errors.ts';
import { LocalExecutor } from './lib/exec/local.ts';
import { DEFAULT_APPS_FILE, loadAppsTable, type RuntimeApp } from './lib/infisical/apps.ts';
import { type CheckReport, checkManifests, formatOffence } from './lib/infisical/check.ts';
import { GENERATED_MARK, type RenderedFile, renderFiles, renderStream } from './lib/infisical/render.ts';
import type { Output } from './lib/output.ts';

const USAGE = 'node --import tsx scripts/render-infisical-secrets.ts';

const OPTIONS = {
  ...COMMON_OPTIONS,
  apps: { type: 'string' },
  out: { type: 'string' },
  check: { type: 'string' },
} as const;

export const command = defineCommand({
  name: USAGE,
  synopsis: '[options]',
  description: `Renders one InfisicalSecret (secrets.infisical.com/v1alpha1) per app of the runtime apps table:
each syncs the Infisical folder \`path\` into the Secret \`secret\` in \`namespace\`, carries
argocd.argoproj.io/sync-options: ServerSideApply=false and uses only fields the CRD defines.
Output is deterministic: rendering twice gives the same bytes.
Without --out or --check the CRs are printed on stdout as one multi-document YAML stream.`,
  options: OPTIONS,
  optionsHelp: `  --apps FILE          the apps table (default ${DEFAULT_APPS_FILE})
  --out DIR            write one <namespace>-<name>.yaml per app into DIR (created when missing; each
                       file written atomically, and only when its content changed) instead of printing
  --check DIR          check the manifests under DIR (every *.yaml, *.yml, *.json, all documents; dot-
                       directories and node_modules skipped): fails when any document is a Secret or an
                       InfisicalSecret lacks the ServerSideApply=false annotation. With --out, runs after
                       writing; without it, nothing is rendered.`,
  exits: {
    failed: 'failed while writing',
    badInput:
      'bad input (a table problem, each listed with its app and field; or --check found offending files, each listed)',
  },
  run: (flags, _positionals, out) => render(flags, out),
});

export const main = command.main;

async function render(flags: Flags<typeof OPTIONS>, out: Output): Promise<number> {
  if (flags.check !== undefined && flags.out === undefined) return runCheck(flags.check, out, {});

  const appsFile = flags.apps ?? DEFAULT_APPS_FILE;
  const apps = await loadAppsTable(appsFile);
  // The source named in each file's header: relative, so output does not depend on the checkout path.
  const source = relative(process.cwd(), resolve(appsFile)) || appsFile;
  const summary = { apps: apps.map(describeApp) };

  if (flags.out === undefined) {
    const yaml = renderStream(apps, source);
    if (flags.json) out.result({ ok: true, ...summary, yaml });
    else out.data(yaml);
    return EXIT.ok;
  }
  const written = await writeFiles(flags.out, renderFiles(apps, source), out);
  const result = { ...summary, out: flags.out, files: written };
  if (flags.check !== undefined) return runCheck(flags.check, out, result);
  out.result({ ok: true, ...result });
  return EXIT.ok;
}

function describeApp(app: RuntimeApp) {
  return {
    app: app.id,
    title: app.title,
    namespace: app.namespace,
    name: app.name,
    secret: app.secret,
    path: app.path,
    keys: app.keys,
    auth: app.auth.method,
  };
}

async function writeFiles(dir: string, files: RenderedFile[], out: Output) {
  await mkdir(dir, { recursive: true });
  const fileOps = new LocalExecutor().files;
  const written: { file: string; changed: boolean }[] = [];
  for (const { file, content } of files) {
    const path = join(dir, file);
    // Unchanged files keep their mtime, so `make`-style tools and git see no churn.
    const changed = (await fileOps.readFile(path)) !== content;
    if (changed) await fileOps.writeFileAtomic(path, content, 0o644);
    written.push({ file: path, changed });
    out.info(`${changed ? out.color.green('wrote    ') : out.color.dim('unchanged')}  ${path}`);
  }
  await warnStale(dir, new Set(files.map((f) => f.file)), out);
  out.info(`${files.length} InfisicalSecret(s) in ${dir}`);
  return written;
}

/**
 * Files this command wrote earlier for apps no longer in the table. Named, not deleted: removing a CR
 * from Git is what makes Argo CD prune it (and, with creationPolicy Owner, its Secret), so it should be
 * a reviewed change.
 */
async function warnStale(dir: string, current: Set<string>, out: Output): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    if (current.has(name) || !name.endsWith('.yaml')) continue;
    const text = await readFile(join(dir, name), 'utf8').catch(() => '');
    if (text.startsWith(GENERATED_MARK))
      out.warn(
        `${join(dir, name)} was rendered for an app no longer in the table; delete it if that is intended`,
      );
  }
}

async function runCheck(dir: string, out: Output, rendered: object): Promise<number> {
  const report: CheckReport = await checkManifests(dir);
  const counts = `${report.files} file(s), ${report.documents} document(s), ${report.infisicalSecrets} InfisicalSecret(s)`;
  if (report.offences.length > 0) {
    out.error(
      `--check ${dir}: ${report.offences.length} offence(s) in ${counts}:\n${report.offences
        .map((o) => `  ${formatOffence(o)}`)
        .join('\n')}`,
      'replace each Secret with an app row in cloud/infisical/apps.yaml (rendered as an InfisicalSecret); give hand-written InfisicalSecrets the annotation',
    );
    out.result({ ok: false, ...rendered, check: report, exitCode: EXIT.badInput });
    return EXIT.badInput;
  }
  if (report.files === 0) out.warn(`--check ${dir}: no *.yaml, *.yml or *.json files found`);
  out.info(out.color.green(`--check ${dir}: passed: ${counts}; no Secret resources`));
  out.result({ ok: true, ...rendered, check: report });
  return EXIT.ok;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMain((out) => main(process.argv.slice(2), out));
}
