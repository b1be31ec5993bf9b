/**
 * The bundle directory on the host, read and written through the executor's file operations (local
 * disk or SFTP): the compose file, the env files, the rendered files and the engine's own state.
 */
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import { InputError } from '../core/errors.ts';
import type { FileOps } from '../exec/executor.ts';
import { parseEnvFile } from './env-file.ts';
import { DOT_ENV } from './host-state.ts';
import { bundlePathProblem } from './upload.ts';

/** The engine's memory between runs: a hash of each service's inputs when it was last started. */
export const STATE_FILE = '.bifrost-state.json';

/**
 * Files the host generates or holds secrets in: never taken from a local checkout, by provisioning or by
 * `bifrost verify`, which must see the bundle exactly as provisioning does.
 */
const HOST_GENERATED = [
  /^\.secrets\.env$/,
  /^\.env$/,
  /^env\/.*\.env$/,
  /^netbird\/config\.yaml$/,
  /^\.bifrost-state\.json$/,
  /^\.deployed\.json$/,
];

export function isHostGenerated(rel: string): boolean {
  return HOST_GENERATED.some((re) => re.test(rel));
}

export interface BundleState {
  /** `definition` (definitionHash) is absent in states written before it was recorded. */
  services: Record<string, { inputs: string; definition?: string }>;
}

export interface ComposeService {
  env_file?: string | string[];
  volumes?: unknown[];
}

