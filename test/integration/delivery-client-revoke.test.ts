/**
 * The client library (`rekey/client`) and a revocation that arrives while a read of the value is
 * out: the answer was read before the revoke, so it holds the revoked version. Once the change
 * stream has reported the revocation, no later `secret()` may hand that version out, neither
 * from the cache the late answer would fill nor by joining the request still out.
 *
 * The late answer is the real server's real answer, held on its way to the client (a slow
 * network) by the `fetch` the client takes, until the revocation has reached the listener.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, type SecretChange } from '../../src/client/index.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { ACCESS_TOKEN_TYPE, currentVersion, storedValue } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-client-revoke', routes: [deliveryRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-clients:
    clients: [billing]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_app_ }
    grace: 1h
  payments-api-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_pay_ }
    grace: 1h
delivery:
  authenticators:
    apps: { type: client-key, secret: app-clients }
  grants:
    payments:
      authenticator: apps
      subjects: ["app-clients/billing"]
      value: { secret: payments-api-key, ttl: 5m }
  rateLimit: { max: 1000, window: 1m }
`);
  for (const secret of ['app-clients/billing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(async () => {
  await h.stop();
});

it('hands out no revoked version once the stream reported the revocation, though a read answered before it arrives after', async () => {
  // The first read of the value is held after the server answered, until `release()`.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let answered!: () => void;
  const heldAnswer = new Promise<void>((resolve) => (answered = resolve));
  let reads = 0;
  const slowFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if ((input instanceof Request ? input.url : input.toString()).includes('/v1/secrets/') && ++reads === 1) {
      answered();
      await released;
    }
    return response;
  };
  const c = createClient({ url: h.serving!.url, credential: () => storedValue(h, 'app-clients/billing'), credentialType: ACCESS_TOKEN_TYPE, fetch: slowFetch, retry: { attempts: 60, baseMs: 20, maxMs: 5000 } });
  const changes: SecretChange[] = [];
  const stop = c.subscribe((change) => changes.push(change));
  try {
    await expect.poll(() => changes.some((change) => change.type === 'ready'), { timeout: 30_000, interval: 20 }).toBe(true);
    const revoked = await currentVersion(h, 'payments-api-key');
    const early = c.secret('payments-api-key');
    await heldAnswer; // the server has answered with the version about to be revoked

    await h.runtime.engine.revoke('payments-api-key', revoked.number);
    await expect.poll(() => changes.some((change) => change.type === 'revoked' && change.version === revoked.number), { timeout: 30_000, interval: 20 }).toBe(true);

    // Asked after the revocation was reported, while the early read is still out: not that read's answer.
    const joined = c.secret('payments-api-key');
    release();
    await early;
    expect((await joined).version).not.toBe(revoked.number);
    // Nor from the cache the late answer would have filled.
    expect((await c.secret('payments-api-key')).version).not.toBe(revoked.number);
  } finally {
    release();
    stop();
    c.close();
  }
}, 120_000);
