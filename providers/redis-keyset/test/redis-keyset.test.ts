import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { call, newVersion, TEST_FINGERPRINT_KEY } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { deleteKeys } from '../../../test/support/isolation.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { REDIS_URL } from '../../../test/support/services.js';
import { parseRedisUrl } from '../../../src/core/redis-endpoint.js';
import { until } from '../../../test/support/poll.js';
import keyset, { createKeysetVerifier, keysetAuth } from '../index.js';
import { bucketOf, networkOf } from '../usage-keys.js';
import { KeysetUsageReader } from '../usage-reader.js';
import { UsageRecorder } from '../usage-recorder.js';

const prefix = `test-keyset-${process.pid}-${Date.now()}:`;
const channel = `${prefix}changes`;
let counter = 0;
afterAll(() => deleteKeys(`${prefix}*`));

/**
 * An API guarded by the keyset middleware: the real consumer of this target. `lagging` requests
 * are refused first, as by a server that has not heard of the latest change yet.
 */
async function guardedApi(secret: string, lagging = 0) {
  const verifier = await createKeysetVerifier({ redisUrl: REDIS_URL, fingerprintKey: TEST_FINGERPRINT_KEY, keyset: secret, keyPrefix: prefix, channel });
  const app = Fastify();
  let refused = 0;
  app.addHook('onRequest', async (_request, reply) => {
    if (refused++ < lagging) return reply.code(401).send({ error: 'invalid API key' });
  });
  app.addHook('onRequest', keysetAuth(verifier));
  app.get('/', (request) => ({ consumer: (request as unknown as { consumer: string }).consumer }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, verifier, close: async () => (await app.close(), await verifier.close()) };
}

async function fixture(lagging = 0) {
  const secret = `secret-${++counter}`;
  const api = await guardedApi(secret, lagging);
  const config = keyset.config.parse({ keyPrefix: prefix, channel, probe: { url: api.url } });
  const instance = keyset.open(config, testProviderContext('api', { redis: parseRedisUrl(REDIS_URL) }));
  return { target: instance.target!({ secret, params: {} }), secret, api, cleanup: async () => (await instance.close?.(), await api.close()) };
}

targetConformance('redis-keyset', () => fixture(), { probes: true });

let f: Awaited<ReturnType<typeof fixture>>;
beforeAll(async () => (f = await fixture()));
afterAll(() => f.cleanup());

it('keeps fingerprints, never keys, in Redis', async () => {
  const v = newVersion(f.secret);
  await f.target.deploy(v.ref, v.value, call());
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL);
  const stored = await redis.hgetall(`${prefix}${f.secret}`);
  redis.disconnect();
  expect(Object.keys(stored)).toEqual([v.ref.fingerprint]);
  expect(JSON.stringify(stored)).not.toContain(v.value.reveal());
});

it('names the consumer to the API and rejects a retired key within a few ms', async () => {
  const v = newVersion(f.secret, 'acme');
  await f.target.deploy(v.ref, v.value, call());
  await f.target.verify(v.ref, v.value, call());
  const ok = await fetch(f.api.url, { headers: { 'x-api-key': v.value.reveal() } });
  expect(await ok.json()).toEqual({ consumer: 'acme' });
  await f.target.retire(v.ref, call());
  const started = Date.now();
  while (f.api.verifier.check(v.value.reveal()) !== undefined) {
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 1));
  }
  expect((await fetch(f.api.url, { headers: { 'x-api-key': v.value.reveal() } })).status).toBe(401);
});

it('verify waits for an API server that hears of the deploy late, within the probe timeout', async () => {
  const lagging = await fixture(2);
  try {
    const v = newVersion(lagging.secret, 'acme');
    await lagging.target.deploy(v.ref, v.value, call());
    await lagging.target.verify(v.ref, v.value, call());
    expect((await fetch(lagging.api.url, { headers: { 'x-api-key': v.value.reveal() } })).status).toBe(200);
  } finally {
    await lagging.cleanup();
  }
});

