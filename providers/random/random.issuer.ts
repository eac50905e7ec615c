import { ProviderError } from '../../src/core/errors.js';
import type { Issuer, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { generateKey, hasValidChecksum } from '../../src/core/key-format.js';
import type { RandomIssuerBinding } from './random.schema.js';

/**
 * First-party API keys minted locally. Nothing exists upstream: a key is alive exactly
 * where targets accept it, so revoke() has nothing to do once core has retired it.
 */
export class RandomIssuer implements Issuer {
  constructor(
    private readonly binding: RandomIssuerBinding,
    private readonly provider: string,
  ) {}

  issue(): Promise<{ value: SecretValue; state: { prefix: string } }> {
    return Promise.resolve({ value: SecretValue.of(generateKey(this.binding.prefix)), state: { prefix: this.binding.prefix } });
  }

  verify(version: VersionRef, value: SecretValue): Promise<void> {
    const key = value.reveal();
    if (!key.startsWith(this.binding.prefix) || !hasValidChecksum(key)) {
      return Promise.reject(new ProviderError('REKEY_ERR_VERIFY_FAILED', `version ${version.number} of ${version.secret} is not a well-formed key`, { provider: this.provider }));
    }
    return Promise.resolve();
  }

  revoke(): Promise<void> {
    return Promise.resolve();
  }
}
