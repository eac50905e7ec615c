import { createSecretKey, type KeyObject } from 'node:crypto';
import { ProviderError } from '../../src/core/errors.js';
import { jwtRefusalReason } from '../../src/core/kit/jwt-errors.js';
import type { Authenticator, Call, JsonObject, Subject } from '../../src/core/ports.js';
import type { LiveValue } from '../../src/core/provider.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { JWTClaimVerificationOptions } from 'jose';
import type { AttestationJwtBinding } from './attestation-jwt.schema.js';
import { verifyHs256 } from './hs256.js';

/** Fewer key bytes than this (hmac-key's own minimum) verify nothing: an empty or short key is one anyone could guess. */
const MIN_KEY_BYTES = 16;

/**
 * Verifies an HS256 JWT (hs256.ts; the algorithm is pinned: `none`, RS256 and the rest are refused)
 * against each live version of the shared secret, current first: a token signed with the
 * previous version still passes during its grace, one signed with a compromised or retired
 * version never does. Then exp, nbf, iat (present, not older than maxAgeSeconds), aud and iss.
 * The subject names the version that verified, so rekey re-checks it is still live when it
 * records the hand-out (the values may come from a cache).
 */
export class AttestationJwtAuthenticator implements Authenticator {
  /** Each live value's HMAC key, imported once: the delivery cache hands the same value objects out. */
  private readonly keys = new WeakMap<SecretValue, KeyObject>();

  /** The claim checks, made once: they depend on the binding only. */
  private readonly claims: JWTClaimVerificationOptions;

  constructor(
    private readonly name: string,
    private readonly params: AttestationJwtBinding,
    private readonly liveValues: (secret: string, call: Call) => Promise<LiveValue[]>,
  ) {
    this.claims = {
      audience: params.audience,
      ...(params.issuer ? { issuer: params.issuer } : {}),
      requiredClaims: ['exp', 'iat'],
      maxTokenAge: params.maxAgeSeconds,
      clockTolerance: params.clockToleranceSeconds,
    };
  }

  async authenticate(credential: SecretValue, call: Call): Promise<Subject> {
    const values = await this.liveValues(this.params.secret, call).catch((cause: unknown) => {
      throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: the versions of ${this.params.secret} cannot be read`, { provider: this.name, cause });
    });
    if (!values.length) throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: ${this.params.secret} has no live version`, { provider: this.name });
    let reason: string | undefined;
    for (const { versionId, value } of values) {
      // A value that decodes to too few bytes (not base64 under `encoding: base64` decodes to none) is skipped, never tried.
      const key = this.key(value);
      if ((key.symmetricKeySize ?? 0) < MIN_KEY_BYTES) continue;
      try {
        const payload = verifyHs256(credential.reveal(), key, this.claims);
        const id = payload[this.params.subjectClaim];
        if (typeof id !== 'string' || !id) throw this.denied('subject');
        return { id, claims: payload as JsonObject, versions: [versionId] };
      } catch (error) {
        if (error instanceof ProviderError) throw error;
        reason = jwtRefusalReason(error);
        // Only a signature that does not match this version sends us to the next one.
        if (reason !== 'signature') break;
      }
    }
    if (reason === undefined) throw new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: ${this.params.secret} has no live version with a key of ${MIN_KEY_BYTES} bytes or more`, { provider: this.name });
    throw this.denied(reason);
  }

  private key(value: SecretValue): KeyObject {
    let key = this.keys.get(value);
    if (!key) {
      const text = value.reveal();
      key = createSecretKey(Buffer.from(text, this.params.encoding));
      this.keys.set(value, key);
    }
    return key;
  }

  private denied(reason: string): ProviderError {
    return new ProviderError('REKEY_ERR_DENIED', `authenticator ${this.name}: ${reason}`, { provider: this.name });
  }
}
