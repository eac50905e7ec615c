import { describeError } from '../../src/core/errors.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import { connectKeysetRedis } from './connect.js';
import { defineProvider } from '../../src/core/provider.js';
import { RedisKeysetTarget } from './redis-keyset.target.js';
import { redisKeysetBinding, redisKeysetConfig } from './redis-keyset.schema.js';
import { KeysetUsageReader } from './usage-reader.js';

export { createKeysetVerifier, keysetAuth, type Admission, type KeysetVerifier } from './middleware.js';

/** `providers: { api: { type: redis-keyset } }` then `targets: [api]` */
export default defineProvider({
  type: 'redis-keyset',
  summary: 'Publishes fingerprints of accepted keys to a Redis hash, for API servers using the keyset middleware',
  config: redisKeysetConfig,
  bindings: { target: redisKeysetBinding },
  usageSource: true,
  throttles: true,
  open(config, ctx) {
    const redis = connectKeysetRedis(config.url ? parseRedisUrl(ctx.credential(config.url).reveal()) : ctx.redis, 2);
    redis.on('error', (error) => ctx.log.debug({ error: describeError(error) }, 'redis-keyset: connection error'));
    // One per provider instance: every keyset counts into the same buckets.
    const usage = new KeysetUsageReader(redis, config.usageCounters);
    return {
      target: ({ secret, params }) => new RedisKeysetTarget(redis, config, `${config.keyPrefix}${params.set ?? secret}`, ctx.name, usage),
      close: async () => void (await redis.quit().catch(() => redis.disconnect())),
    };
  },
});
