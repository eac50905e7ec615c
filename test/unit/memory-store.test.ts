/**
 * The test-only memory store (test/support/memory-provider.ts) under the store conformance suite:
 * the integration tests that drive the engine through it rely on it behaving as a store must.
 */
import { randomUUID } from 'node:crypto';
import { storeConformance } from '../conformance/store.js';
import { memoryProvider } from '../support/memory-provider.js';
import { testProviderContext } from '../support/provider-context.js';

storeConformance('memory (test support)', () => {
  const secret = `memory-${randomUUID()}`;
  const instance = memoryProvider.open(memoryProvider.config.parse({ journal: secret }), testProviderContext('mem'));
  return Promise.resolve({ store: instance.store!({ secret, params: {} }), secret, module: memoryProvider });
});
