/**
 * Where the keyset middleware counts usage in Redis and where rekey reads it (README.md
 * "Usage"). Time is cut into buckets of `bucketMs`; each bucket has
 *
 * - one hash `<prefix>n:<bucket start ms>`: field `<fingerprint>` = requests, `<fingerprint>:e` = errors;
 * - per key used in it, one HyperLogLog `<prefix>s:{<fingerprint>}:<bucket start ms>` of the
 *   source networks (the braces keep one key's buckets in one Cluster slot, so one PFCOUNT
 *   unites them).
 *
 * Both expire `ttlMs` after their last write. Only fingerprints: a key never reaches Redis.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface UsageKeys {
  prefix: string;
  bucketMs: number;
}

export const USAGE_DEFAULTS = { prefix: 'rekey:usage:', bucketMs: 10_000 } as const;

export const ERRORS = ':e';

/** The keyset value of a key rekey throttled: `throttled:<consumer>`. */
export const THROTTLED = 'throttled:';

export const bucketOf = (at: number, bucketMs: number): number => at - (at % bucketMs);
export const countsKey = (keys: UsageKeys, bucket: number): string => `${keys.prefix}n:${bucket}`;
export const sourcesKey = (keys: UsageKeys, fingerprint: string, bucket: number): string => `${keys.prefix}s:{${fingerprint}}:${bucket}`;

/** How long a bucket's keys live: six buckets and a minute, enough for an interval of up to four buckets. */
export const ttlMs = (bucketMs: number): number => bucketMs * 6 + 60_000;

/** The source network of an address: /24 for IPv4 (and IPv4-mapped IPv6), /64 for IPv6; `?` when unknown. */
export function networkOf(address: string | undefined): string {
  if (!address) return '?';
  const v4 = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (isIPv4(v4)) return `${v4.slice(0, v4.lastIndexOf('.'))}.0/24`;
  if (!isIPv6(address)) return '?';
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
