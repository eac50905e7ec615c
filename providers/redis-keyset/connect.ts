/** One connection to the Redis holding keysets, in any REDIS_URL form (single node, Sentinel, Cluster). */
import { Cluster, Redis } from 'ioredis';
import { type RedisEndpoint, redisClientPlan } from '../../src/core/redis-endpoint.js';

export type KeysetRedis = Redis | Cluster;

/** `retries`: how often a command is retried across reconnects before it fails (null: until Redis is back). */
export function connectKeysetRedis(endpoint: RedisEndpoint, retries: number | null): KeysetRedis {
  const plan = redisClientPlan(endpoint);
  // A demoted primary answers writes with READONLY: reconnect (Sentinel finds the new one) and resend.
  const options = { ...plan.options, maxRetriesPerRequest: retries, reconnectOnError: (error: Error) => (error.message.startsWith('READONLY') ? (2 as const) : false) };
  return plan.cluster ? new Cluster(plan.nodes, { redisOptions: options, scaleReads: 'master' }) : new Redis(options);
}
