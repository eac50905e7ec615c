import { z } from 'zod';
import { checkOutboundUrl, insecureFlag } from '../../src/core/kit/outbound-url.js';

/** The `providers:` entry: nothing to configure (each authenticator names its issuer). */
export const oidcConfig = z.object({}).strict();
export type OidcConfig = z.infer<typeof oidcConfig>;

const claimValue = z.union([z.string(), z.number(), z.boolean()]);

/** An entry of `delivery.authenticators`. */
export const oidcBinding = z
  .object({
    /** The issuer, exactly as its tokens' `iss` and its discovery document say it. */
    issuer: z.string().url().describe('Issuer URL: iss must equal it; its discovery document is <issuer>/.well-known/openid-configuration'),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).describe('aud the token must carry (one of these)'),
    algorithms: z
      .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
      .min(1)
      .default(['RS256', 'ES256'])
      .describe('Signature algorithms accepted (never none or HMAC)'),
    subjectClaim: z.string().min(1).default('sub').describe('The claim that names the subject (a string)'),
    claims: z
      .record(z.string(), z.union([claimValue, z.array(claimValue).min(1)]))
      .default({})
      .describe('Claims the token must carry with this value (or one of these values)'),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30).describe('Allowed clock skew for exp, nbf and iat'),
    insecure: insecureFlag,
  })
  .strict()
  .superRefine((binding, ctx) => checkOutboundUrl(binding.issuer, binding.insecure, ['issuer'], ctx));
export type OidcBinding = z.infer<typeof oidcBinding>;
