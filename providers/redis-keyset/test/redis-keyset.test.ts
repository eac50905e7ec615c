import Fastify from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call, newVersion, TEST_FINGERPRINT_KEY } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { deleteKeys } from '../../../test/support/isolation.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { REDIS_URL } from '../../../test/support/services.js';
import { parseRedisUrl } from '../../../src/core/redis-endpoint.js';
import keyset, { createKeysetVerifier, keysetAuth } from '../index.js';

const prefix = `test-keyset-${process.pid}-${Date.now()}:`;
const channel = `${prefix}changes`;
let counter = 0;
afterAll(() => deleteKeys(`${prefix}*`));

/** An API guarded by the keyset middleware: the real consumer of this target. */
async function guardedApi(secret: string) {
  const verifier = await createKeysetVerifier({ redisUrl: REDIS_URL, fingerprintKey: TEST_FINGERPRINT_KEY, keyset: secret, keyPrefix: prefix, channel });
  const app = Fastify();
  app.addHook('onRequest', keysetAuth(verifier));
  app.get('/', (request) => ({ consumer: (request as unknown as { consumer: string }).consumer }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, verifier, close: async () => (await app.close(), await verifier.close()) };
}

async function fixture() {
  const secret = `secret-${++counter}`;
  const api = await guardedApi(secret);
  const config = keyset.config.parse({ keyPrefix: prefix, channel, probe: { url: api.url } });
  const instance = keyset.open(config, testProviderContext('api', { redis: parseRedisUrl(REDIS_URL) }));
  return { target: instance.target!({ secret, params: {} }), secret, api, cleanup: async () => (await instance.close?.(), await api.close()) };
}

targetConformance('redis-keyset', fixture, { probes: true });

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
