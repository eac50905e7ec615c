/**
 * Worker heartbeats: each worker process records "seen now" in Redis every few seconds, so a
 * CLI waiting on queued work can tell "no worker is running" from "the workers are busy".
 * One sorted set per queue prefix (`<prefix>:heartbeats`, in the prefix's cluster slot), worker
 * id -> Redis server time in ms; both the beat and the read use Redis' clock, so clock skew
 * between the worker's machine and the caller's does not matter. Entries older than a day
 * are dropped by the next beat.
 */
import type { RedisConnection } from './connection.js';

/** How often a worker beats. */
export const HEARTBEAT_EVERY = '5s';
/** A worker not seen for this long (three missed beats) counts as gone. */
export const HEARTBEAT_STALE_MS = 15_000;

const BEAT = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400000)
return now`;

const LAST = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #last == 0 then return {} end
return {last[1], tostring(now - tonumber(last[2]))}`;

export interface LastHeartbeat {
  /** `host:pid` of the worker seen last. */
  worker: string;
  /** How long ago, by Redis' clock. */
  ageMs: number;
}

export class Heartbeats {
  private readonly key: string;

  constructor(private readonly redis: RedisConnection, prefix: string) {
    this.key = `${prefix}:heartbeats`;
  }

  /** Records that `worker` is alive now. */
  async beat(worker: string): Promise<void> {
    await this.redis.eval(BEAT, 1, this.key, worker);
  }

  /** The worker seen most recently, or undefined when none has beaten in the last day. */
  async last(): Promise<LastHeartbeat | undefined> {
    const [worker, age] = (await this.redis.eval(LAST, 1, this.key)) as [string?, string?];
    return worker === undefined ? undefined : { worker, ageMs: Number(age) };
  }
}
