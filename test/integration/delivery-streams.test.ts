/**
 * How long a change stream (GET /v1/events) lives, and how many a subject holds, on a real
 * server: a stream ends when the credential it was opened with expires; when the version that
 * credential was verified against is revoked (a client key, an attestation secret), at once;
 * when that version, made previous by a rotation, reaches the end of its grace; and one subject
 * holds `delivery.rateLimit.streams` streams at most on a server (429 with Retry-After beyond),
 * while other subjects still get theirs; a client that hung up while its stream was being
 * authenticated holds none of them.
 */
import { type AddressInfo, connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { buildServer } from '../../src/http/server.js';
import { attestationToken, currentVersion, storedValue } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';
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
/** Resolves if `stream` is still open after `ms`. */
const open = (stream: EventStream, ms: number) => expect(stream.next('no-such-event', ms)).rejects.toThrow('no no-such-event event');

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

it('a client that hangs up while its stream is being authenticated leaves no stream behind: the subject still gets its own', async () => {
  // A server of its own, which says when each request has arrived.
  let arrived = 0;
  const app = await buildServer(h.runtime, [(scope) => void scope.addHook('onRequest', (_request, _reply, done) => ((arrived += 1), done())), deliveryRoutes]);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/events`;
  const credential = await attestation('app:hangs-up', 600);
  // Each stream's check of the attestation version (FOR SHARE, in the hand-out journal) waits behind this
  // lock while its client hangs up; then the lock goes and each authentication ends after its connection.
  const version = await currentVersion(h, 'app-attestation');
  const waiting = async () => (await h.runtime.db.$queryRaw<unknown[]>`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).length;
  const locker = new pg.Client({ connectionString: h.env.databaseUrl });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM versions WHERE id = $1 FOR UPDATE', [version.id]);
    // As many as the subject may hold (rateLimit.streams: 3), each hung up once it is in.
    for (let i = 1; i <= 3; i++) await hangUpWhen(url, credential, async () => arrived >= i && (await waiting()) > 0);
    await locker.query('COMMIT');
    // The hand-out journal checks in arrival order: these come after the hung-up streams' checks.
    const streams = await Promise.all([1, 2, 3].map(() => openStream(url, credential)));
    try {
      for (const stream of streams) await stream.next('ready');
    } finally {
      for (const stream of streams) stream.close();
    }
  } finally {
    await locker.end();
    await app.close();
  }
});

it('ends a stream at once when the client key it was opened with is revoked, and leaves the other clients\' streams open', async () => {
  const revoked = await openStream(events(), await storedValue(h, 'workloads/billing'));
  const other = await openStream(events(), await storedValue(h, 'workloads/orders'));
  try {
    await revoked.next('ready');
    await other.next('ready');
    await h.runtime.engine.revoke('workloads/billing', (await currentVersion(h, 'workloads/billing')).number);
    await ended(revoked, 5_000);
    await open(other, 1_000);
  } finally {
    revoked.close();
    other.close();
  }
}, 60_000);

it('ends a stream opened with a client key when a rotation made that key previous and its grace ended', async () => {
  const stream = await openStream(events(), await storedValue(h, 'workloads/orders'));
  try {
    await stream.next('ready');
    expect((await h.rotate('workloads/orders', 60_000)).status).toBe('succeeded');
    const previous = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'workloads/orders' }, state: 'previous' } });
    await open(stream, Math.max(0, previous.graceEndsAt!.getTime() - Date.now() - 1_000));
    await ended(stream, 5_000);
  } finally {
    stream.close();
  }
}, 60_000);

it('ends a stream at once when the attestation secret version its token was signed with is revoked', async () => {
  const stream = await openStream(events(), await attestation('app:watched', 600));
  try {
    await stream.next('ready');
    await h.runtime.engine.revoke('app-attestation', (await currentVersion(h, 'app-attestation')).number);
    await ended(stream, 5_000);
  } finally {
    stream.close();
  }
}, 60_000);

/** Sends GET `url` with `credential` on a connection of its own and closes it once `ready()` holds (the server is then still authenticating it). */
function hangUpWhen(url: string, credential: string, ready: () => Promise<boolean>): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.write(`GET /v1/events HTTP/1.1\r\nhost: rekey\r\naccept: text/event-stream\r\nauthorization: Bearer ${credential}\r\n\r\n`);
      until(ready, 30_000, 'the stream is being authenticated').then(() => socket.destroy(), reject);
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    socket.resume();
  });
}
