/** Redis for test code, in any REDIS_URL form (single node, Sentinel, Cluster), through rekey's own connection code. */
import type { JobSchedulerJson, Queue } from 'bullmq';
import { Cluster } from 'ioredis';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import { openRedis, type RedisConnection } from '../../src/queue/connection.js';
import { REDIS_URL } from './services.js';

/** A short-lived connection that fails fast when Redis is away. */
export function testRedis(url = REDIS_URL): RedisConnection {
  return openRedis(parseRedisUrl(url), { longLived: false });
}

/** Every key matching `pattern`, on every primary of a Cluster. */
export async function scanKeys(redis: RedisConnection, pattern: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const keys: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      keys.push(...found);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

/** The secrets' rotation schedulers on a rotations queue (the cluster's audit anchor scheduler shares the queue). */
export async function secretSchedulers(rotations: Queue): Promise<JobSchedulerJson[]> {
  return (await rotations.getJobSchedulers(0, -1)).filter((s) => s.key.startsWith('rotate.'));
}
