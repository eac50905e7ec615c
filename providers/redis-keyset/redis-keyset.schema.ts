import { z } from 'zod';
import { credential } from '../../src/core/credential.js';
import { probeSchema } from '../../src/core/kit/probe.js';

export const redisKeysetConfig = z
  .object({
    url: credential().optional().describe("Redis URL as ${env:NAME}; defaults to rekey's own REDIS_URL"),
    keyPrefix: z.string().default('rekey:keyset:').describe('Prefix of the Redis hashes holding accepted fingerprints'),
    channel: z.string().default('rekey:keyset').describe('Pub/Sub channel announcing changes (message: the hash key)'),
    probe: probeSchema.optional().describe('An endpoint guarded by the keyset middleware; verify() expects it to accept the new key'),
    usageCounters: z
      .object({
        prefix: z.string().default('rekey:usage:').describe("Prefix of the middleware's usage keys (its usage.prefix)"),
        bucketMs: z.number().int().min(100).max(3_600_000).default(10_000).describe("Length of the middleware's count buckets, ms (its usage.bucketMs); at most the usage interval, at least a quarter of it"),
      })
      .strict()
      .prefault({})
      .describe("Where the keyset middleware counts usage (README.md \"Usage\"); read when the provider's usage: { interval } is set"),
  })
  .strict();

export const redisKeysetBinding = z
  .object({ set: z.string().min(1).optional().describe("Keyset name; defaults to the secret's name") })
  .strict();

export type RedisKeysetConfig = z.infer<typeof redisKeysetConfig>;
export type RedisKeysetBinding = z.infer<typeof redisKeysetBinding>;
