import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { ProviderError } from '../../src/core/errors.js';
import { jwtRefusalReason } from '../../src/core/kit/jwt-errors.js';
import { outboundUrlProblem } from '../../src/core/kit/outbound-url.js';
import type { Authenticator, Call, JsonObject, Subject } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { OidcBinding } from './oidc.schema.js';

type KeySet = ReturnType<typeof createRemoteJWKSet>;

/**
 * Verifies an OpenID Connect issuer's JWT (an ID token, or a JWT access token): the signature
 * with a key of the issuer's JWKS (found through its discovery document, cached; an unknown
 * key id fetches the set again at most every 30 s), the algorithm among those configured (never
 * `none` or HMAC), then exp, nbf, iss (exactly the configured issuer), aud, and the configured
 * claim rules.
 */
export class OidcAuthenticator implements Authenticator {
  private keys: Promise<KeySet> | undefined;

  constructor(
    private readonly name: string,
    private readonly params: OidcBinding,
  ) {}

  async authenticate(credential: SecretValue, call: Call): Promise<Subject> {
    const keys = await this.keySet(call);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(credential.reveal(), keys, {
        algorithms: this.params.algorithms,
        issuer: this.params.issuer,
        audience: this.params.audience,
        requiredClaims: ['exp'],
        clockTolerance: this.params.clockToleranceSeconds,
      }));
    } catch (error) {
      if (error instanceof errors.JWKSTimeout || (error instanceof Error && !(error instanceof errors.JOSEError))) {
        throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: the issuer's keys cannot be read`, { provider: this.name, cause: error });
      }
      throw this.denied(jwtRefusalReason(error));
    }
    for (const [claim, wanted] of Object.entries(this.params.claims)) {
      const allowed = Array.isArray(wanted) ? wanted : [wanted];
      if (!allowed.some((value) => value === payload[claim])) throw this.denied('claim rule');
    }
    const id = payload[this.params.subjectClaim];
    if (typeof id !== 'string' || !id) throw this.denied('subject');
    return { id, claims: payload as JsonObject };
  }

  /** The issuer's key set, from its discovery document, read once (again after a failure). */
  private keySet(call: Call): Promise<KeySet> {
    this.keys ??= this.discover(call).catch((error: unknown) => {
      this.keys = undefined;
      throw error;
    });
    return this.keys;
  }

  private async discover(call: Call): Promise<KeySet> {
    const unavailable = (why: string, cause?: unknown) => new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: ${why}`, { provider: this.name, ...(cause ? { cause } : {}) });
    const url = `${this.params.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const response = await fetch(url, { signal: call.signal, redirect: 'error' }).catch((error: unknown) => {
      throw unavailable('the discovery document cannot be read', error);
    });
    if (!response.ok) throw unavailable(`the discovery document answered ${response.status}`);
    const document = (await response.json().catch(() => ({}))) as { issuer?: unknown; jwks_uri?: unknown };
    if (document.issuer !== this.params.issuer) throw unavailable('the discovery document names another issuer');
    if (typeof document.jwks_uri !== 'string') throw unavailable('the discovery document has no jwks_uri');
    const jwksUri = new URL(document.jwks_uri);
    if (outboundUrlProblem(jwksUri, this.params.insecure)) throw unavailable('the jwks_uri may not be fetched');
    return createRemoteJWKSet(jwksUri, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
  }

  private denied(reason: string): ProviderError {
    return new ProviderError('REKEY_ERR_DENIED', `authenticator ${this.name}: ${reason}`, { provider: this.name });
  }
}
