/**
 * A throw-away copy of the Bifrost bundle (cloud/bifrost/) for tests, with the two files provisioning
 * uploads beside it: `.secrets.env` (the engine's input) and `.env` (compose's ${VAR} interpolation).
 * Everything else the engine renders (env/<service>.env, netbird/config.yaml) is left for the code under
 * test, so a copy never carries a developer's generated files from the checkout.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { parseDocument } from 'yaml';

export const BUNDLE_SOURCE = resolve(import.meta.dirname, '..', '..', 'cloud', 'bifrost');

/** Generated on the VPS or the laptop and ignored by git (see .gitignore): never copied. */
const GENERATED = [
  /^\.env$/,
  /^\.secrets\.env$/,
  /^env\/[^/]+\.env$/,
  /^netbird\/config\.yaml$/,
  /^\.bifrost-state\.json$/,
];

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Plain `KEY=value` lines: the format provisioning writes and compose v1 / v2 both read verbatim. */
function envFileText(values: Record<string, string>, what: string): string {
  return Object.entries(values)
    .map(([k, v]) => {
      if (!KEY.test(k)) throw new Error(`${what}: invalid key ${JSON.stringify(k)}`);
      // Compose reads one line per variable and does not unescape: a newline would split the value.
      if (/[\r\n]/.test(v)) throw new Error(`${what}: the value of ${k} contains a line break`);
      return `${k}=${v}\n`;
    })
    .join('');
}

/** Created with mode 0600 from the start (not chmod-ed later), under a temporary name, then renamed. */
async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/**
 * Copies cloud/bifrost/ into `dir` (created if needed) and writes `.secrets.env` and `.env` there.
 *
 * `healthcheckIntervalSeconds` (opt-in, off by default) rewrites every healthcheck `interval` in the COPY's
 * compose file. Docker 20.10 runs a container's first check only after one full interval (10 s to 30 s in
 * the bundle; `start_interval` needs Docker 25), so tests that only care about ordering can shorten it.
 * Nothing else in the copy changes; a test that checks the bundle as shipped leaves it off.
 */
export async function prepareBundleCopy(
  dir: string,
  secrets: { secretsEnv: Record<string, string>; dotEnv: Record<string, string> },
  opts: { healthcheckIntervalSeconds?: number } = {},
): Promise<{ dir: string; composeFile: string }> {
  await mkdir(dir, { recursive: true });
  await cp(BUNDLE_SOURCE, dir, {
    recursive: true,
    filter: (src) => {
      const rel = relative(BUNDLE_SOURCE, src).split(sep).join('/');
      return !GENERATED.some((re) => re.test(rel));
    },
  });
  // Never leave a stale generated file from an earlier use of the same dir.
  for (const name of ['.secrets.env', '.env']) await rm(join(dir, name), { force: true });
  await writePrivate(join(dir, '.secrets.env'), envFileText(secrets.secretsEnv, '.secrets.env'));
  await writePrivate(join(dir, '.env'), envFileText(secrets.dotEnv, '.env'));

  const composeFile = join(dir, 'docker-compose.yml');
  if (opts.healthcheckIntervalSeconds !== undefined) {
    // The Document API keeps comments, anchors and merge keys as they are.
    const doc = parseDocument(await readFile(composeFile, 'utf8'));
    const services = doc.get('services', true) as { items?: { key: { value?: unknown } }[] } | undefined;
    for (const item of services?.items ?? []) {
      const name = String(item.key.value);
      if (doc.hasIn(['services', name, 'healthcheck'])) {
        doc.setIn(['services', name, 'healthcheck', 'interval'], `${opts.healthcheckIntervalSeconds}s`);
      }
    }
    await writeFile(composeFile, doc.toString({ flowCollectionPadding: false, lineWidth: 0 }));
  }
  return { dir, composeFile };
}
