import { Redis } from 'ioredis';
import { describeError } from '../../src/core/errors.js';
import { defineProvider } from '../../src/core/provider.js';
import { RedisKeysetTarget } from './redis-keyset.target.js';
import { redisKeysetBinding, redisKeysetConfig } from './redis-keyset.schema.js';

export { createKeysetVerifier, keysetAuth, type KeysetVerifier } from './middleware.js';

/** `providers: { api: { type: redis-keyset } }` then `targets: [api]` */
export default defineProvider({
  type: 'redis-keyset',
  summary: 'Publishes fingerprints of accepted keys to a Redis hash, for API servers using the keyset middleware',
  config: redisKeysetConfig,
  bindings: { target: redisKeysetBinding },
  open(config, ctx) {
    const redis = new Redis(config.url ? ctx.credential(config.url).reveal() : ctx.redisUrl, { maxRetriesPerRequest: 2 });
    redis.on('error', (error) => ctx.log.debug({ error: describeError(error) }, 'redis-keyset: connection error'));
    return {
      target: ({ secret, params }) => new RedisKeysetTarget(redis, config, `${config.keyPrefix}${params.set ?? secret}`, ctx.name),
      close: async () => void (await redis.quit().catch(() => redis.disconnect())),
    };
  },
});
