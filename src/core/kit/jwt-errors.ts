/**
 * Why a JWT was refused, as a fixed word for logs and errors (`expired`, `claim aud`,
 * `signature`, ...): from jose's error class or the claim it names, never from its message,
 * which may quote the token's contents. Shared by the authenticators that verify JWTs.
 */
import { errors } from 'jose';

export function jwtRefusalReason(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim ${/^[a-z]{2,3}$/.test(error.claim) ? error.claim : 'invalid'}`;
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm';
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown key';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'malformed';
  return 'invalid';
}
