/**
 * Token buckets by key, in process memory: per leak receiver for authenticated reports, per
 * source address for failed authentications (src/http/admission.ts). Each replica limits on its
 * own; a sender that really needs more is a configuration matter (`leaks.rateLimit`).
 */

import { isIPv6 } from 'node:net';

/**
 * The bucket key of a client address: an IPv4 address as it is (also when IPv4-mapped,
 * `::ffff:a.b.c.d`), an IPv6 address by its /64, the smallest block one subscriber is given,
 * so that a host cannot spread its requests over the 2^64 addresses it holds. Not coarser (a
 * /56 or /48): mobile carriers give each device a /64 of their own (3GPP), so a coarser key would
 * lump many real devices together, each one's failures charged to all. A holder of a /48 has
 * 65,536 such sources; what bounds them together is admission's share of unproven sources
 * (src/http/admission.ts), not this key.
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
  /**
   * Keys remembered at most. To make room, of the EVICTION_SCAN (64) least recently charged keys,
   * one whose bucket is full is forgotten (nothing is lost), else one with a token left; a key with
   * an empty bucket (a source over its limit) only when all of them are empty, so a source cannot
   * win its allowance back by making other keys appear, and memory stays bounded.
   * @defaultValue 10000
   */
  maxSources?: number;
  now?: () => number;
}

/** Keys looked at, least recently charged first, for one to forget (RateLimitOptions.maxSources). */
const EVICTION_SCAN = 64;

export class RateLimiter {
  // A Map iterates in insertion order: re-inserting on each take keeps it least recently charged first.
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

  /** Whether `key` has `count` tokens now, without taking them: a look that changes nothing (a key not held is not added). @param count @defaultValue 1 */
  available(key: string, count = 1): boolean {
    const bucket = this.buckets.get(key);
    return (bucket ? this.tokensAt(bucket, this.now()) : this.options.max) >= count;
  }

  /** Seconds until a key with an empty bucket has one token again. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.options.windowMs / this.options.max / 1000));
  }

  private refill(key: string): Bucket {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.options.max, at: now };
    this.buckets.delete(key);
    bucket.tokens = this.tokensAt(bucket, now);
    bucket.at = now;
    this.buckets.set(key, bucket);
    const limit = this.options.maxSources ?? 10_000;
    while (this.buckets.size > limit) this.buckets.delete(this.leastWorthKeeping(key, now));
    return bucket;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private tokensAt(bucket: Bucket, now: number): number {
    const { max, windowMs } = this.options;
    return Math.min(max, bucket.tokens + ((now - bucket.at) * max) / windowMs);
  }

  /**
   * The key to forget, `keep` aside: of the EVICTION_SCAN least recently seen, the first whose
   * bucket is full, else the first with a token left, else (all over their limit) the least
   * recently seen anyway, so that memory stays bounded.
   */
  private leastWorthKeeping(keep: string, now: number): string {
    let oldest: string | undefined;
    let notEmpty: string | undefined;
    let scanned = 0;
    for (const [key, bucket] of this.buckets) {
      if (key === keep) continue;
      oldest ??= key;
      const tokens = this.tokensAt(bucket, now);
      if (tokens >= this.options.max) return key;
      if (tokens >= 1) notEmpty ??= key;
      if (++scanned >= EVICTION_SCAN) break;
    }
    return notEmpty ?? oldest ?? keep;
  }
}
