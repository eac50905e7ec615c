/**
 * A JWT verifier for an OpenID Connect issuer, shared by the authenticators whose tokens come
 * from one (`oidc`, `kubernetes-service-account`): the issuer's discovery document
 * (`<issuer>/.well-known/openid-configuration`, read once, again 5 s after a failure, and again
 * when its keys fail or lack a token's key id, below) names its JWKS, whose keys jose fetches
 * and caches (10 minutes; a token with an unknown key id fetches
 * the set again at most every 30 s, so a flood of made-up key ids costs the issuer nothing).
 * After a failed fetch of the set, none is tried again for {@link RETRY_AFTER_FAILURE_MS}: tokens
 * are checked against the keys held if they are fresh, else answered unavailable, so a failing
 * issuer is not asked once per request (jose's cooldown only counts from a successful fetch).
 * A set that fails to load, or lacks a token's key id, sends the verifier back to the discovery
 * document (at most every {@link REDISCOVER_MS}): an issuer that moved its keys to a new
 * jwks_uri is followed without a restart.
 */
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ProviderError } from '../errors.js';
import type { Call } from '../ports.js';
import type { SecretValue } from '../secret-value.js';
import { jwtRefusalReason } from './jwt-errors.js';
import { outboundUrlProblem } from './outbound-url.js';

type KeySet = JWTVerifyGetKey;

/** How long after a failed fetch of an issuer's discovery document or JWKS no other is tried. */
const RETRY_AFTER_FAILURE_MS = 5000;
/** `typ` values of the JWTs accepted as credentials (lower case, no `application/`): an ID token's, or a JWT access token's (RFC 9068). */
const CREDENTIAL_TYPES = new Set(['jwt', 'at+jwt']);
/** How often at most the discovery document is read again to look for a moved jwks_uri (jose's cool-down for unknown key ids). */
const REDISCOVER_MS = 30_000;

export interface OidcVerifierOptions {
  /** The issuer, exactly as its tokens' `iss` and its discovery document say it. */
  issuer: string;
  /** `aud` the token must carry (one of these). */
  audience: string | string[];
  /** Signature algorithms accepted: asymmetric ones only (never `none` or HMAC). */
  algorithms: string[];
  clockToleranceSeconds: number;
  /** Allow a plain http issuer and jwks_uri. */
  insecure: boolean;
}

export class OidcVerifier {
  private keys: Promise<KeySet> | undefined;
  /** When the discovery held in `keys` failed (Date.now() scale); Infinity while it has not. */
  private discoveryFailedAt = Infinity;

  /** `name` is the authenticator's, for errors: `authenticator <name>: <reason>`. */
  constructor(
    private readonly name: string,
    private readonly o: OidcVerifierOptions,
  ) {}

