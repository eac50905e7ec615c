/**
 * The client library (`rekey/client`, src/client) against a real `rekey server`: a client
 * key exchanged for a token that verifies against the served JWKS, cached and renewed before
 * it expires; a value read, cached, dropped by the change stream at a rotation and read
 * again; requests retried through a network outage (a TCP front pointed at a dead port) and
 * the stream reconnected after its connection is cut; a refused credential not retried; and
 * nothing but codes and numbers in what the logger hook receives.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, RekeyClientError, type ClientLogEvent, type RetryPolicy, type SecretChange } from '../../src/client/index.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { CLOSED_PORT } from '../support/closed-port.js';
import { ACCESS_TOKEN_TYPE, currentVersion, storedValue, verifyServed } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { TcpFront } from '../support/tcp-front.js';

let h: Harness;
let front: TcpFront;
let serverPort: number;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-client', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-clients:
    clients: [billing, reports]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_app_ }
    grace: 1h
  api-signing:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    grace: 10m
  payments-api-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_pay_ }
    grace: 1h
delivery:
  issuer: https://rekey.test
  authenticators:
    apps: { type: client-key, secret: app-clients }
  grants:
    api:
      authenticator: apps
      subjects: ["app-clients/*"]
      token: { signingKey: api-signing, audience: api.example.com, ttl: 5m }
    payments:
      authenticator: apps
      subjects: ["app-clients/billing"]
      value: { secret: payments-api-key, ttl: 5m }
  rateLimit: { max: 1000, window: 1m }
`);
  for (const secret of ['app-clients/billing', 'app-clients/reports', 'api-signing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  serverPort = Number(new URL(h.serving!.url).port);
  front = await TcpFront.listen(serverPort);
}, 120_000);
afterAll(async () => {
  await front?.close();
  await h.stop();
});

const logs: ClientLogEvent[] = [];
const logger = (event: ClientLogEvent) => logs.push(event);
/** Resolves once the logger has received an event with `code` (counting from `from`). */
const logged = (code: ClientLogEvent['code'], from: number) => expect.poll(() => logs.slice(from).some((e) => e.code === code), { timeout: 30_000, interval: 20 }).toBe(true);

function client(key: () => Promise<string>, o: { url?: string; refreshAt?: number; retry?: Partial<RetryPolicy> } = {}) {
  return createClient({ url: o.url ?? h.serving!.url, credential: key, credentialType: ACCESS_TOKEN_TYPE, logger, refreshAt: o.refreshAt, retry: o.retry ?? { attempts: 200, baseMs: 20, maxMs: 100 } });
}
const billingKey = () => storedValue(h, 'app-clients/billing');
const audited = (action: string) => h.runtime.db.auditEvent.count({ where: { action } });

it('gets a token for an audience that verifies against the JWKS, serves it from the cache, and renews it before it expires', async () => {
  const c = client(billingKey, { refreshAt: 0.001 }); // renew after 0.3 s of the 5 minutes
  const first = await c.token('api.example.com');
  const { payload, protectedHeader } = await verifyServed(h, first.token, { issuer: 'https://rekey.test', audience: 'api.example.com' });
  expect(payload.sub).toBe('app-clients/billing');
  expect(protectedHeader.kid).toBe((await currentVersion(h, 'api-signing')).id);
  expect(first.expiresAt - Date.now()).toBeGreaterThan(4 * 60_000);

  const steady = createClient({ url: h.serving!.url, credential: billingKey, credentialType: ACCESS_TOKEN_TYPE, logger });
  const before = await audited('delivery.token');
  const [a, b] = await Promise.all([steady.token('api.example.com'), steady.token('api.example.com')]);
  expect(a.token).toBe(b.token); // callers at once share one exchange
  expect((await steady.token('api.example.com')).token).toBe(a.token);
  expect(await audited('delivery.token')).toBe(before + 1);

  await expect.poll(async () => (await c.token('api.example.com')).token, { timeout: 30_000, interval: 100 }).not.toBe(first.token);
});

