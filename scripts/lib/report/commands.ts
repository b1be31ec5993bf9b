/**
 * The subcommands of scripts/secrets.ts that read more than the SOPS file: check (each key against its
 * consumers and backend), rotate (and what must be redeployed), where, and status (the cluster and hosts).
 */
import { DEFAULT_BUNDLE_HOST_DIR } from '../bifrost/docker.ts';
import { COMMON_OPTIONS, defineCommand } from '../core/cli.ts';
import { SSH_OPTIONS, SSH_OPTIONS_HELP } from '../exec/ssh-cli.ts';
import { backendOptionHelp, chooseBackend } from '../kube/backend-choice.ts';
import { DEFAULT_APPS_FILE } from '../secrets/backend-id.ts';
import {
  ALLOW_ROTATE_OPTION,
  allowRotateKeys,
  ENVIRONMENT,
  FILE_HELP,
  FILE_OPTION,
  USAGE,
} from '../secrets/commands.ts';
import { DEFAULT_SECRETS_FILE } from '../secrets/source.ts';
import { secretsCheck } from './check.ts';
import { secretsWhere } from './where.ts';

const checkCommand = defineCommand({
  name: `${USAGE} check`,
  synopsis: '[--secrets-file F] [--from-env] [--strict] [options]',
  description: `A table of every key: present, length, format, who needs it; never a value. A hand-made token
(Hetzner, Cloudflare, NetBird…) not in its vendor's documented format is a warning (a vendor may change
it); --strict refuses it. Without an age key it checks key names only. Keys only another runtime
backend's Secrets read are not listed (with openbao, no INFISICAL_* key is needed).`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    'from-env': { type: 'boolean' },
    strict: { type: 'boolean' },
    backend: { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --from-env           take the secrets from the environment only
  --strict             refuse a hand-made token whose format is not its vendor's
${backendOptionHelp('check')}`,
  footer: ENVIRONMENT,
  exits: { badInput: 'a required key is missing or malformed, or bad input' },
  run: (flags, _positionals, out) =>
    secretsCheck(
      out,
      flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
      Boolean(flags['from-env']),
      Boolean(flags.strict),
      chooseBackend(flags.backend),
    ),
});

export const check = {
  command: checkCommand,
  summary: 'a table of every key: present, length, format, who needs it; never a value',
};

const rotateCommand = defineCommand({
  name: `${USAGE} rotate`,
  synopsis: 'KEY... [--secrets-file F] [--allow-rotate KEY[,KEY]] [--dry-run] [--bundle DIR] [options]',
  description: `New values for generatable keys, each made by its schema generator; only those keys' ENC[...]
change (with sops.lastmodified and sops.mac). A key set by hand is refused with the set command to use; a key
that is never rotated is refused unless --allow-rotate KEY. Ends with what must be redeployed: which Kubernetes
Secret, which host file, which Bifrost services (read from the bundle's compose file). Needs your age key.`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    ...ALLOW_ROTATE_OPTION,
    'dry-run': { type: 'boolean' },
    bundle: { type: 'string' },
  },
  aliases: { file: 'secrets-file' },
  positionals: { min: 1, max: 64, wrong: 'rotate takes the KEYs to rotate' },
  optionsHelp: `${FILE_HELP}
  --allow-rotate KEY   rotate KEY although it is never rotated (you know what it breaks; repeatable, or KEY,KEY)
  --dry-run            say what would be rotated and redeployed; write nothing
  --bundle DIR         the Bifrost bundle whose compose file names the services (default cloud/bifrost)`,
  footer: ENVIRONMENT,
  exits: { badInput: 'unknown, hand-set or never-rotated key, or bad input; the file is untouched' },
  run: async (flags, positionals, out) =>
    (await import('./rotate.ts')).secretsRotate(
      {
        file: flags['secrets-file'] ?? DEFAULT_SECRETS_FILE,
        keys: positionals,
        allowRotate: allowRotateKeys(flags['allow-rotate']),
        dryRun: Boolean(flags['dry-run']),
        bundle: flags.bundle || undefined,
      },
      out,
    ),
});

export const rotate = {
  command: rotateCommand,
  summary: 'new values for generatable keys; says what must be redeployed',
};

const whereCommand = defineCommand({
  name: `${USAGE} where`,
  synopsis: '[options]',
  description: `Which secret lives where, set when, and whether it may be rotated: the design page's "What Lives
Where" table, generated from the bootstrap schema and the runtime apps table (under its backend).`,
  options: { ...COMMON_OPTIONS, apps: { type: 'string' }, backend: { type: 'string' } },
  optionsHelp: `  --apps FILE          the runtime apps table (default ${DEFAULT_APPS_FILE})
  --backend B          show the runtime rows under backend B (default: the table's \`backend\`)`,
  run: async (flags, _positionals, out) => secretsWhere(flags, out),
});

export const where = {
  command: whereCommand,
  summary: 'which secret lives where, set when, rotatable or not',
};

const statusCommand = defineCommand({
  name: `${USAGE} status`,
  synopsis:
    '[--secrets-file F] [--context C] [--kubeconfig K] [--backend B] [--no-cluster] [--host H ...] [options]',
  description: `Where every value of the SOPS file stands, per key and per place that holds it: the bootstrap
Kubernetes Secrets (one \`kubectl get\`), and with --host the Bifrost host's .secrets.env, .env and
rendered netbird/config.yaml (one SSH connection; --host may be repeated). Each row is "in sync", "differs", "missing" (the place
exists, the name does not), "not deployed" (the Secret or host file does not exist) or "not set" (no
value in the SOPS file, none deployed). Values are compared in memory; only lengths and keyed
fingerprints are shown, never a value. The cluster is checked unless --no-cluster; the host only with
--host. The cluster's Secrets are those of its runtime backend (--backend, else the apps table's
\`backend:\`), as create-bootstrap-secrets creates them; keys only other backends use are not compared.`,
  options: {
    ...COMMON_OPTIONS,
    ...FILE_OPTION,
    ...SSH_OPTIONS,
    'from-env': { type: 'boolean' },
    context: { type: 'string' },
    kubeconfig: { type: 'string' },
    'no-cluster': { type: 'boolean' },
    backend: { type: 'string' },
    'remote-dir': { type: 'string' },
    // Several Bifrost hosts may be checked in one run, each over its own single connection.
    host: { type: 'string', multiple: true },
  },
  aliases: { file: 'secrets-file' },
  optionsHelp: `${FILE_HELP}
  --from-env           take the secrets from the environment only
  --context C          kubeconfig context to read
  --kubeconfig K       kubeconfig file
  --no-cluster         do not read the cluster
${backendOptionHelp('check')}
${SSH_OPTIONS_HELP}
  --remote-dir D       the bundle directory on the host (default ${DEFAULT_BUNDLE_HOST_DIR})`,
  footer: ENVIRONMENT.replace('Environment: ', 'Environment: KUBECTL (kubectl binary), '),
  exits: {
    ok: 'everything checked is in sync (or not set on either side)',
    failed: 'a value differs, is missing, or its place is not deployed',
    badInput: 'bad input: unreadable SOPS file, no age key, a cluster or host that cannot be reached',
  },
  run: async (flags, _positionals, out) => (await import('./status.ts')).secretsStatusFromFlags(flags, out),
});

export const status = {
  command: statusCommand,
  summary: 'where every value stands: in sync / differs / missing, never a value',
};
