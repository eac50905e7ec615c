/**
 * Invariant 1: no plaintext value in PostgreSQL, Redis, logs or HTTP responses. After
 * rotations, a rollback, retirement and a revoke, every issued value is searched for in
 * a dump of every table, every Redis key under the test's prefixes, the captured logs
 * (debug level), /metrics and `rekey status` output (JSON and text). Values handed out by
 * GET /v1/secrets/{name} (delivery) take the same path: each one read there must appear in
 * none of them either. Fingerprints must be found, so the search can see.
 *
 * The usage path too (issue 18): a key used through the keyset middleware is counted in Redis,
 * read by the worker, breaks a throttle rule (audit `usage.anomaly`, the throttle, the
 * `usage.anomaly` notice to a webhook): its value is in none of the database, Redis (the
 * counters included), the logs and the notice bodies.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { rekey } from '../support/cli.js';
import { dumpDatabase, dumpRedis } from '../support/dumps.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { deleteKeys } from '../support/isolation.js';
import { type NoticeReceiver, startNoticeReceiver } from '../support/notice-receiver.js';
import { REDIS_URL } from '../support/services.js';
import { TEST_FINGERPRINT_KEY } from '../conformance/refs.js';
import { createKeysetVerifier, keysetAuth, type KeysetVerifier } from '../../providers/redis-keyset/index.js';

let h: Harness;
const KEYSET = `rekey-leakcheck-${randomUUID().slice(0, 8)}:`;
const JOURNAL = `plain-${randomUUID()}`;
const j = journal(JOURNAL);

const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;
let receiver: NoticeReceiver;

beforeAll(async () => {
  receiver = await startNoticeReceiver(WHSEC);
  process.env.PLAINTEXT_TEST_WHSEC = WHSEC;
  h = await startHarness({ label: 'plaintext', routes: [deliveryRoutes] });
  await h.apply(`
env: { allow: ["PLAINTEXT_TEST_*"] }
providers:
  vault: { type: local }
  api: { type: redis-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c", usageCounters: { prefix: "${KEYSET}usage:", bucketMs: 250 }, usage: { interval: 500ms } }
  mem: { type: memory, journal: ${JOURNAL} }
notifications:
  destinations:
    oncall: { type: webhook, url: "${receiver.base}/hooks/oncall", insecure: true, secret: "\${env:PLAINTEXT_TEST_WHSEC}", events: [usage.anomaly] }
secrets:
  used-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_used_ }
    targets: [api]
    usage: { rules: [{ name: any-use, metric: rate, above: 1, action: throttle, cooldown: 1h }] }
  sealed-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_plain_ }
    targets: [api, mem]
    grace: 200ms
    retry: { attempts: 1, backoff: 10ms }
  app-attestation:
    store: { provider: vault }
    issuer: { type: hmac-key }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    reader: { authenticator: app, subjects: [reader], value: { secret: sealed-key, ttl: 200ms } }
`);
  expect((await h.rotate('app-attestation')).status).toBe('succeeded');
});

/** The current value of sealed-key as a granted client gets it from GET /v1/secrets/sealed-key. */
async function delivered(): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('app-attestation');
  const key = new TextEncoder().encode((await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(10_000) })).reveal());
  const now = Math.floor(Date.now() / 1000);
  const credential = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('reader').setAudience('rekey').setIssuedAt(now).setExpirationTime(now + 60).sign(key);
  const response = await fetch(`${h.serving!.url}/v1/secrets/sealed-key`, { headers: { authorization: `Bearer ${credential}` } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { value: string }).value;
}
afterAll(async () => {
  await h.stop();
  await receiver?.close();
  delete process.env.PLAINTEXT_TEST_WHSEC;
  await deleteKeys(`${KEYSET}*`);
});

