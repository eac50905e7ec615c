/**
 * Which environment variables a config may read with `${env:NAME}` (DESIGN.md "Trust
 * boundaries"). rekey's processes hold rekey's own credentials in their environment; a config
 * that could name them would hand them to any target or issuer it points at (an http issuer's
 * header, a webhook). So:
 *
 * - rekey's own settings (every variable of src/settings.ts, anything `REKEY_*`), the cloud SDKs'
 *   credential variables and PGPASSWORD are never readable, whatever the config says;
 * - any other variable only when `env.allow` lists it (a name, or a prefix ending in `*`).
 *
 * Every string of the document is checked, wherever it sits (credential fields, header
 * templates, anything a provider may interpolate), so `apply` and `apply --dry-run` refuse the
 * config naming the variable and the field. Resolving a reference checks the first rule again.
 */
import { z } from 'zod';
import type { CredentialRef } from '../core/credential.js';
import { resolveCredential } from '../core/credential.js';
import { RekeyError } from '../core/errors.js';
import type { SecretValue } from '../core/secret-value.js';
import { ENVIRONMENT } from '../settings.js';

/** The cloud SDKs' default credential chains and the PostgreSQL driver read these; they are rekey's own credentials too. */
const SDK_CREDENTIALS = new Set([
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'GOOGLE_APPLICATION_CREDENTIALS',
  // node-postgres reads it for rekey's own connection when DATABASE_URL carries no password.
  'PGPASSWORD',
]);

const REFERENCE = /\$\{env:([^}]*)\}/g;

export const envSchema = z
  .object({
    allow: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\*?$/, 'a variable name, or a prefix followed by *'))
      .default([])
      .describe('Environment variables this config may read with ${env:NAME}: names, or prefixes ending in * (ACME_*)'),
  })
  .strict();

export type EnvConfig = z.infer<typeof envSchema>;

/** Whether `name` is one of rekey's own settings or an SDK credential: never readable by a config. */
export function isOwnVariable(name: string): boolean {
  return name.startsWith('REKEY_') || Object.hasOwn(ENVIRONMENT, name) || SDK_CREDENTIALS.has(name);
}

/** Whether `allow` lets a config read `name`. */
function allowed(name: string, allow: readonly string[]): boolean {
  return allow.some((entry) => (entry.endsWith('*') ? name.startsWith(entry.slice(0, -1)) : entry === name));
}

/** Every `${env:NAME}` in the document that it may not read, with the field it sits in. */
export function envIssues(document: unknown, allow: readonly string[]): Array<{ path: Array<string | number>; message: string }> {
  const issues: Array<{ path: Array<string | number>; message: string }> = [];
  const visit = (value: unknown, path: Array<string | number>) => {
    if (typeof value === 'string') {
      for (const [, name] of value.matchAll(REFERENCE)) {
        if (isOwnVariable(name!)) issues.push({ path, message: `\${env:${name}} is rekey's own setting or credential: a config may never read it` });
        else if (!allowed(name!, allow)) issues.push({ path, message: `\${env:${name}} is not allowed: list ${name} under env.allow to let this config read it` });
      }
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => visit(item, [...path, i]));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) visit(item, [...path, key]);
    }
  };
  visit(document, []);
  return issues;
}

/**
 * Resolves a reference the applied config holds. @throws RekeyError REKEY_ERR_CONFIG when it
 * names one of rekey's own variables (a config stored before this rule) or is unset.
 */
export function readCredential(ref: CredentialRef, env: NodeJS.ProcessEnv, where: string): SecretValue {
  if (isOwnVariable(ref.name)) throw new RekeyError('REKEY_ERR_CONFIG', `${where}: \${env:${ref.name}} is rekey's own setting or credential: a config may never read it`);
  return resolveCredential(ref, env, where);
}
