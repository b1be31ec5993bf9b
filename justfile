# secrets-flow operator recipes. Each runs `node bin/run.mjs scripts/...` (npx would add ~0.5 s): the
# script's bundle that `npm ci` built into dist/ while no source is newer, else the source through tsx,
# with scripts/lib/core/startup-signals.mjs first (a Ctrl-C while the modules load is reported, not a silent exit).
# `just` itself comes from the rust-just npm package; after `npm ci`, in the checkout (README, Quick start):
#   export PATH="$PWD/bin:$PATH"
# (bin/just starts the package's native binary, which hands arguments over as typed.)

set shell := ["bash", "-euo", "pipefail", "-c"]

# Each recipe hands its arguments to its script as "$@", word for word: spaces, quotes, `$` and empty
# strings arrive as given (interpolating them into the command line would split and expand them).
set positional-arguments

run := "node bin/run.mjs"
secrets_file := env_var_or_default("SECRETS_FILE", "secrets/bootstrap.sops.yaml")

# List the recipes
default:
    @{{just_executable()}} --list

# Create the bootstrap Kubernetes Secrets from the SOPS file (one server-side kubectl apply; per-key report)
create-secrets *ARGS:
    {{run}} scripts/create-bootstrap-secrets.ts --secrets-file {{quote(secrets_file)}} "$@"

# Show what create-secrets would apply, offline: no cluster, no kubectl (fingerprints only; works without an age key)
create-secrets-dry-run *ARGS:
    {{run}} scripts/create-bootstrap-secrets.ts --secrets-file {{quote(secrets_file)}} --dry-run "$@"

# Compare the bootstrap Secrets with the cluster, per key (added/changed/unchanged/removed/kept); applies nothing
create-secrets-diff *ARGS:
    {{run}} scripts/create-bootstrap-secrets.ts --secrets-file {{quote(secrets_file)}} --diff "$@"

# Print the decrypted SOPS file (sops binary when installed, else the built-in decryptor)
sops-decrypt FILE=secrets_file *ARGS:
    {{run}} scripts/sops.ts decrypt "$1" "${@:2}"

# Run a command with the SOPS file's top-level keys in its environment, like `sops exec-env`
sops-exec-env COMMAND FILE=secrets_file:
    {{run}} scripts/sops.ts exec-env "$2" "$1"

# Run the whole test suite
test *ARGS:
    ./node_modules/.bin/vitest run "$@"

# Type-check and lint
check:
    npm run check

# Benchmarks (figures and ratios; never part of the tests)
bench:
    node --import tsx bench/run.ts

# The whole flow on a built-in sandbox (temporary directory, fake Kubernetes API server, docker simulator)
demo *ARGS:
    {{run}} scripts/demo.ts "$@"

# Start the Bifrost services in order on a host over SSH (or --local on the VPS itself)
bifrost-bootstrap *ARGS:
    {{run}} scripts/bifrost-bootstrap.ts "$@"

# Show what bifrost-bootstrap would run, running nothing
bifrost-bootstrap-dry-run *ARGS:
    {{run}} scripts/bifrost-bootstrap.ts --dry-run "$@"

# Provision the Bifrost VPS: render env files in memory, upload the bundle, run the bootstrap (was: just core hetzner up)
bifrost-up HOST *ARGS:
    {{run}} scripts/provision-bifrost.ts --host "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Generate every generatable bootstrap secret into a new SOPS file encrypted to RECIPIENT (age1…)
secrets-init RECIPIENT *ARGS:
    {{run}} scripts/secrets.ts init --recipient "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Table of every bootstrap key: present, length, format, who needs it (never a value)
secrets-check *ARGS:
    {{run}} scripts/secrets.ts check --secrets-file {{quote(secrets_file)}} "$@"

# Set one key in the SOPS file: the value from stdin or a prompt that does not echo (never an argument)
secrets-set KEY *ARGS:
    {{run}} scripts/secrets.ts set "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# New values for generatable keys (each by its schema generator); prints what must be redeployed
secrets-rotate +ARGS:
    {{run}} scripts/secrets.ts rotate --secrets-file {{quote(secrets_file)}} "$@"