it('the usage path (counters, anomaly, throttle, notice, logs) carries no key value', async () => {
  expect((await h.rotate('used-key')).status).toBe('succeeded');
  const { store } = await h.runtime.resolver.resolve('used-key');
  const key = (await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(10_000) })).reveal();
  let verifier: KeysetVerifier | undefined;
  let api: FastifyInstance | undefined;
  try {
    verifier = await createKeysetVerifier({ redisUrl: REDIS_URL, fingerprintKey: TEST_FINGERPRINT_KEY, keyset: 'used-key', keyPrefix: KEYSET, channel: `${KEYSET}c`, usage: { prefix: `${KEYSET}usage:`, bucketMs: 250, flushMs: 100 } });
    api = Fastify();
    api.addHook('onRequest', keysetAuth(verifier));
    api.get('/', () => ({ ok: true }));
    const url = await api.listen({ host: '127.0.0.1', port: 0 });
    // Requests until the rule has fired, throttled and alerted (each answer 200, or 429 once throttled).
    await expect
      .poll(
        async () => {
          for (let i = 0; i < 10; i++) expect([200, 429]).toContain((await fetch(url, { headers: { 'x-api-key': key } })).status);
          return receiver.accepted('/hooks/oncall').length;
        },
        { timeout: 30_000, interval: 50 },
      )
      .toBeGreaterThan(0);
  } finally {
    await api?.close();
    await verifier?.close();
  }
  const [anomaly] = await h.runtime.db.auditEvent.findMany({ where: { action: 'usage.anomaly', chain: 'used-key' } });
  expect(anomaly!.data).toMatchObject({ rule: 'any-use', done: 'throttled' });
  const version = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'used-key' }, state: 'current' } });
  const notices = receiver.deliveries.map((d) => `${JSON.stringify(d.headers)}\n${d.body}`).join('\n');
  const pgDump = await dumpDatabase(h.env.databaseUrl);
  const redisDump = await dumpRedis(h.settings.redisUrl, [`${h.env.prefix}*`, `${KEYSET}*`]);
  const logs = h.logs.join('\n');
  // The search sees: the fingerprint is in the counters, the keyset, the notice and the anomaly's log line.
  expect(redisDump).toContain(`${KEYSET}usage:s:{${version.fingerprint}}`);
  expect(redisDump).toContain(`throttled:used-key`);
  expect(notices).toContain('any-use');
  expect(notices).toContain((anomaly!.data as { fingerprint: string }).fingerprint);
  expect(logs).toContain('usage anomaly');
  for (const [where, text] of Object.entries({ pgDump, redisDump, logs, notices })) {
    expect(text.includes(key), `key in ${where}`).toBe(false);
    expect(text.includes(key.slice('rk_used_'.length)), `key body in ${where}`).toBe(false);
  }
});

it('no issued value reaches PostgreSQL, Redis, logs, metrics or CLI output', async () => {
  const handedOut: string[] = [];
  for (let i = 0; i < 3; i++) {
    expect((await h.rotate('sealed-key')).status).toBe('succeeded');
    handedOut.push(await delivered());
  }
  // A rollback: the pending value is issued and stored, then destroyed.
  j.fail('verify:mem', 1, false);
  expect((await h.rotate('sealed-key')).status).toBe('rolled_back');
  // A revoke of the current version (leak path): emergency rotation, then revocation.
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'sealed-key' }, state: 'current' } });
  await h.runtime.engine.revoke('sealed-key', current.number);
  await expect.poll(() => h.runtime.db.version.count({ where: { secret: { name: 'sealed-key' }, state: 'revoked', number: current.number } }), { timeout: 10_000 }).toBe(1);
  await expect.poll(() => h.runtime.db.run.count({ where: { status: 'running' } }), { timeout: 10_000 }).toBe(0);

  const pgDump = await dumpDatabase(h.env.databaseUrl);
  const redisDump = await dumpRedis(h.settings.redisUrl, [`${h.env.prefix}*`, `${KEYSET}*`]);
  const logs = h.logs.join('\n');
  const metrics = await (await fetch(`${h.serving!.url}/metrics`)).text();
  // What operators read: `rekey status`, as JSON and as text.
  const env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const status = await rekey(['status', 'sealed-key', '--json'], env);
  const text = await rekey(['status', 'sealed-key'], env);
  expect([status.code, text.code]).toEqual([0, 0]);
  const responses = [metrics, status.stdout, status.stderr, text.stdout, text.stderr].join('\n');

  const fingerprints = (await h.runtime.db.version.findMany({ select: { fingerprint: true } })).map((v) => v.fingerprint!).filter(Boolean);
  expect(fingerprints.length).toBeGreaterThanOrEqual(5);
  // The search sees: fingerprints are in the database, the keyset and the logs.
  expect(pgDump).toContain(fingerprints[0]);
  const live = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'sealed-key' }, state: 'current' } });
  expect(redisDump).toContain(live.fingerprint);
  expect(status.stdout).toContain(live.fingerprint);
  expect(logs.length).toBeGreaterThan(1000);
  expect(redisDump.length).toBeGreaterThan(100);

  // Every value the mem target was given: three rotations, the rolled-back one, the replacement.
  const issued = j.deployedValues;
  expect(issued.length).toBeGreaterThanOrEqual(5);
  // The values delivered are values rekey issued, and were audited as hand-outs.
  expect(new Set(handedOut).size).toBe(3);
  for (const value of handedOut) expect(issued).toContain(value);
  expect(await h.runtime.db.auditEvent.count({ where: { action: 'delivery.value' } })).toBe(3);
  for (const value of issued) {
    expect(value).toMatch(/^rk_plain_/);
    expect(pgDump.includes(value), 'value in PostgreSQL').toBe(false);
    expect(redisDump.includes(value), 'value in Redis').toBe(false);
    expect(logs.includes(value), 'value in logs').toBe(false);
    expect(responses.includes(value), 'value in /metrics or CLI output').toBe(false);
    // Not even the random body without its prefix.
    expect([pgDump, redisDump, logs, responses].some((text) => text.includes(value.slice(9)))).toBe(false);
  }
});
