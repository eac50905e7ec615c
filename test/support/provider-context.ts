// A ProviderContext for provider tests: the conformance fingerprint key, a silent
// logger, credentials from process.env (never rekey's own, as in rekey), and the local PostgreSQL and Redis.
import { readCredential } from '../../src/config/environment.js';
import { resolveCredential } from '../../src/core/credential.js';
import { RekeyError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { ProviderContext } from '../../src/core/provider.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import { fingerprint } from '../conformance/refs.js';

export function testProviderContext(name: string, overrides: Partial<ProviderContext> = {}): ProviderContext {
  return {
    name,
    log: silentLogger,
    fingerprint,
    credential: (ref) => readCredential(ref, process.env, `providers.${name}`),
    databaseUrl: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redis: parseRedisUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
    storeKey: () => resolveCredential({ kind: 'env', name: 'REKEY_LOCAL_STORE_KEY' }, process.env, `providers.${name}`),
    liveValues: (secret) => Promise.reject(new RekeyError('REKEY_ERR_UNKNOWN', `${secret} is not managed in this test`)),
    liveSecretOf: () => Promise.resolve(undefined),
    ...overrides,
  };
}