# The SOPS file's age recipients; `add AGE1…` / `remove AGE1…` (remove re-encrypts under a new data key)
secrets-recipients *ARGS:
    {{run}} scripts/secrets.ts recipients --secrets-file {{quote(secrets_file)}} "$@"

# Which secret lives where, set when, rotatable or not (bootstrap keys and the runtime apps table)
secrets-where *ARGS:
    {{run}} scripts/secrets.ts where "$@"

# Where every value stands, per key and place (cluster Secrets; host files with --host H): in sync / differs / missing
secrets-status *ARGS:
    {{run}} scripts/secrets.ts status --secrets-file {{quote(secrets_file)}} "$@"

# Edit the SOPS file in $VISUAL/$EDITOR (plaintext only in a 0700 dir in memory; validated; minimal diff)
secrets-edit *ARGS:
    {{run}} scripts/secrets.ts edit --secrets-file {{quote(secrets_file)}} "$@"

# Render the runtime tier's resources for the apps table's backend (stdout, or --out DIR; --backend B)
runtime-render *ARGS:
    {{run}} scripts/render-runtime-secrets.ts "$@"

# Fail on any Secret manifest, or an InfisicalSecret without its ArgoCD annotation, under DIR
runtime-check DIR:
    {{run}} scripts/render-runtime-secrets.ts --check "$1"

# The design page's InfisicalSecret CRs (v1alpha1): the same as runtime-render --backend infisical-v1alpha1
infisical-render *ARGS:
    {{run}} scripts/render-infisical-secrets.ts "$@"

# Same as runtime-check (kept for habits)
infisical-check DIR:
    {{run}} scripts/render-infisical-secrets.ts --check "$1"

# One-time OpenBao setup in its pod: auth, KV mount, per-app policy and role, create-only initial values (token on stdin)
runtime-setup *ARGS:
    {{run}} scripts/runtime.ts setup --secrets-file {{quote(secrets_file)}} "$@"

# Recovery: each Bifrost container's state and health
bifrost-status HOST *ARGS:
    {{run}} scripts/bifrost.ts status --host "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Recovery: a service's last log lines, secrets redacted (the SOPS file's values and the host's)
bifrost-logs HOST SERVICE *ARGS:
    {{run}} scripts/bifrost.ts logs "$2" --host "$1" --secrets-file {{quote(secrets_file)}} "${@:3}"

# Recovery: mint NB_IDP_MGMT_TOKEN again
bifrost-token HOST *ARGS:
    {{run}} scripts/bifrost.ts token --host "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Recovery: mint a new NetBird proxy token (nbx_) and recreate netbird-proxy on it
bifrost-proxy-token HOST *ARGS:
    {{run}} scripts/bifrost.ts proxy-token --host "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Recovery: render NetBird's config again, recreating netbird-server when it changed
bifrost-render HOST *ARGS:
    {{run}} scripts/bifrost.ts render --host "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Recovery: compare the host's bundle and secret fingerprints with what a provision would upload
bifrost-verify HOST *ARGS:
    {{run}} scripts/bifrost.ts verify --host "$1" --secrets-file {{quote(secrets_file)}} "${@:2}"

# Recovery: show a stale provisioning lock's holder and clear it
bifrost-unlock HOST *ARGS:
    {{run}} scripts/bifrost.ts unlock --host "$1" "${@:2}"

# Read the Bifrost bundle against its plan and the pinned images' facts (no host, no secrets)
bifrost-check-bundle *ARGS:
    {{run}} scripts/bifrost.ts check-bundle "$@"

# Rehearse provisioning on this machine, no VPS or Docker: provision-bifrost --local into .rehearsal/ (docker simulator)
rehearse-up *ARGS:
    {{run}} scripts/rehearse.ts up --secrets-file {{quote(secrets_file)}} "$@"

# Rehearse a command on .rehearsal/: up, bootstrap, or bifrost COMMAND (status, logs, token, render, verify, unlock)
rehearse +ARGS:
    {{run}} scripts/rehearse.ts "$@"

# Remove the rehearsal target .rehearsal/
rehearse-clean:
    {{run}} scripts/rehearse.ts clean
