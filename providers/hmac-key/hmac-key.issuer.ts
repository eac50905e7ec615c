import { randomBytes } from 'node:crypto';
import { ProviderError } from '../../src/core/errors.js';
import type { Call, IssuedRef, Issuer, JsonObject, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { HmacKeyIssuerBinding } from './hmac-key.schema.js';
import { HMAC_ALGORITHM, hmacDigest } from './hmac-key.verifier.js';

/**
 * Mints random request-signing secrets. There is no upstream: the secret is only ever in the
 * store, in the signers it is deployed to, and (briefly) in verifiers' memory, so revoke has
 * nothing to call and succeeds; the version stops verifying once it leaves the store's
 * current/previous set that {@link createHmacVerifier} reads.
 */
export class HmacKeyIssuer implements Issuer {
  constructor(
    private readonly provider: string,
    private readonly params: HmacKeyIssuerBinding,
  ) {}

  issue(_version: VersionRef, _call: Call): Promise<{ value: SecretValue; state: JsonObject }> {
    const value = SecretValue.of(this.params.prefix + randomBytes(this.params.bytes).toString('base64url'));
    // Public facts only: enough for `rekey status` to say what kind of secret this is.
    return Promise.resolve({ value, state: { algorithm: HMAC_ALGORITHM, bytes: this.params.bytes } });
  }

  /** Checks the value has the configured shape and can key an HMAC (there is no upstream to ask). */
  verify(version: IssuedRef, value: SecretValue, _call: Call): Promise<void> {
    const text = value.reveal();
    const body = text.startsWith(this.params.prefix) ? text.slice(this.params.prefix.length) : undefined;
    const bytes = body !== undefined && /^[A-Za-z0-9_-]+$/.test(body) ? Buffer.from(body, 'base64url').length : 0;
    if (bytes !== this.params.bytes || hmacDigest(value, 'probe').length !== 64) {
      return Promise.reject(
        new ProviderError(
          'REKEY_ERR_VERIFY_FAILED',
          `secret ${version.secret} version ${version.versionId}: value is not a ${this.params.bytes}-byte key with the configured prefix`,
          { provider: this.provider, retryable: false },
        ),
      );
    }
    return Promise.resolve();
  }

  /** Nothing upstream to kill; idempotent by construction. */
  revoke(_version: IssuedRef, _call: Call): Promise<void> {
    return Promise.resolve();
  }
}
