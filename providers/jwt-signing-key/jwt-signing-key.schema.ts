import { z } from 'zod';

/** The `providers:` entry: nothing to configure, key pairs are generated locally. */
export const jwtSigningKeyConfig = z.object({}).strict();
export type JwtSigningKeyConfig = z.infer<typeof jwtSigningKeyConfig>;

/** JWS algorithms rekey can mint keys for. EdDSA means Ed25519. */
export const JWT_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Per-secret issuer parameters. */
export const jwtSigningKeyIssuerBinding = z
  .object({
    /** Signature algorithm of every key pair. @defaultValue 'ES256' */
    alg: z.enum(JWT_ALGORITHMS).default('ES256'),
    /** RSA modulus size, RS256 only. @defaultValue 2048 */
    modulusLength: z.union([z.literal(2048), z.literal(3072), z.literal(4096)]).default(2048),
  })
  .strict();
export type JwtSigningKeyIssuerBinding = z.infer<typeof jwtSigningKeyIssuerBinding>;