describe('usage source', () => {
  const usage = { prefix: `${prefix}usage:`, bucketMs: 200 };

  /** A test of the counters: the middleware's recorder and rekey's reader on one connection, closed after it. */
  const counting = async (test: (o: { redis: Redis; recorder: UsageRecorder; reader: KeysetUsageReader }) => Promise<void>) => {
    const redis = new Redis(REDIS_URL);
    const recorder = new UsageRecorder(redis, usage, 60_000);
    try {
      await test({ redis, recorder, reader: new KeysetUsageReader(redis, usage) });
    } finally {
      await recorder.close();
      redis.disconnect();
    }
  };

  it('names networks: /24 for IPv4 (mapped too), /64 for IPv6', () => {
    expect(networkOf('10.1.2.3')).toBe('10.1.2.0/24');
    expect(networkOf('::ffff:10.1.2.3')).toBe('10.1.2.0/24');
    expect(networkOf('2001:db8:0:12::7')).toBe('2001:db8:0:12::/64');
    expect(networkOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(networkOf(undefined)).toBe('?');
  });

  it('reads what the middleware counted as cumulative counters, incrementally, with the networks of the window', () =>
    counting(async ({ redis, recorder, reader }) => {
      const counters = async (windowMs: number) => new Map((await reader.read(windowMs)).counters.map((c) => [c.fingerprint, c]));
      expect((await counters(1000)).size).toBe(0);
      for (let i = 0; i < 30; i++) recorder.record('fp-a', networkOf(`10.0.${i % 3}.9`), i % 10 === 0);
      recorder.record('fp-b', networkOf('10.9.9.9'), false);
      await recorder.flush();
      let read = await counters(1000);
      expect(read.get('fp-a')).toEqual({ fingerprint: 'fp-a', requests: 30, errors: 3, sources: 3 });
      expect(read.get('fp-b')).toEqual({ fingerprint: 'fp-b', requests: 1, errors: 0, sources: 1 });
      // Nothing new: the same totals, no sources (a key counts networks only in windows it was used in).
      // Read in a later bucket than that traffic, so the next window (from this read) holds none of its networks.
      const counted = bucketOf(Date.now(), usage.bucketMs);
      await until(() => Promise.resolve(bucketOf(Date.now(), usage.bucketMs) > counted), 5000, 'the next bucket');
      read = await counters(1000);
      expect(read.get('fp-a')).toEqual({ fingerprint: 'fp-a', requests: 30, errors: 3, sources: 0 });
      // Later traffic lands in later buckets; the totals only grow by it, and sources are the window's.
      await new Promise((r) => setTimeout(r, 3 * usage.bucketMs));
      for (let i = 0; i < 5; i++) recorder.record('fp-a', networkOf('192.168.7.1'), true);
      await recorder.flush();
      read = await counters(usage.bucketMs);
      expect(read.get('fp-a')).toEqual({ fingerprint: 'fp-a', requests: 35, errors: 8, sources: 1 });
      expect(read.get('fp-b')).toMatchObject({ requests: 1, sources: 0 });
      // Nothing but fingerprints, counts and networks in Redis.
      const stored = await redis.keys(`${usage.prefix}*`);
      expect(stored.every((k) => k.startsWith(`${usage.prefix}n:`) || k.startsWith(`${usage.prefix}s:{fp-`))).toBe(true);
      expect(await redis.pttl(stored[0]!)).toBeGreaterThan(0);
    }));

  it('counts the networks of a late read over its whole window, since the previous read', () =>
    counting(async ({ recorder, reader }) => {
      const sources = async (windowMs: number) => (await reader.read(windowMs)).counters.find((c) => c.fingerprint === 'fp-late');
      await reader.read(usage.bucketMs);
      recorder.record('fp-late', networkOf('10.7.1.9'), false);
      await recorder.flush();
      // The next read comes three intervals late (a loaded worker): its window holds both networks.
      await new Promise((r) => setTimeout(r, 3 * usage.bucketMs));
      recorder.record('fp-late', networkOf('10.7.2.9'), false);
      await recorder.flush();
      expect(await sources(usage.bucketMs)).toEqual({ fingerprint: 'fp-late', requests: 2, errors: 0, sources: 2 });
    }));

  it('counts the networks of requests the middleware wrote after the previous read (a late flush), with their requests', () =>
    counting(async ({ recorder, reader }) => {
      const counted = async () => (await reader.read(usage.bucketMs)).counters.find((c) => c.fingerprint === 'fp-flush');
      await reader.read(usage.bucketMs);
      recorder.record('fp-flush', networkOf('10.8.1.9'), false);
      const early = bucketOf(Date.now(), usage.bucketMs);
      // A starved API server flushes late: the next read comes a full bucket after that request's, before its flush.
      await until(() => Promise.resolve(bucketOf(Date.now(), usage.bucketMs) >= early + 2 * usage.bucketMs), 5000, 'a bucket later');
      expect(await counted()).toBeUndefined();
      await recorder.flush();
      recorder.record('fp-flush', networkOf('10.8.2.9'), false);
      await recorder.flush();
      expect(await counted()).toEqual({ fingerprint: 'fp-flush', requests: 2, errors: 0, sources: 2 });
    }));

  it('throttles a held key (the middleware answers 429 over its allowance) and never adds an absent one', async () => {
    const v = newVersion(f.secret, 'acme');
    const absent = newVersion(f.secret, 'ghost');
    await f.target.deploy(v.ref, v.value, call());
    await f.target.throttle!(absent.ref, true, call());
    expect((await f.target.inspect!(call())).entries.map((e) => e.fingerprint)).not.toContain(absent.ref.fingerprint);
    await f.target.throttle!(v.ref, true, call());
    expect((await f.target.inspect!(call())).entries).toContainEqual({ fingerprint: v.ref.fingerprint, consumer: 'acme' });
    await until(() => Promise.resolve(f.api.verifier.admit(v.value.reveal())?.throttled === true), 5000, 'the middleware sees the throttle');
    // The allowance is per second of the clock (1 request by default). The clock is held still
    // while five requests are answered, then moved one second on, so a loaded machine, whose five
    // requests could otherwise be admitted over three or more seconds, cannot change the count.
    const statuses = async (n: number) => (await Promise.all(Array.from({ length: n }, () => fetch(f.api.url, { headers: { 'x-api-key': v.value.reveal() } }).then((r) => r.status)))).sort();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Math.ceil(Date.now() / 1000) * 1000 + 1000);
      expect(await statuses(5)).toEqual([200, 429, 429, 429, 429]);
      vi.setSystemTime(Date.now() + 1000);
      expect(await statuses(2)).toEqual([200, 429]);
    } finally {
      vi.useRealTimers();
    }
    await f.target.throttle!(v.ref, false, call());
    await until(async () => (await fetch(f.api.url, { headers: { 'x-api-key': v.value.reveal() } })).status === 200, 5000, 'the throttle lifted');
    expect(f.api.verifier.check(v.value.reveal())).toBe('acme');
  });
});

it('reports a command that failed inside MULTI/EXEC: deploy and retire into a key that is not a hash fail', async () => {
  const secret = `secret-${++counter}`;
  const instance = keyset.open(keyset.config.parse({ keyPrefix: prefix, channel }), testProviderContext('api', { redis: parseRedisUrl(REDIS_URL) }));
  const target = instance.target!({ secret, params: {} });
  const redis = new Redis(REDIS_URL);
  try {
    // Something else wrote this name: HSET and HDEL answer WRONGTYPE inside EXEC, which still "succeeds".
    await redis.set(`${prefix}${secret}`, 'not a keyset');
    const v = newVersion(secret);
    const deployed = await target.deploy(v.ref, v.value, call()).then(() => 'resolved', (e: unknown) => (e as { code: string }).code);
    expect(deployed).toBe('REKEY_ERR_UNAVAILABLE');
    const retired = await target.retire(v.ref, call()).then(() => 'resolved', (e: unknown) => (e as { code: string }).code);
    expect(retired).toBe('REKEY_ERR_UNAVAILABLE');
  } finally {
    redis.disconnect();
    await instance.close?.();
  }
});
