/**
 * Authenticates a Pub/Sub push request: its `Authorization: Bearer <JWT>` is a Google-signed OIDC
 * ID token (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions). Checked with
 * jose: RS256 signature against the configured keys, `iss`, `aud`, `exp`/`iat` (30 s clock
 * tolerance, at most 65 minutes old: Google's tokens live an hour), and, when configured, `email`
 * equal to the subscription's service account with `email_verified` true.
 *
 * Keys: a JWKS URL (Google's by default) through jose's remote key set, which caches the keys (10
 * minutes), refetches for an unknown key id at most every 30 s, and times out after 5 s; or inline
 * JWKS / PEM. Key sets are built once per key source and kept across requests and config reloads.
 *
 * A token that fails any check is `invalid` (answer 401); failing to get the keys at all (Google
 * unreachable, a broken inline key) is `unavailable` (answer 503, so Pub/Sub redelivers later).
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  importSPKI,
  importX509,
  jwtVerify,
  type CryptoKey,
  type JWTVerifyGetKey,
} from 'jose';
import { GOOGLE_ISSUERS, GOOGLE_JWKS_URL, type PubsubConfig } from '../config/events.js';

export type PushAuthResult = { ok: true; email: string | undefined } | { ok: false; reason: 'invalid' } | { ok: false; reason: 'unavailable'; error: unknown };

/** jose error codes that mean "this token is not acceptable", as opposed to "cannot check tokens now". */
const TOKEN_REJECTED = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
]);

/** Google signs its ID tokens with RS256; nothing else is accepted. */
const ALGORITHMS = ['RS256'];

type KeySource = JWTVerifyGetKey | CryptoKey;

export class PushAuthenticator {
  #keys: { source: string; keys: Promise<KeySource> } | undefined;

  /** Checks the Authorization header of one push request against `config`. Never throws. */
  async authenticate(authorization: string | undefined, config: PubsubConfig): Promise<PushAuthResult> {
    const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$/i.exec(authorization ?? '');
    if (!match) return { ok: false, reason: 'invalid' };
    let keys: KeySource;
    try {
      keys = await this.#keysFor(config);
    } catch (error) {
      return { ok: false, reason: 'unavailable', error };
    }
    try {
      const options = {
        issuer: config.issuer ?? GOOGLE_ISSUERS,
        audience: config.audience,
        algorithms: ALGORITHMS,
        clockTolerance: 30,
        maxTokenAge: '65m',
        requiredClaims: ['exp', 'iat'],
      };
      // Two calls because jose's overloads separate a key from a key resolver.
      const { payload } =
        typeof keys === 'function' ? await jwtVerify(match[1]!, keys, options) : await jwtVerify(match[1]!, keys, options);
      const email = typeof payload.email === 'string' ? payload.email : undefined;
      if (config.serviceAccount !== undefined && (email !== config.serviceAccount || payload.email_verified !== true)) {
        return { ok: false, reason: 'invalid' };
      }
      return { ok: true, email };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && TOKEN_REJECTED.has(code)) return { ok: false, reason: 'invalid' };
      return { ok: false, reason: 'unavailable', error };
    }
  }

  /** The verification keys, built once per key source (so the remote set's cache survives). */
  #keysFor(config: PubsubConfig): Promise<KeySource> {
    const source = JSON.stringify({ url: config.jwksUrl, jwks: config.jwks, pem: config.pem });
    if (this.#keys?.source !== source) {
      const keys = buildKeys(config);
      // A broken inline key must not stay cached as a rejected promise forever.
      keys.catch(() => {
        if (this.#keys?.keys === keys) this.#keys = undefined;
      });
      this.#keys = { source, keys };
    }
    return this.#keys.keys;
  }
}

async function buildKeys(config: PubsubConfig): Promise<KeySource> {
  if (config.pem) {
    return config.pem.includes('BEGIN CERTIFICATE') ? importX509(config.pem, 'RS256') : importSPKI(config.pem, 'RS256');
  }
  if (config.jwks) return createLocalJWKSet(config.jwks);
  return createRemoteJWKSet(new URL(config.jwksUrl ?? GOOGLE_JWKS_URL), {
    timeoutDuration: 5000,
    cooldownDuration: 30_000,
    cacheMaxAge: 600_000,
  });
}
