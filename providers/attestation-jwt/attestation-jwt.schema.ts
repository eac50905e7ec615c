import { z } from 'zod';

/** The `providers:` entry: nothing to configure (the shared secret is a managed secret). */
export const attestationJwtConfig = z.object({}).strict();
export type AttestationJwtConfig = z.infer<typeof attestationJwtConfig>;

/** An entry of `delivery.authenticators`. */
export const attestationJwtBinding = z
  .object({
    /** The managed secret (e.g. an hmac-key issuer's) that the attestation service signs with. */
    secret: z.string().min(1).describe('Managed secret holding the HS256 key shared with the attestation service'),
    /** How the secret's value encodes the key bytes. @defaultValue 'utf8' */
    encoding: z.enum(['utf8', 'base64', 'base64url']).default('utf8').describe('How the value encodes the key: utf8 (the text itself), base64, base64url'),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).describe('aud the token must carry (one of these)'),
    issuer: z.string().min(1).optional().describe('iss the token must carry, when set'),
    subjectClaim: z.string().min(1).default('sub').describe('The claim that names the subject (a string)'),
    /**
     * Tokens issued (iat) longer ago than this, beyond the clock tolerance, are refused: the
     * window in which a copied token can be replayed. Attestation tokens live minutes (Approov's
     * about 5). @defaultValue 300 (3600 before 2026-12-06)
     */
    maxAgeSeconds: z.number().int().positive().max(86_400).default(300).describe('Tokens issued (iat) longer ago than this (beyond clockToleranceSeconds) are refused: the replay window'),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30).describe('Allowed clock skew for exp, nbf and iat'),
  })
  .strict();
export type AttestationJwtBinding = z.infer<typeof attestationJwtBinding>;
