import { z } from 'zod';
import { credential } from '../../src/core/credential.js';

/** The `providers:` entry: how rekey reaches the Redis server whose ACL it manages. */
export const redisAclConfig = z
  .object({
    /**
     * Managing connection URL, e.g. `${env:REDIS_ADMIN_URL}` holding
     * `redis://rekey-admin:<password>@redis.internal:6379` (`rediss://` for TLS).
     */
    url: credential(),
    /**
     * Where to persist ACL changes after each one: `none` (the server's own mechanism, or nothing),
     * `acl-save` (servers that load users from an `aclfile`), `config-rewrite` (users in redis.conf).
     * @defaultValue 'none'
     */
    persist: z.enum(['none', 'acl-save', 'config-rewrite']).default('none'),
  })
  .strict();
export type RedisAclConfig = z.infer<typeof redisAclConfig>;

/** Per-secret issuer parameters. */
export const redisAclIssuerBinding = z
  .object({
    /** The ACL user whose passwords rotate. Never `default`: other clients rely on it. */
    user: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits and _ . : -, at most 64')
      .refine((name) => name !== 'default', 'the default user is never managed by rekey'),
    /**
     * ACL rules applied only when rekey creates the user (it does not exist yet), e.g.
     * `['~app:*', '+@read', '+@write']`. Existing users keep the rules an operator gave them.
     * @defaultValue [] (a new user can authenticate but run nothing)
     */
    rules: z
      .array(
        z
          .string()
          .regex(/^[^\s<>#!]\S*$/, 'one ACL rule without whitespace; passwords are not allowed here')
          .refine((rule) => !['nopass', 'resetpass', 'reset'].includes(rule.toLowerCase()), 'rekey owns the passwords'),
      )
      .default([]),
  })
  .strict();
export type RedisAclIssuerBinding = z.infer<typeof redisAclIssuerBinding>;