it('reads a value, caches it, and drops it when the change stream reports a rotation', async () => {
  const c = client(billingKey);
  const changes: SecretChange[] = [];
  const stop = c.subscribe((change) => changes.push(change));
  const next = async (type: SecretChange['type']) => {
    await expect.poll(() => changes.some((change) => change.type === type), { timeout: 60_000, interval: 20 }).toBe(true);
    return changes.splice(0, changes.findIndex((change) => change.type === type) + 1).at(-1)!;
  };
  try {
    const ready = await next('ready');
    const first = await c.secret('payments-api-key');
    expect(first).toMatchObject({ secret: 'payments-api-key', value: await storedValue(h, 'payments-api-key'), version: (await currentVersion(h, 'payments-api-key')).number });
    // Its value grant's secret, and the key that signs its tokens.
    expect(ready).toEqual({ type: 'ready', secrets: [{ secret: 'api-signing', version: (await currentVersion(h, 'api-signing')).number }, { secret: 'payments-api-key', version: first.version }] });
    const handedOut = await audited('delivery.value');
    expect((await c.secret('payments-api-key')).value).toBe(first.value);
    expect(await audited('delivery.value')).toBe(handedOut);

    expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
    const rotated = await next('rotated');
    const promoted = await currentVersion(h, 'payments-api-key');
    expect(rotated).toEqual({ type: 'rotated', secret: 'payments-api-key', version: promoted.number });
    const second = await c.secret('payments-api-key');
    expect(second).toMatchObject({ version: promoted.number, value: await storedValue(h, 'payments-api-key') });
    expect(second.value).not.toBe(first.value);

    // The stream's connection is cut: the client reconnects and starts again with ready.
    const from = logs.length;
    const viaFront = client(billingKey, { url: `http://127.0.0.1:${front.port}` });
    const frontChanges: SecretChange[] = [];
    const stopFront = viaFront.subscribe((change) => frontChanges.push(change));
    try {
      await expect.poll(() => frontChanges.filter((c) => c.type === 'ready').length, { timeout: 30_000, interval: 50 }).toBe(1);
      front.repoint(serverPort, { cut: true });
      await expect.poll(() => frontChanges.filter((c) => c.type === 'ready').length, { timeout: 30_000, interval: 50 }).toBe(2);
      expect(logs.slice(from).map((e) => e.code)).toEqual(expect.arrayContaining(['stream_open', 'stream_closed', 'stream_retrying']));
    } finally {
      stopFront();
    }
  } finally {
    stop();
  }
}, 120_000);

it('retries through a network outage with backoff, and does not retry a refused credential', async () => {
  const dead = CLOSED_PORT;
  const c = client(billingKey, { url: `http://127.0.0.1:${front.port}` });
  front.repoint(dead, { cut: true });
  const from = logs.length;
  const pending = c.secret('payments-api-key');
  await logged('retrying', from);
  front.repoint(serverPort, { cut: false });
  expect((await pending).value).toBe(await storedValue(h, 'payments-api-key'));
  const retries = logs.slice(from).filter((e) => e.code === 'retrying');
  expect(retries.length).toBeGreaterThanOrEqual(1);
  expect(retries.every((e) => typeof e.delayMs === 'number' && e.delayMs <= 100)).toBe(true);

  const refusedFrom = logs.length;
  const stranger = client(() => Promise.resolve('rk_app_not-a-key-of-anyone'));
  await expect(stranger.token('api.example.com')).rejects.toMatchObject({ code: 'unauthenticated', status: 400 });
  await expect(stranger.secret('payments-api-key')).rejects.toMatchObject({ code: 'unauthenticated', status: 401 });
  const reports = client(() => storedValue(h, 'app-clients/reports'));
  const forbidden = await reports.secret('payments-api-key').catch((error: unknown) => error);
  expect(forbidden).toBeInstanceOf(RekeyClientError);
  expect(forbidden).toMatchObject({ code: 'forbidden', status: 403, error: 'insufficient_scope' });
  expect(logs.slice(refusedFrom).filter((e) => e.code === 'retrying')).toEqual([]);
}, 60_000);

