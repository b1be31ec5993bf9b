/**
 * The operator of README's guide, for the journey tests: a repository of their own (the working directory
 * every command runs in, holding `.sops.yaml` and `secrets/bootstrap.sops.yaml`), an age key made by
 * `age-keygen`, a PATH with node and nothing else (no sops binary), and the guide's commands run as real
 * processes against one Bifrost host.
 *
 * After every command it checks what the guide promises of every command: no process it started is left
 * on the host (the sshd test user runs nothing, no `docker events` stream is open), and no secret value
 * (any value the journey set, generated or read back by decrypting, old values included) is in its output.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { decryptSopsFile } from '../../scripts/lib/secrets/sops/index.ts';
import { findLeaks } from '../helpers/bootstrap-fixture.ts';
import { eventually, processesOf, uidOf } from '../helpers/process.ts';
import { type CliRun, runScript } from '../helpers/run-cli.ts';
import { startScript, type WatchedRun } from '../helpers/watched-run.ts';
import { type SshdServer, sshCliArgs } from './sshd.ts';

/** The keys the guide sets by hand on day 1, and the two it sets after the first NetBird login. */
export const DAY_1_KEYS = [
  'HCLOUD_TOKEN',
  'PROXMOX_PASSWORD',
  'CLOUDFLARE_API_TOKEN',
  'AUTHENTIK_GITHUB_SECRET',
];
/** What the NetBird UI hands out after the first login; the proxy's token the bootstrap mints itself. */
export const DAY_2_KEYS = ['NB_BIFROST_SETUP_KEY'];

/** One step of a provision's JSON result. */
export interface Step {
  id: string;
  status: string;
  detail: string;
}

/** Where the guide keeps the SOPS file, relative to the repository. */
export const SECRETS_FILE = 'secrets/bootstrap.sops.yaml';

/** A fresh age key made as the guide says (`age-keygen -o FILE`), and its public key (age1…). */
export function ageKeygen(file: string): { file: string; recipient: string } {
  execFileSync('age-keygen', ['-o', file], { stdio: 'pipe' });
  const recipient = execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim();
  if (!/^age1[0-9a-z]+$/.test(recipient)) throw new Error(`age-keygen -y ${file} printed no public key`);
  return { file, recipient };
}

/** What a journey's host offers the operator's commands: where to connect and what to run there. */
export interface JourneyHost {
  ssh: Pick<SshdServer, 'host' | 'port' | 'user' | 'identity' | 'knownHosts'>;
  remoteDir: string;
  /** The local bundle the operator provisions from. */
  bundle: string;
  docker: string;
  compose: string;
  /** `docker events` streams still open on the host. */
  openEventStreams(): number;
  /** Every docker command run on the host so far, as one line each (its argv), oldest first. */
  dockerCommands(): string[];
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // ended meanwhile
  }
}

export class Operator {
  /** The operator's repository: every command runs here, with the guide's relative paths. */
  readonly repo: string;
  readonly home: string;
  readonly tmp: string;
  private readonly bin: string;
  /** SOPS_AGE_KEY_FILE: the key the operator decrypts with now. */
  keyFile = '';
  /** The SOPS file's values as last decrypted. */
  current: Record<string, string> = {};
  /** Every other secret value the journey met: typed in, or held by a key before it changed. */
  private readonly history: string[] = [];
  /** Every command's output so far, for a last look. */
  readonly outputs: string[] = [];
  private readonly uid: number | undefined;
  /** How many of the host's docker commands were checked for secrets already. */
  private dockerChecked = 0;

  constructor(
    root: string,
    readonly host: JourneyHost,
    private readonly extraEnv: Record<string, string> = {},
  ) {
    this.repo = join(root, 'repo');
    this.home = join(root, 'operator-home');
    this.tmp = join(root, 'operator-tmp');
    this.bin = join(root, 'operator-bin');
    for (const d of [this.repo, this.home, this.tmp, this.bin])
      mkdirSync(d, { recursive: true, mode: 0o700 });
    symlinkSync(process.execPath, join(this.bin, 'node'));
    // As root the host's user is sshd's own test user; as anyone else it is this process's user, whose
    // processes (this test worker among them) cannot be told apart: the process check is root's only.
    this.uid = process.getuid?.() === 0 ? uidOf(host.ssh.user) : undefined;
  }

  env(): Record<string, string> {
    return {
      PATH: this.bin,
      HOME: this.home,
      TMPDIR: this.tmp,
      NO_COLOR: '1',
      SOPS_AGE_KEY_FILE: this.keyFile,
      // The engine's deadlines and backoffs on a shortened timeline.
      SECRETS_FLOW_TIME_SCALE: '0.05',
      ...this.extraEnv,
    };
  }