/** A service's env files, relative to the bundle, in compose's order. */
export function envFilesOf(def: ComposeService): string[] {
  return [def.env_file ?? []].flat().map((f) => (typeof f === 'string' ? f.replace(/^\.\//, '') : f));
}

/**
 * A service's bind mounts from the bundle (`./` sources, short or long syntax): the path relative to the
 * bundle and where the container sees it.
 */
export function bundleMountsOf(def: ComposeService): { source: string; target?: string }[] {
  return (def.volumes ?? []).flatMap((v) => {
    const [source, target] =
      typeof v === 'string'
        ? v.split(':')
        : (v as { type?: string }).type === 'bind'
          ? [(v as { source?: string }).source, (v as { target?: string }).target]
          : [];
    return source?.startsWith('./') ? [{ source: source.slice(2), target }] : [];
  });
}

export class Bundle {
  private compose?: Promise<Record<string, ComposeService>>;
  private dotEnv?: Promise<string | undefined>;
  /** Files whose content the caller holds (it just wrote them there), by relative path. */
  private readonly held: Map<string, string>;

  /**
   * `held`: files the caller has just written to the bundle, with their content: read from here rather
   * than back from the host, and kept current as they are written again.
   */
  constructor(
    readonly files: FileOps,
    readonly dir: string,
    held: Readonly<Record<string, string>> = {},
  ) {
    this.held = new Map(Object.entries(held));
  }

  /**
   * `rel` comes from files on the host (the compose file's env files and mounts): only a plain relative
   * path inside the bundle is ever read or written (the rule of upload.ts, bundlePathProblem).
   */
  path(rel: string): string {
    const problem = bundlePathProblem(rel);
    if (problem) {
      throw new InputError(
        `${JSON.stringify(rel)} is not a file inside ${this.dir} (${problem})`,
        'the compose file must name env files and mounts inside the bundle',
      );
    }
    return `${this.dir}/${rel}`;
  }

  async read(rel: string): Promise<string | undefined> {
    const path = this.path(rel);
    return this.held.get(rel) ?? this.files.readFile(path);
  }

  /** Writes (0600, atomically) only when the content differs; says whether it wrote. */
  async writeIfChanged(rel: string, content: string): Promise<boolean> {
    if ((await this.read(rel)) === content) return false;
    await this.files.writeFileAtomic(this.path(rel), content, 0o600);
    if (this.held.has(rel)) this.held.set(rel, content);
    return true;
  }

  /** The compose file's services, read and parsed once (concurrent callers share the one read). */
  services(): Promise<Record<string, ComposeService>> {
    this.compose ??= this.readServices();
    // A failed read is not kept: the next caller reads again.
    this.compose.catch(() => {
      this.compose = undefined;
    });
    return this.compose;
  }

  private async readServices(): Promise<Record<string, ComposeService>> {
    const text = await this.read('docker-compose.yml');
    if (text === undefined) {
      throw new InputError(
        `${this.path('docker-compose.yml')} not found`,
        'upload the bundle first (provision-bifrost)',
      );
    }
    const doc = parse(text, { merge: true }) as { services?: Record<string, ComposeService> };
    return doc.services ?? {};
  }

  /**
   * The files a service reads at start: its env files and the files bind-mounted from the bundle.
   * compose does not notice a changed bind-mounted file, so the engine tracks these itself.
   */
  async inputsOf(service: string): Promise<string[]> {
    const def = (await this.services())[service] ?? {};
    return [...envFilesOf(def), ...bundleMountsOf(def).map((m) => m.source)];
  }

  /** A digest of the service's inputs as they are now (a directory mount counts by its path only). */
  async inputsHash(service: string): Promise<string> {
    const h = createHash('sha256');
    for (const rel of await this.inputsOf(service)) {
      const content = await this.read(rel).catch(() => undefined);
      h.update(`${rel}\0${content ?? '<none>'}\0`);
    }
    return h.digest('hex');
  }

  /**
   * A digest of what compose builds the service's container from: its definition in the compose file and
   * the values from .env of the `${VAR}`s it uses (compose's config hash covers the interpolated
   * definition, so a variable only another service uses changes nothing here). With inputsHash unchanged
   * too, `compose up` would change nothing, so a running, healthy container needs no docker call at all.
   */
  async definitionHash(service: string): Promise<string> {
    const def = (await this.services())[service] ?? {};
    // Read once per bundle (over SSH each read is a round trip), like the compose file: no step writes it.
    this.dotEnv ??= this.read(DOT_ENV).catch(() => undefined);
    const dotEnv = parseEnvFile((await this.dotEnv) ?? '');
    const used = [...new Set(composeVariables(def).map((v) => v.name))].sort();
    const h = createHash('sha256').update(JSON.stringify(def));
    for (const name of used) h.update(`\0${name}=${dotEnv.get(name) ?? '\0unset'}`);
    return h.digest('hex');
  }

  /** Whether the compose file gives the service a healthcheck; undefined: it does not say (the image may). */
  async hasHealthcheck(service: string): Promise<boolean | undefined> {
    const check = (
      (await this.services())[service] as { healthcheck?: { disable?: boolean; test?: unknown } }
    )?.healthcheck;
    if (!check) return undefined;
    const test = Array.isArray(check.test) ? check.test[0] : check.test;
    return !(check.disable === true || test === 'NONE');
  }

  async loadState(): Promise<BundleState> {
    const text = await this.read(STATE_FILE);
    try {
      return text ? (JSON.parse(text) as BundleState) : { services: {} };
    } catch {
      return { services: {} };
    }
  }

  private saving: Promise<unknown> = Promise.resolve();

  /**
   * Saves are queued and each serialises the state when its turn comes: steps finishing at the same
   * time cannot overwrite a newer state with an older one.
   */
  saveState(state: BundleState): Promise<void> {
    const next = this.saving.then(() =>
      this.writeIfChanged(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`),
    );
    this.saving = next.catch(() => {});
    return next.then(() => {});
  }
}

/** `${NAME:?…}` / `${NAME?…}`: compose refuses to start anything when NAME is unset (`:?` also empty). */
const COMPOSE_VAR = /(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+]?)|([A-Za-z_][A-Za-z0-9_]*))/g;

/**
 * The `${NAME…}` and `$NAME` compose interpolates anywhere in `node` (keys and values; `$$` is an
 * escape), with the operator after the name: `:?`/`?` required, `:-`/`-` defaulted, `` plain.
 */
export function composeVariables(node: unknown): { name: string; op: string }[] {
  const out: { name: string; op: string }[] = [];
  const visit = (n: unknown): void => {
    if (typeof n === 'string') {
      for (const [, braced, op, bare] of n.matchAll(COMPOSE_VAR)) {
        out.push({ name: (braced ?? bare) as string, op: op ?? '' });
      }
    } else if (n && typeof n === 'object') {
      for (const [key, value] of Object.entries(n)) {
        visit(key);
        visit(value);
      }
    }
  };
  visit(node);
  return out;
}
