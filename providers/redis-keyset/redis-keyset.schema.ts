import { z } from 'zod';
import { credential } from '../../src/core/credential.js';
import { probeSchema } from '../../src/core/kit/probe.js';

export const redisKeysetConfig = z
  .object({
    url: credential().optional().describe("Redis URL as ${env:NAME}; defaults to rekey's own REDIS_URL"),
    keyPrefix: z.string().default('rekey:keyset:').describe('Prefix of the Redis hashes holding accepted fingerprints'),
    channel: z.string().default('rekey:keyset').describe('Pub/Sub channel announcing changes (message: the hash key)'),
    probe: probeSchema.optional().describe('An endpoint guarded by the keyset middleware; verify() expects it to accept the new key'),
  })
  .strict();

export const redisKeysetBinding = z
  .object({ set: z.string().min(1).optional().describe("Keyset name; defaults to the secret's name") })
  .strict();

export type RedisKeysetConfig = z.infer<typeof redisKeysetConfig>;
export type RedisKeysetBinding = z.infer<typeof redisKeysetBinding>;
