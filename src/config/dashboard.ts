/**
 * The `dashboard:` section of rekey.yaml: how people sign in to the dashboard with an OpenID
 * Connect provider (docs/dashboard.md "Sign in with OpenID Connect"). The ID token's groups
 * claim is mapped to admin API scopes; a person none of whose groups is listed is refused.
 *
 * ```yaml
 * dashboard:
 *   oidc:
 *     issuer: https://login.example.com
 *     clientId: rekey-dashboard
 *     clientSecret: ${env:OIDC_CLIENT_SECRET}   # omit for a public client (PKCE alone)
 *     redirectUri: https://rekey.example.com/ui/oidc/callback
 *     groups:
 *       platform-admins: [admin]
 *       sre: [read, rotate:payments-*]
 * ```
 */
import { z } from 'zod';
import { SCOPE_PATTERN } from '../api/scopes.js';
import { credential } from '../core/credential.js';
import { checkOutboundUrl, insecureFlag } from '../core/kit/outbound-url.js';

const oidcSchema = z
  .object({
    issuer: z.url({ protocol: /^https?$/ }).describe("The provider's issuer, exactly as its discovery document and ID tokens name it"),
    clientId: z.string().min(1).max(200).describe("rekey's client id at the provider"),
    clientSecret: credential().optional().describe('The client secret (client_secret_basic), as ${env:NAME}; omitted: a public client, PKCE alone'),
    redirectUri: z.url({ protocol: /^https?$/ }).describe('Where the provider sends the browser back: https://<rekey>/ui/oidc/callback, registered at the provider'),
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).default(['openid', 'profile']).describe('Scopes requested (openid is always added)'),
    groupsClaim: z.string().min(1).default('groups').describe('The ID token claim listing the person\'s groups (an array of strings, or one string)'),
    groups: z
      .record(z.string().min(1), z.array(z.string().regex(SCOPE_PATTERN, 'a scope: read, rotate, revoke or admin, optionally :<secret name glob>')).min(1))
      .refine((map) => Object.keys(map).length > 0, 'map at least one group')
      .describe('Group → admin API scopes; a person gets the scopes of every listed group they are in, and is refused when none is listed'),
    insecure: insecureFlag,
  })
  .strict()
  .superRefine((config, ctx) => {
    checkOutboundUrl(config.issuer, config.insecure, ['issuer'], ctx);
  });

export const dashboardSchema = z
  .object({
    oidc: oidcSchema.optional().describe('Sign-in with an OpenID Connect provider (authorization code + PKCE)'),
  })
  .strict();

export type DashboardConfig = z.infer<typeof dashboardSchema>;
export type OidcSignInConfig = z.infer<typeof oidcSchema>;

/** The scopes a person in `groups` gets: those of every listed group, each once (none: refused). */
export function scopesOfGroups(config: OidcSignInConfig | undefined, groups: readonly string[]): string[] {
  if (!config) return [];
  return [...new Set(groups.flatMap((group) => (Object.hasOwn(config.groups, group) ? config.groups[group]! : [])))];
}