  sshArgs(port = this.host.ssh.port): string[] {
    return sshCliArgs({ ...this.host.ssh, port });
  }

  hostArgs(port?: number): string[] {
    return [
      ...this.sshArgs(port),
      '--remote-dir',
      this.host.remoteDir,
      '--docker',
      this.host.docker,
      '--compose',
      this.host.compose,
    ];
  }

  provisionArgs(extra: readonly string[] = [], port?: number): string[] {
    return [
      ...this.hostArgs(port),
      '--bundle',
      this.host.bundle,
      '--secrets-file',
      SECRETS_FILE,
      '--json',
      ...extra,
    ];
  }

  /** `secrets.ts CMD …` on the guide's SOPS file; `input` is what the operator types or pipes in. */
  secrets(args: readonly string[], input?: string): Promise<CliRun> {
    if (input !== undefined) this.history.push(input);
    return this.run('secrets.ts', [...args, '--secrets-file', SECRETS_FILE], input);
  }

  provision(extra: readonly string[] = []): Promise<CliRun> {
    return this.run('provision-bifrost.ts', this.provisionArgs(extra));
  }

  /** `bifrost.ts CMD` against the host (`extra` after the host's own options, so it may override them). */
  bifrost(command: string, extra: readonly string[] = []): Promise<CliRun> {
    return this.run('bifrost.ts', [command, ...this.hostArgs(), ...extra]);
  }

  /** A provision started in the background (through `port`, e.g. a slowing proxy), watched line by line. */
  startProvision(extra: readonly string[], port?: number): WatchedRun {
    return startScript('provision-bifrost.ts', this.provisionArgs(extra, port), this.env(), {
      cwd: this.repo,
    });
  }

  /** Waits for a background run to end, then checks it as every command is checked. */
  async finish(run: WatchedRun, what: string): Promise<CliRun> {
    const r = await run.done;
    await this.afterCommand(r, what);
    return r;
  }

  /** Runs a script in the repository, then checks the host and the output (see afterCommand). */
  async run(script: string, args: readonly string[], input?: string): Promise<CliRun> {
    const r = await runScript(script, args, this.env(), { cwd: this.repo, input });
    await this.afterCommand(r, `${script} ${args[0] ?? ''}`);
    return r;
  }

  /** The SOPS file as the operator's key reads it now; every value joins the known ones. */
  async decrypt(): Promise<Record<string, string>> {
    const file = await decryptSopsFile(join(this.repo, SECRETS_FILE), {
      env: { SOPS_AGE_KEY_FILE: this.keyFile, HOME: this.home },
    });
    const values = file.documents[0] as Record<string, string>;
    this.history.push(...Object.values(this.current));
    this.current = { ...values };
    return values;
  }

  /** Every secret value met so far, by name: the current ones under their keys, the others numbered. */
  known(): Record<string, string> {
    const others = [...new Set(this.history)].filter((v) => !Object.values(this.current).includes(v));
    return { ...Object.fromEntries(others.map((v, i) => [`earlier value ${i + 1}`, v])), ...this.current };
  }

  /**
   * What every command must leave: nothing of it running on the host, and no secret in its output. The
   * host's side ends a moment after the client (sshd notices the closed channel): a bounded wait, then
   * the list of what is left.
   */
  async afterCommand(r: CliRun, what: string): Promise<void> {
    this.outputs.push(r.stdout, r.stderr);
    if (this.uid !== undefined) {
      const uid = this.uid;
      await eventually(() => processesOf(uid).length === 0);
      const left = processesOf(uid);
      // Ended once seen, so that the next command is judged on what it leaves itself.
      for (const p of left) killQuietly(Number(p.split(' ')[0]));
      expect(left, `${what}: processes left on the host`).toEqual([]);
    }
    await eventually(() => this.host.openEventStreams() === 0);
    expect(this.host.openEventStreams(), `${what}: docker events streams left open`).toBe(0);
    await this.decrypt().catch(() => undefined);
    const known = this.known();
    expect(findLeaks(`${r.stdout}\n${r.stderr}`, known), `${what}: secret values in its output`).toEqual([]);
    // Nor on the argv of a docker command it ran on the host (`ps` shows those to every user there).
    const commands = this.host.dockerCommands();
    const argv = commands.slice(this.dockerChecked).join('\n');
    this.dockerChecked = commands.length;
    expect(findLeaks(argv, known), `${what}: secret values on a docker argv`).toEqual([]);
  }
}
