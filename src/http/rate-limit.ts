/**
 * Token buckets by key, in process memory: per leak receiver for authenticated reports, per
 * source address for failed authentications (src/http/admission.ts). Each replica limits on its
 * own; a sender that really needs more is a configuration matter (`leaks.rateLimit`).
 */

interface Bucket {
  tokens: number;
  at: number;
}

export interface RateLimitOptions {
  /** Bucket size: requests a key may make at once, and per window. */
  max: number;
  windowMs: number;
  /** Keys remembered at most; the least recently seen is forgotten first. @defaultValue 10000 */
  maxSources?: number;
  now?: () => number;
}

export class RateLimiter {
  // A Map iterates in insertion order: re-inserting on use keeps it least-recently-used first.
  private readonly buckets = new Map<string, Bucket>();

  constructor(private options: RateLimitOptions) {}

  /** Follows a config change without forgetting the buckets. */
  configure(max: number, windowMs: number): void {
    if (max !== this.options.max || windowMs !== this.options.windowMs) this.options = { ...this.options, max, windowMs };
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const bucket = this.refill(key);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return allowed;
  }

  /** Whether `key` has a token now, without taking it. */
  available(key: string): boolean {
    return this.refill(key).tokens >= 1;
  }

  /** Seconds until a key with an empty bucket has one token again. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.options.windowMs / this.options.max / 1000));
  }

  private refill(key: string): Bucket {
    const now = this.options.now?.() ?? Date.now();
    const { max, windowMs } = this.options;
    const bucket = this.buckets.get(key) ?? { tokens: max, at: now };
    this.buckets.delete(key);
    bucket.tokens = Math.min(max, bucket.tokens + ((now - bucket.at) * max) / windowMs);
    bucket.at = now;
    this.buckets.set(key, bucket);
    const limit = this.options.maxSources ?? 10_000;
    while (this.buckets.size > limit) this.buckets.delete(this.buckets.keys().next().value!);
    return bucket;
  }
}
