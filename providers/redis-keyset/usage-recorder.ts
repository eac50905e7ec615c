/**
 * The middleware's side of keyset usage (usage-keys.ts): counts each accepted request (and
 * whether it was answered with an error) per key fingerprint and bucket in memory, with the
 * set of source networks, and writes what it gathered every `flushMs` in one burst of
 * commands sent without waiting for each answer (HINCRBY per key, PFADD of its networks,
 * PEXPIRE). A failed flush drops its counts (usage is at most once; requests are never held up).
 */
import { bucketOf, countsKey, ERRORS, sourcesKey, ttlMs, type UsageKeys } from './usage-keys.js';
import type { KeysetRedis } from './connect.js';

interface Tally {
  requests: number;
  errors: number;
  networks: Set<string>;
}

export class UsageRecorder {
  #pending = new Map<number, Map<string, Tally>>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly redis: KeysetRedis,
    private readonly keys: UsageKeys,
    flushMs: number,
  ) {
    this.#timer = setInterval(() => void this.flush(), flushMs);
    this.#timer.unref();
  }

  /** One answered request of the key with this fingerprint, from `network` (usage-keys.ts networkOf). */
  record(fingerprint: string, network: string, error: boolean): void {
    const bucket = bucketOf(Date.now(), this.keys.bucketMs);
    let byKey = this.#pending.get(bucket);
    if (!byKey) this.#pending.set(bucket, (byKey = new Map<string, Tally>()));
    let tally = byKey.get(fingerprint);
    if (!tally) byKey.set(fingerprint, (tally = { requests: 0, errors: 0, networks: new Set() }));
    tally.requests++;
    if (error) tally.errors++;
    tally.networks.add(network);
  }

  /** Writes what was counted since the previous flush. Never throws. */
  async flush(): Promise<void> {
    const pending = this.#pending;
    if (!pending.size) return;
    this.#pending = new Map();
    const ttl = ttlMs(this.keys.bucketMs);
    const writes: Array<Promise<unknown>> = [];
    for (const [bucket, byKey] of pending) {
      const counts = countsKey(this.keys, bucket);
      for (const [fingerprint, tally] of byKey) {
        const sources = sourcesKey(this.keys, fingerprint, bucket);
        writes.push(this.redis.hincrby(counts, fingerprint, tally.requests));
        if (tally.errors) writes.push(this.redis.hincrby(counts, `${fingerprint}${ERRORS}`, tally.errors));
        writes.push(this.redis.pfadd(sources, ...tally.networks), this.redis.pexpire(sources, ttl));
      }
      writes.push(this.redis.pexpire(counts, ttl));
    }
    await Promise.allSettled(writes);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
