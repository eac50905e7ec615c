import { describe, expect, it } from 'vitest';
import { leaksSchema } from '../../../src/config/leaks.js';
import { RateLimiter } from '../../../src/http/rate-limit.js';

describe('RateLimiter', () => {
  it('allows max at once per source, then refills max per window', () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter({ max: 3, windowMs: 60_000, now: () => clock.now });
    expect([1, 2, 3, 4].map(() => limiter.take('a'))).toEqual([true, true, true, false]);
    expect(limiter.take('b')).toBe(true); // per source
    clock.now = 20_000; // a third of the window: one token back
    expect([limiter.take('a'), limiter.take('a')]).toEqual([true, false]);
  });

  it('forgets the least recently seen sources beyond maxSources', () => {
    const limiter = new RateLimiter({ max: 1, windowMs: 60_000, maxSources: 2, now: () => 0 });
    limiter.take('a');
    limiter.take('b');
    limiter.take('c'); // evicts a
    expect(limiter.take('a')).toBe(true);
    expect(limiter.take('c')).toBe(false);
  });

  it('to make room, forgets a full bucket first (nothing lost), then the least recently seen with a token left, never one that is empty', () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter({ max: 2, windowMs: 60_000, maxSources: 3, now: () => clock.now });
    limiter.take('refilled');
    clock.now = 30_000; // `refilled` is full again
    limiter.take('empty');
    limiter.take('empty');
    limiter.take('partial');
    expect(limiter.available('unseen')).toBe(true); // only looked at: not added, nothing forgotten
    limiter.take('a'); // forgets `refilled`, the least recently seen of all, but full
    expect([limiter.available('empty'), limiter.available('partial', 2)]).toEqual([false, false]);
    limiter.take('b'); // no full bucket: forgets `partial`, the least recently seen with a token left
    expect([limiter.available('empty'), limiter.available('partial', 2)]).toEqual([false, true]);
    limiter.take('c'); // then `a`; `empty` is kept however many keys come
    expect([limiter.available('empty'), limiter.available('a', 2)]).toEqual([false, true]);
  });

  it('forgets a source over its limit only when every key it looks at is over its limit too: memory stays bounded', () => {
    const limiter = new RateLimiter({ max: 1, windowMs: 60_000, maxSources: 100, now: () => 0 });
    for (let i = 0; i < 100; i++) limiter.take(`over-${i}`);
    limiter.take('new'); // all 64 looked at are empty: the least recently seen goes anyway
    expect(limiter.available('over-0')).toBe(true);
    expect(limiter.available('over-1')).toBe(false);
  });

  it('follows a smaller max at once', () => {
    const limiter = new RateLimiter({ max: 100, windowMs: 60_000, now: () => 0 });
    limiter.take('a');
    limiter.configure(2, 60_000);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([true, true, false]);
  });
});

describe('leaks: config', () => {
  it('takes credentials only as ${env:NAME} and key lists only from files or https', () => {
    const ok = leaksSchema.parse({
      github: { publicKeys: 'https://api.github.com/meta/public_keys/secret_scanning' },
      gitguardian: { token: '${env:GG_TOKEN}', tolerance: '2m' },
      awsHealth: { token: '${env:AWS_HEALTH_TOKEN}' },
      webhook: { secret: '${env:LEAK_WEBHOOK_SECRET}' },
    });
    expect(ok).toMatchObject({
      github: { refresh: 300_000, minRefresh: 60_000 },
      gitguardian: { token: { kind: 'env', name: 'GG_TOKEN' }, tolerance: 120_000 },
      awsHealth: { header: 'X-Rekey-Token' },
      webhook: { tolerance: 300_000 },
      rateLimit: { max: 60, window: 60_000 },
    });
    expect(leaksSchema.safeParse({ gitguardian: { token: 'inline-secret' } }).success).toBe(false);
    expect(leaksSchema.safeParse({ github: { publicKeys: 'http://example.com/keys' } }).success).toBe(false);
    expect(leaksSchema.safeParse({ github: { publicKeys: 'http://127.0.0.1:8080/keys' } }).success).toBe(true);
    expect(leaksSchema.safeParse({ github: { publicKeys: '/etc/rekey/github-keys.json' } }).success).toBe(true);
    expect(leaksSchema.safeParse({ slack: {} }).success).toBe(false);
  });
});
