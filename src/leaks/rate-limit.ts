/**
 * A token bucket per source address, in process memory. Each replica limits on its own,
 * which is enough to keep one noisy or hostile source from occupying the receivers; a
 * sender that really needs more is a configuration matter (`leaks.rateLimit`).
 */

interface Bucket {
  tokens: number;
  at: number;
}

export interface RateLimitOptions {
  /** Bucket size: requests a source may send at once, and per window. */
  max: number;
  windowMs: number;
  /** Sources remembered at most; the least recently seen is forgotten first. @defaultValue 10000 */
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

  /** Takes one token for `source`; false when its bucket is empty. */
  take(source: string): boolean {
    const now = this.options.now?.() ?? Date.now();
    const { max, windowMs } = this.options;
    const bucket = this.buckets.get(source) ?? { tokens: max, at: now };
    this.buckets.delete(source);
    bucket.tokens = Math.min(max, bucket.tokens + ((now - bucket.at) * max) / windowMs);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(source, bucket);
    const limit = this.options.maxSources ?? 10_000;
    while (this.buckets.size > limit) this.buckets.delete(this.buckets.keys().next().value!);
    return allowed;
  }
}
