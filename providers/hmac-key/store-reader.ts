import { ProviderError } from '../../src/core/errors.js';
import type { SecretStore } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';

/**
 * A reader for createHmacVerifier over any rekey store: the current version and, while its
 * grace lasts, the previous one (rekey destroys it in the store when the grace ends, so it
 * drops out on its own).
 */
export function storeReader(store: SecretStore, timeoutMs = 5000): () => Promise<SecretValue[]> {
  const stage = (name: 'current' | 'previous') =>
    store.read({ stage: name }, { signal: AbortSignal.timeout(timeoutMs) }).then(
      (value) => [value],
      (error: unknown) => {
        if (error instanceof ProviderError && error.code === 'REKEY_ERR_NOT_FOUND') return [];
        throw error;
      },
    );
  return async () => [...(await stage('current')), ...(await stage('previous'))];
}
