import { randomBytes, randomUUID } from 'node:crypto';
import { generateValue } from '../secrets/generate.ts';
import { SECRET_SCHEMA, type SecretSpec } from '../secrets/schema.ts';

// Stand-ins for the keys an operator sets by hand (provider tokens, NetBird keys), shaped so that
// they pass the schema's format checks. Only ever used inside the sandbox.
const MANUAL_SAMPLES: Record<string, () => string> = {
  HCLOUD_TOKEN: () => generateValue({ kind: 'random-chars', length: 64 }) ?? '',
  PROXMOX_PASSWORD: () => generateValue({ kind: 'random-chars', length: 24 }) ?? '',
  CLOUDFLARE_API_TOKEN: () => generateValue({ kind: 'random-chars', length: 40 }) ?? '',
  AUTHENTIK_GITHUB_SECRET: () => randomBytes(20).toString('hex'),
  NB_PROXY_TOKEN: () => `nbx_${generateValue({ kind: 'random-chars', length: 36 })}`,
  NB_BIFROST_SETUP_KEY: () => randomUUID().toUpperCase(),
  INFISICAL_SERVICE_TOKEN: () => `st.${randomUUID()}.${randomBytes(16).toString('hex')}`,
  INFISICAL_IDENTITY_ID: () => randomUUID(),
  OPENBAO_UNSEAL_KEY: () => randomBytes(32).toString('base64'),
};

/** A complete set of bootstrap values for the sandbox: generated where the schema can, samples elsewhere. */
export function sampleSecrets(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of SECRET_SCHEMA as readonly SecretSpec[]) {
    const value = generateValue(spec.generate) ?? MANUAL_SAMPLES[spec.key]?.();
    if (value === undefined) throw new Error(`no sandbox sample for ${spec.key}`);
    out[spec.key] = value;
  }
  return out;
}
