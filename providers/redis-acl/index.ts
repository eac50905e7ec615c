/**
 * redis-acl: rotates a Redis ACL user's password with native overlap (a user holds several
 * passwords), verified by AUTH, revoked by removing the old password's SHA-256.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { defineProvider } from '../../src/core/provider.js';
import { RedisAclIssuer, type RedisAclSession } from './redis-acl.issuer.js';
import { redisAclConfig, redisAclIssuerBinding, type RedisAclConfig, type RedisAclIssuerBinding } from './redis-acl.schema.js';

export default defineProvider<RedisAclConfig, never, RedisAclIssuerBinding>({
  type: 'redis-acl',
  summary: 'Redis ACL user passwords: add the new one, verify by AUTH, remove the old one by its SHA-256',
  config: redisAclConfig,
  bindings: { issuer: redisAclIssuerBinding },
  open(config, ctx) {
    let admin: Redis | undefined;
    // Resolved on first use, so a missing variable fails the run that needs it, not start-up.
    const url = () => new URL(ctx.credential(config.url).reveal());
    const session: RedisAclSession = {
      provider: ctx.name,
      persist: config.persist,
      admin() {
        if (!admin) {
          admin = new Redis(url().toString(), { maxRetriesPerRequest: 1, connectTimeout: 5000, lazyConnect: false });
          admin.on('error', () => undefined); // surfaced per command; keep ioredis from printing
        }
        return admin;
      },
      probe() {
        // Same server, no credentials: verify authenticates with the new password itself.
        const target = url();
        const options: RedisOptions = {
          host: target.hostname,
          port: Number(target.port || 6379),
          ...(target.protocol === 'rediss:' ? { tls: { servername: target.hostname } } : {}),
          lazyConnect: true,
          enableReadyCheck: false,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: 5000,
          retryStrategy: () => null,
        };
        const probe = new Redis(options);
        probe.on('error', () => undefined);
        return probe;
      },
    };
    return {
      issuer: ({ params }) => new RedisAclIssuer(session, params),
      close() {
        admin?.disconnect();
        admin = undefined;
        return Promise.resolve();
      },
    };
  },
});
