/**
 * How long a change stream (GET /v1/events) lives, and how many a subject holds, on a real
 * server: a stream ends when the credential it was opened with expires; and one subject holds
 * `delivery.rateLimit.streams` streams at most on a server (429 with Retry-After beyond), while
 * other subjects still get theirs.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { attestationToken } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { openStream, type EventStream } from '../support/sse.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-streams', routes: [deliveryRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-attestation:
    store: { provider: vault }
    issuer: { type: hmac-key }
    grace: 1h
  workloads:
    clients: [orders, billing]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_wl_ }
    grace: 4s
  payments-api-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_pay_ }
    grace: 1h
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
    workloads: { type: client-key, secret: workloads }
  grants:
    app-payments:
      authenticator: app
      subjects: ["app:*"]
      value: { secret: payments-api-key }
    workload-payments:
      authenticator: workloads
      subjects: ["workloads/*"]
      value: { secret: payments-api-key }
  rateLimit: { max: 1000, window: 1m, streams: 3 }
`);
  for (const secret of ['app-attestation', 'workloads/orders', 'workloads/billing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

const events = () => `${h.serving!.url}/v1/events`;
const attestation = (sub: string, ttlSeconds?: number) => attestationToken(h, 'app-attestation', { sub, ttlSeconds });
/** Resolves once the server has ended `stream` (rejects if it is still open after `ms`). */
const ended = (stream: EventStream, ms: number) => expect(stream.next('no-such-event', ms)).rejects.toThrow('stream ended');

it('ends a stream when the credential it was opened with expires', async () => {
  const stream = await openStream(events(), await attestation('app:short-lived', 3));
  try {
    await stream.next('ready');
    await ended(stream, 10_000);
  } finally {
    stream.close();
  }
});

it('holds at most delivery.rateLimit.streams streams per subject on a server: 429 slow_down with Retry-After beyond, other subjects unaffected', async () => {
  const credential = await attestation('app:greedy', 600);
  const streams = await Promise.all([1, 2, 3].map(() => openStream(events(), credential)));
  try {
    const refused = await fetch(events(), { headers: { authorization: `Bearer ${credential}`, accept: 'text/event-stream' } });
    if (refused.status === 200) await refused.body?.cancel();
    const body = refused.status === 200 ? {} : ((await refused.json()) as Record<string, unknown>);
    expect({ status: refused.status, error: body.error }).toEqual({ status: 429, error: 'slow_down' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another subject still gets its own.
    const other = await openStream(events(), await attestation('app:modest', 600));
    await other.next('ready');
    other.close();
    // A stream of its own that ends gives its place back.
    streams.pop()!.close();
    await expect.poll(async () => {
      const again = await fetch(events(), { headers: { authorization: `Bearer ${credential}`, accept: 'text/event-stream' } });
      await again.body?.cancel();
      return again.status;
    }, { timeout: 10_000, interval: 100 }).toBe(200);
  } finally {
    for (const stream of streams) stream.close();
  }
});
