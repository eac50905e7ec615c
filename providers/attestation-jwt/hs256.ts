/**
 * HS256 JWT verification on node:crypto, for the token exchange's hot path: jose (WebCrypto)
 * queues each HMAC to the thread pool and cost about 130 us of the server's CPU per token under
 * load (bench/delivery --cpu-prof), node:crypto's HMAC about 10 us.
 *
 * The signature is checked here: three base64url parts, a header that names HS256 exactly and
 * no `crit` (so `none`, RS256 with the shared secret as its key, unencoded payloads and unknown
 * extensions are refused), the MAC over the parts as sent compared in constant time. The claims
 * are then checked by jose itself (UnsecuredJWT.decode over the same payload bytes with the same
 * options), so exp, nbf, iat, aud, iss and their errors are exactly jose's.
 */
import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { errors, UnsecuredJWT, type JWTClaimVerificationOptions, type JWTPayload } from 'jose';

const PART = /^[A-Za-z0-9_-]+$/;
/** `{"alg":"none"}`: the header under which UnsecuredJWT checks the claims of a token already verified here. */
const NONE = Buffer.from('{"alg":"none"}').toString('base64url');

/**
 * The payload of `token` when its MAC under `key` and its claims are valid.
 * @throws jose's errors (JWSInvalid, JOSEAlgNotAllowed, JWSSignatureVerificationFailed, JWTExpired, JWTClaimValidationFailed, JWTInvalid).
 */
export function verifyHs256(token: string, key: KeyObject, options: JWTClaimVerificationOptions): JWTPayload {
  const parts = token.split('.');
  if (parts.length !== 3 || !PART.test(parts[0]!)) throw new errors.JWSInvalid('not a compact JWS');
  const [header, payload, signature] = parts as [string, string, string];
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    throw new errors.JWSInvalid('the protected header is not JSON');
  }
  if (!fields || typeof fields !== 'object' || Array.isArray(fields)) throw new errors.JWSInvalid('the protected header is not an object');
  if ((fields as { alg?: unknown }).alg !== 'HS256') throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  if (Object.hasOwn(fields, 'crit')) throw new errors.JWSInvalid('no extension is supported');
  if (!PART.test(payload) || !PART.test(signature)) throw new errors.JWSInvalid('not a compact JWS');
  const expected = createHmac('sha256', key).update(`${header}.${payload}`).digest();
  const presented = Buffer.from(signature, 'base64url');
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) throw new errors.JWSSignatureVerificationFailed();
  return UnsecuredJWT.decode(`${NONE}.${payload}.`, options).payload;
}
