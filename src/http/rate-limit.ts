/**
 * Token buckets by key, in process memory: per leak receiver for authenticated reports, per
 * source address for failed authentications (src/http/admission.ts). Each replica limits on its
 * own; a sender that really needs more is a configuration matter (`leaks.rateLimit`).
 */

import { isIPv6 } from 'node:net';

/**
 * The bucket key of a client address: an IPv4 address as it is (also when IPv4-mapped,
 * `::ffff:a.b.c.d`), an IPv6 address by its /64, the smallest block one subscriber is given,
 * so that a host cannot spread its requests over the 2^64 addresses it holds.
 */
export function sourceOf(address: string): string {
  if (!isIPv6(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  const [head = '', tail] = address.toLowerCase().split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

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

  /** Whether `key` has `count` tokens now, without taking them. @param count @defaultValue 1 */
  available(key: string, count = 1): boolean {
    return this.refill(key).tokens >= count;
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
