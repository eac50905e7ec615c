/**
 * rekey's side of keyset usage (usage-keys.ts), behind RedisKeysetTarget.readUsage: one per
 * provider instance (every keyset of the provider counts into the same buckets). Each read
 * fetches the count hashes of the buckets from shortly before the previous read up to now
 * (usually two or three, each holding only the keys used in it) and adds what moved since it
 * last saw them to running totals per fingerprint, so the totals are cumulative counters as
 * Target.readUsage wants them. A reader's first read only sets where the buckets' counts start:
 * they reach back before any window, and a new instance (a new config revision) starts its totals
 * at zero, which the collector takes for counters that were reset, so counting them would put
 * several windows' requests into one. Then, for each key that moved, one PFCOUNT over its HyperLogLogs
 * of the buckets the window overlaps (since the previous read, at least windowMs) and of any
 * earlier bucket its newly counted requests were written into (a late flush) gives its distinct
 * source networks. All commands of a read are sent at once. Idle keys cost nothing in Redis;
 * their totals are dropped from memory after an hour without use (a key used again later counts
 * from zero, which the collector expects).
 */
import type { UsageCounter, UsageReading } from '../../src/core/ports.js';
import type { KeysetRedis } from './connect.js';
import { bucketOf, countsKey, ERRORS, sourcesKey, type UsageKeys } from './usage-keys.js';

/** How late the middleware may still write into a bucket (its flush interval, with room). */
const SETTLE_MS = 5_000;
const FORGET_MS = 3_600_000;

interface Total {
  requests: number;
  errors: number;
  movedAt: number;
}

export class KeysetUsageReader {
  /** Per bucket read last time: the counts seen in its hash. */
  #seen = new Map<number, Map<string, number>>();
  readonly #totals = new Map<string, Total>();
  #lastAt: number | undefined;

  constructor(
    private readonly redis: KeysetRedis,
    private readonly keys: UsageKeys,
  ) {}

  async read(windowMs: number): Promise<UsageReading> {
    const now = Date.now();
    const first = this.#lastAt === undefined;
    const { bucketMs } = this.keys;
    const buckets: number[] = [];
    for (let b = bucketOf((this.#lastAt ?? now - windowMs) - SETTLE_MS, bucketMs); b <= now; b += bucketMs) buckets.push(b);
    const hashes = await Promise.all(buckets.map((b) => this.redis.hgetall(countsKey(this.keys, b))));
    /** Per key that moved: the earliest bucket its new requests were written into. */
    const moved = new Map<string, number>();
    const seen = new Map<number, Map<string, number>>();
    buckets.forEach((bucket, i) => {
      const before = this.#seen.get(bucket);
      const counts = new Map<string, number>();
      for (const [field, raw] of Object.entries(hashes[i]!)) {
        const count = Number(raw);
        counts.set(field, count);
        const delta = count - (before?.get(field) ?? 0);
        if (first || !(delta > 0)) continue;
        const errors = field.endsWith(ERRORS);
        const fingerprint = errors ? field.slice(0, -ERRORS.length) : field;
        const total = this.#totals.get(fingerprint) ?? { requests: 0, errors: 0, movedAt: now };
        if (errors) total.errors += delta;
        else total.requests += delta;
        total.movedAt = now;
        this.#totals.set(fingerprint, total);
        moved.set(fingerprint, Math.min(moved.get(fingerprint) ?? bucket, bucket));
      }
      seen.set(bucket, counts);
    });
    // The window's networks: those of its requests, counted since the previous read. A loaded
    // worker reads later than every windowMs; networks over only the last windowMs of its window
    // would then miss most of them (a source-count rule sees a fraction of the window's networks).
    // A loaded API server flushes late, into the buckets of its requests' time, which may end before
    // the previous read: their requests are counted in this window, so their buckets' networks are too
    // (with any network of those buckets counted in the previous window already).
    const windowStart = Math.min(this.#lastAt ?? now, now - windowMs);
    this.#seen = seen;
    this.#lastAt = now;
    const active = [...moved];
    const sources = await Promise.all(
      active.map(([fp, from]) => this.redis.pfcount(...buckets.filter((b) => b >= from || b + bucketMs > windowStart).map((b) => sourcesKey(this.keys, fp, b)))),
    );
    const networks = new Map(active.map(([fp], i) => [fp, sources[i]!]));
    const counters: UsageCounter[] = [];
    for (const [fingerprint, total] of this.#totals) {
      if (now - total.movedAt > FORGET_MS) this.#totals.delete(fingerprint);
      else counters.push({ fingerprint, requests: total.requests, errors: total.errors, sources: networks.get(fingerprint) ?? 0 });
    }
    return { at: new Date(now), counters, ...(first ? { first } : {}) };
  }
}
