/**
 * A hand-out whose check failed is run once more from PostgreSQL (core/delivery.ts retryingStale),
 * and both attempts are one request: the caller's allowance is charged once. Each subject here has
 * two requests (`rateLimit.max: 2`): the second meets a stale cache, fails its check, is retried
 * and must still be answered; a third shows the limit is really reached.
 *
 * The server is a `rekey server` process whose change feed listens on another queue prefix (as in
 * delivery-revoke.test.ts): it never hears of the rotations made here, so its cache still holds
 * the version each one replaced, and its debug log shows the check catching it (the retry ran).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDeafServer, type DeafServer } from '../support/deaf-server.js';
import { attestationToken, currentVersion, DELIVERY_KEYS } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let deaf: DeafServer;

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-retry-charge' });
  await h.apply(`
${DELIVERY_KEYS}
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
delivery:
  issuer: https://rekey.test
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
  rateLimit: { max: 2, window: 10m }
`);
  for (const secret of ['app-attestation', 'api-signing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  deaf = await startDeafServer(h);
}, 180_000);

afterAll(async () => {
  await deaf?.stop();
  await h?.stop();
});

it('a value request retried after its check failed (the cached version was replaced) costs the subject one request', async () => {
  const credential = await attestationToken(h, 'app-attestation', { sub: 'app:value' });
  const replaced = await currentVersion(h, 'payments-api-key');
  expect(await deaf.value(credential)).toEqual({ status: 200, version: replaced.number }); // cached now; first request
  expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
  const before = deaf.caught();

  // The second request: the cache's version fails the check, the retry reads the new one.
  expect(await deaf.value(credential)).toEqual({ status: 200, version: replaced.number + 1 });
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
  // Two requests were all it had.
  expect((await deaf.value(credential)).status).toBe(429);
});

it('a token request retried after its check failed (the cached signing version was replaced) costs the subject one request', async () => {
  const credential = await attestationToken(h, 'app-attestation', { sub: 'app:token' });
  const replaced = await currentVersion(h, 'api-signing');
  expect(await deaf.token(credential)).toEqual({ status: 200, kid: replaced.id }); // cached now; first request
  expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
  const before = deaf.caught();

  // The second request: signed as current by a version that is previous now, refused by the check, signed again
  // from PostgreSQL (by the new version once published, else by the replaced one within its grace).
  expect((await deaf.token(credential)).status).toBe(200);
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
  expect((await deaf.token(credential)).status).toBe(429);
});
