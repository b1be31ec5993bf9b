/** The one table of runtime backends: id → module. */
import type { BackendId } from '../../secrets/backend-id.ts';
import type { RuntimeBackend } from './backend.ts';
import { infisicalV1beta1 } from './infisical.ts';
import { infisicalV1alpha1 } from './infisical-v1alpha1.ts';
import { openbao } from './openbao.ts';

export const RUNTIME_BACKENDS: Readonly<Record<BackendId, RuntimeBackend>> = {
  infisical: infisicalV1beta1,
  'infisical-v1alpha1': infisicalV1alpha1,
  openbao,
};
