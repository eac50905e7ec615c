// A ProviderContext for provider tests: the conformance fingerprint key, a silent
// logger, credentials from process.env, and the local PostgreSQL and Redis.
import { resolveCredential } from '../../src/core/credential.js';
import { silentLogger } from '../../src/core/logger.js';
import type { ProviderContext } from '../../src/core/provider.js';
import { fingerprint } from '../conformance/refs.js';

export function testProviderContext(name: string, overrides: Partial<ProviderContext> = {}): ProviderContext {
  return {
    name,
    log: silentLogger,
    fingerprint,
    credential: (ref) => resolveCredential(ref, process.env, `providers.${name}`),
    databaseUrl: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    ...overrides,
  };
}
