import { OidcVerifier } from '../../src/core/kit/oidc-verifier.js';
import type { Authenticator, Call, JsonObject, Subject } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { OidcBinding } from './oidc.schema.js';

/**
 * Verifies an OpenID Connect issuer's JWT (an ID token, or a JWT access token): the signature
 * with a key of the issuer's JWKS (found through its discovery document, `OidcVerifier`), the
 * algorithm among those configured (never `none` or HMAC), then exp, nbf, iss (exactly the
 * configured issuer), aud, and the configured claim rules.
 */
export class OidcAuthenticator implements Authenticator {
  private readonly verifier: OidcVerifier;

  constructor(
    name: string,
    private readonly params: OidcBinding,
  ) {
    this.verifier = new OidcVerifier(name, params);
  }

  async authenticate(credential: SecretValue, call: Call): Promise<Subject> {
    const payload = await this.verifier.verify(credential, call);
    for (const [claim, wanted] of Object.entries(this.params.claims)) {
      const allowed = Array.isArray(wanted) ? wanted : [wanted];
      if (!allowed.some((value) => value === payload[claim])) throw this.verifier.denied('claim rule');
    }
    const id = payload[this.params.subjectClaim];
    if (typeof id !== 'string' || !id) throw this.verifier.denied('subject');
    return { id, claims: payload as JsonObject };
  }
}