it('reconnects streams cut at once at spread-out times, none sooner than the server\'s retry: (1 s)', async () => {
  // Four clients with the default policy, their streams through the front; a server restart cuts them all at once.
  const seen: ClientLogEvent[][] = [];
  const stops: (() => void)[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const mine: ClientLogEvent[] = [];
      seen.push(mine);
      const c = createClient({ url: `http://127.0.0.1:${front.port}`, credential: billingKey, credentialType: ACCESS_TOKEN_TYPE, logger: (event) => (mine.push(event), logger(event)) });
      stops.push(c.subscribe(() => {}));
    }
    await expect.poll(() => seen.every((mine) => mine.some((e) => e.code === 'stream_open')), { timeout: 30_000, interval: 20 }).toBe(true);
    front.repoint(serverPort, { cut: true });
    await expect.poll(() => seen.every((mine) => mine.some((e) => e.code === 'stream_retrying')), { timeout: 30_000, interval: 20 }).toBe(true);
    const delays = seen.map((mine) => mine.find((e) => e.code === 'stream_retrying')!.delayMs!);
    expect(delays.every((delayMs) => delayMs >= 1000)).toBe(true);
    // Jittered: they do not all come back in the same millisecond.
    expect(new Set(delays).size, `delays ${delays.join(', ')} ms`).toBeGreaterThan(1);
  } finally {
    for (const stop of stops) stop();
  }
}, 60_000);

it("a client with token grants only follows its signing key: a leak report of the key drops its cached token, and the next one is signed by the replacement", async () => {
  // Waits out the 503s' Retry-After (2 s) until the emergency rotation promotes: a maxMs below it would end the call at once.
  const c = client(() => storedValue(h, 'app-clients/reports'), { retry: { attempts: 30, baseMs: 20, maxMs: 5000 } });
  const changes: SecretChange[] = [];
  const stop = c.subscribe((change) => changes.push(change));
  try {
    const leaked = await currentVersion(h, 'api-signing');
    await expect.poll(() => changes.find((change) => change.type === 'ready'), { timeout: 30_000, interval: 20 }).toEqual({ type: 'ready', secrets: [{ secret: 'api-signing', version: leaked.number }] });
    const before = await c.token('api.example.com');
    expect((await verifyServed(h, before.token, { issuer: 'https://rekey.test', audience: 'api.example.com' })).protectedHeader.kid).toBe(leaked.id);

    await h.runtime.engine.reportLeak({ source: 'cli', deliveryId: randomUUID(), fingerprint: leaked.fingerprint!, receivedAt: new Date() });
    await expect.poll(() => changes.some((change) => change.type === 'revoked' && change.secret === 'api-signing' && change.version === leaked.number), { timeout: 30_000, interval: 20 }).toBe(true);
    // Minted afresh, not the cached token its key's leak made worthless (503 until the emergency rotation promotes: retried).
    const after = await c.token('api.example.com');
    expect(after.token).not.toBe(before.token);
    expect((await verifyServed(h, after.token, { issuer: 'https://rekey.test', audience: 'api.example.com' })).protectedHeader.kid).not.toBe(leaked.id);
  } finally {
    stop();
  }
}, 120_000);

it('gives its logger codes and numbers only: no key, token or value', () => {
  expect(logs.length).toBeGreaterThan(5);
  for (const event of logs) {
    for (const [field, value] of Object.entries(event)) expect(field === 'code' ? /^[a-z_]+$/.test(value as string) : typeof value === 'number').toBe(true);
  }
});