  /**
   * The payload of a JWT whose signature, algorithm, type (`typ` absent, JWT or at+jwt), exp (required), nbf, iat (not in the future), iss and aud pass.
   * @throws ProviderError REKEY_ERR_DENIED with a fixed reason (`expired`, `claim aud`,
   * `unknown key`, ...) when the token is not valid.
   * @throws ProviderError REKEY_ERR_UNAVAILABLE when the issuer's keys cannot be read.
   */
  async verify(credential: SecretValue, call: Call): Promise<JWTPayload> {
    const token = credential.reveal();
    this.ours(token);
    const keys = await this.keySet(call);
    try {
      const { payload, protectedHeader } = await jwtVerify(token, keys, {
        algorithms: this.o.algorithms,
        issuer: this.o.issuer,
        audience: this.o.audience,
        requiredClaims: ['exp'],
        clockTolerance: this.o.clockToleranceSeconds,
      });
      // An explicitly typed JWT of another kind (a logout token, a security event token, an
      // introspection response: RFC 8725 §3.11) is signed with the same keys but proves nothing
      // about its holder. `typ` is case-insensitive and may omit `application/` (RFC 7515 §4.1.9).
      if (protectedHeader.typ !== undefined && !CREDENTIAL_TYPES.has(String(protectedHeader.typ).toLowerCase().replace(/^application\//, ''))) throw this.denied('token type');
      // jose checks iat only against a maxTokenAge: one issued later than now, beyond the skew allowed, is refused here.
      if (typeof payload.iat === 'number' && payload.iat > Math.floor(Date.now() / 1000) + this.o.clockToleranceSeconds) throw this.denied('claim iat');
      return payload;
    } catch (error) {
      if (error instanceof ProviderError) throw error;
      if (error instanceof errors.JWKSTimeout || (error instanceof Error && !(error instanceof errors.JOSEError))) {
        throw this.unavailable("the issuer's keys cannot be read", error);
      }
      throw this.denied(jwtRefusalReason(error));
    }
  }

  /**
   * Refuses, before the issuer's keys are read, a credential that is not a JWT or whose `iss`
   * is not this issuer (what jose would refuse it for after reading them: `malformed`,
   * `claim iss`). A delivery request is tried against every authenticator its grants name, so a
   * credential meant for another one (an attestation token, another issuer's) would otherwise
   * make this issuer's discovery document and JWKS be fetched, and be answered unavailable while
   * this issuer is down, instead of refused.
   */
  private ours(token: string): void {
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch (error) {
      throw this.denied(jwtRefusalReason(error));
    }
    if (claims.iss !== this.o.issuer) throw this.denied('claim iss');
  }

  /** The refusal of a token for `reason` (a fixed word, never a claim's value). */
  denied(reason: string): ProviderError {
    return new ProviderError('REKEY_ERR_DENIED', `authenticator ${this.name}: ${reason}`, { provider: this.name });
  }

  unavailable(why: string, cause?: unknown): ProviderError {
    return new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: ${why}`, { provider: this.name, ...(cause ? { cause } : {}) });
  }

  /** The key set, discovered once; a failed discovery is answered as it is for RETRY_AFTER_FAILURE_MS, then tried again. */
  private keySet(call: Call): Promise<KeySet> {
    if (!this.keys || Date.now() - this.discoveryFailedAt >= RETRY_AFTER_FAILURE_MS) {
      const keys = this.discover(call);
      this.keys = keys;
      this.discoveryFailedAt = Infinity;
      keys.catch(() => {
        if (this.keys === keys) this.discoveryFailedAt = Date.now();
      });
    }
    return this.keys;
  }

  private async discover(call: Call): Promise<KeySet> {
    let set = this.remoteSet(await this.jwksUri(call.signal));
    let discoveredAt = Date.now();
    let rediscovery: Promise<boolean> | undefined;
    /** Reads the discovery document again, when due and one read at a time: true when it names another jwks_uri, used from now on. */
    const moved = (): Promise<boolean> => {
      if (!rediscovery && Date.now() - discoveredAt >= REDISCOVER_MS) {
        discoveredAt = Date.now();
        rediscovery = this.jwksUri(AbortSignal.timeout(5000))
          .then(
            (uri) => {
              if (uri.href === set.uri.href) return false;
              set = this.remoteSet(uri);
              return true;
            },
            // The document cannot be read now: the keys held go on serving.
            () => false,
          )
          .finally(() => (rediscovery = undefined));
      }
      return rediscovery ?? Promise.resolve(false);
    };
    const tokensFault = (error: unknown) => error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys || error instanceof errors.JOSENotSupported;
    const resolve: KeySet = async (header, token) => {
      const held = set;
      if (Date.now() - held.failedAt < RETRY_AFTER_FAILURE_MS) {
        const jwks = held.remote.fresh ? held.remote.jwks() : undefined;
        if (!jwks) throw this.unavailable("the issuer's keys cannot be read");
        try {
          return await createLocalJWKSet(jwks)(header, token);
        } catch (error) {
          // A key id not held may be one the issuer added: unknown until its set can be read again.
          if (error instanceof errors.JWKSNoMatchingKey) throw this.unavailable("the issuer's keys cannot be read", error);
          throw error;
        }
      }
      try {
        return await held.remote(header, token);
      } catch (error) {
        // What the token asked for that the set does not have is the token's fault; anything
        // else is the issuer's JWKS failing to load (a non-200 answer, not JSON, not a key set),
        // which jose reports as plain JOSEErrors: a valid token must not be called invalid then.
        const tokens = tokensFault(error);
        if (!tokens) held.failedAt = Date.now();
        // The issuer may have moved its keys to another jwks_uri (found by this request or one
        // beside it): then the token is tried there. A set is replaced at most every REDISCOVER_MS.
        if ((!tokens || error instanceof errors.JWKSNoMatchingKey) && (held !== set || (await moved()))) return resolve(header, token);
        if (tokens) throw error;
        throw this.unavailable("the issuer's keys cannot be read", error);
      }
    };
    return resolve;
  }

  /** The jwks_uri the issuer's discovery document names, once it passed the checks. */
  private async jwksUri(signal: AbortSignal): Promise<URL> {
    const url = `${this.o.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const response = await fetch(url, { signal, redirect: 'error' }).catch((error: unknown) => {
      throw this.unavailable('the discovery document cannot be read', error);
    });
    if (!response.ok) throw this.unavailable(`the discovery document answered ${response.status}`);
    const document = (await response.json().catch(() => ({}))) as { issuer?: unknown; jwks_uri?: unknown };
    if (document.issuer !== this.o.issuer) throw this.unavailable('the discovery document names another issuer');
    if (typeof document.jwks_uri !== 'string') throw this.unavailable('the discovery document has no jwks_uri');
    const jwksUri = new URL(document.jwks_uri);
    if (outboundUrlProblem(jwksUri, this.o.insecure)) throw this.unavailable('the jwks_uri may not be fetched');
    return jwksUri;
  }

  /** jose's remote key set at `uri`, with when a fetch of it last failed. */
  private remoteSet(uri: URL): { uri: URL; remote: ReturnType<typeof createRemoteJWKSet>; failedAt: number } {
    return { uri, remote: createRemoteJWKSet(uri, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 }), failedAt: -Infinity };
  }
}
