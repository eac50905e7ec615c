import { z } from 'zod';
import { RekeyError } from './errors.js';
import { SecretValue } from './secret-value.js';

const ENV_REF = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/;

/**
 * A reference to a credential the config must not hold inline, e.g. `${env:KONG_ADMIN_TOKEN}`.
 * The parsed config keeps the reference, never the value, so it is safe to store and log;
 * providers resolve it when they need it with ProviderContext.credential().
 */
export interface CredentialRef {
  readonly kind: 'env';
  readonly name: string;
}

/** Zod schema for a credential field: accepts only `${env:NAME}`. */
export function credential() {
  return z
    .string()
    .regex(ENV_REF, 'must be a reference like ${env:NAME}; credentials are never written inline')
    .transform((text): CredentialRef => ({ kind: 'env', name: ENV_REF.exec(text)![1]! }))
    .meta({ description: 'A credential reference: ${env:NAME}' });
}

/** Resolves a reference against an environment. @throws RekeyError REKEY_ERR_CONFIG when unset or empty. */
export function resolveCredential(ref: CredentialRef, env: NodeJS.ProcessEnv, where: string): SecretValue {
  const value = env[ref.name];
  if (!value) throw new RekeyError('REKEY_ERR_CONFIG', `${where}: environment variable ${ref.name} is not set`);
  return SecretValue.of(value);
}
