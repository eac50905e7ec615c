/**
 * A revoked version is never handed out once the revoke has returned, by any server process,
 * whatever its delivery cache still holds (src/delivery/cache.ts, src/db/handouts.ts).
 *
 * The second server is a `rekey server` process on the same database whose change feed listens
 * on another queue prefix: it never hears of the revocations, so its cache keeps the revoked
 * versions for its full entry age (10 min here: a loaded machine cannot expire them mid-test).
 * Each request it answers after the revoke returned must still refuse them (a change stream
 * too, when it opens), because the hand-out's own transaction re-checks every version it relies on; its debug log shows the
 * check catching the stale entry, so the test is not passing on an expired one.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { startDeafServer, type DeafServer } from '../support/deaf-server.js';
import { attestationToken, currentVersion, DELIVERY_KEYS } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let deaf: DeafServer;

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-revoke', routes: [deliveryRoutes] });
  await h.apply(`
${DELIVERY_KEYS}
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
  stream-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  graced-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
    streams: { type: attestation-jwt, secret: stream-attestation, audience: rekey }
    graced: { type: attestation-jwt, secret: graced-attestation, audience: rekey }
  grants:
    stream: { authenticator: streams, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
    graced: { authenticator: graced, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
`);
  for (const secret of ['app-attestation', 'api-signing', 'payments-api-key', 'stream-attestation', 'graced-attestation']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  deaf = await startDeafServer(h);
}, 180_000);

afterAll(async () => {
  await deaf?.stop();
  await h.stop();
});


it('hands no value of a revoked version out after the revoke returns, though the cache still holds it', async () => {
  const credential = await attestationToken(h, 'app-attestation', { sub: 'app:one' });
  const leaked = await currentVersion(h, 'payments-api-key');
  expect((await deaf.value(credential)).version).toBe(leaked.number); // cached now
  const before = deaf.caught();
  await h.runtime.engine.revoke('payments-api-key', leaked.number);
  const after = await deaf.value(credential);
  // Until the emergency rotation promotes a replacement: 503; after it, the replacement.
  expect(after.status === 503 || (after.status === 200 && after.version! > leaked.number)).toBe(true);
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
});

it('signs no token with a revoked signing version after the revoke returns', async () => {
  const credential = await attestationToken(h, 'app-attestation', { sub: 'app:two' });
  const leaked = await currentVersion(h, 'api-signing');
  expect(await deaf.token(credential)).toEqual({ status: 200, kid: leaked.id });
  const before = deaf.caught();
  await h.runtime.engine.revoke('api-signing', leaked.number);
  const after = await deaf.token(credential);
  expect(after.kid).not.toBe(leaked.id);
  expect(after.status === 503 || after.status === 200).toBe(true);
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
});

it('accepts no credential signed with a revoked attestation version after the revoke returns', async () => {
  const credential = await attestationToken(h, 'app-attestation', { sub: 'app:three' });
  const leaked = await currentVersion(h, 'app-attestation');
  // The value's replacement (first test) is promoted by now or soon; this server hears of it by its cache's age only.
  await expect.poll(async () => (await deaf.value(credential)).status, { timeout: 60_000, interval: 200 }).toBe(200); // the live values are cached now
  const before = deaf.caught();
  await h.runtime.engine.revoke('app-attestation', leaked.number);
  const after = await deaf.value(credential);
  expect([401, 503]).toContain(after.status);
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
});

// A stream is authenticated when it opens, by the same rule: a credential the cache still holds
// valid, but whose version was revoked, opens none. (A shared secret of its own, whose authenticator
// comes first: the previous test left this server without a live version of app-attestation.)
it('opens no change stream for a credential signed with a revoked attestation version after the revoke returns', async () => {
  const credential = await attestationToken(h, 'stream-attestation', { sub: 'app:four' });
  const leaked = await currentVersion(h, 'stream-attestation');
  const events = async () => {
    const controller = new AbortController();
    const response = await fetch(`${deaf.url}/v1/events`, { headers: { authorization: `Bearer ${credential}`, accept: 'text/event-stream' }, signal: controller.signal });
    controller.abort();
    return response.status;
  };
  expect(await events()).toBe(200); // the live values are cached now
  const before = deaf.caught();
  await h.runtime.engine.revoke('stream-attestation', leaked.number);
  expect([401, 503]).toContain(await events());
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
});

// A previous version verifies only within its grace. The grace ends by the clock, with nothing
// written and nothing on the change feed (its retirement job comes later), so the cache keeps the
// version among the live values: the hand-out's check of `grace_ends_at` is what refuses it.
it('accepts no credential signed with a previous attestation version once its grace has ended, though the cache still holds it', async () => {
  const credential = await attestationToken(h, 'graced-attestation', { sub: 'app:five' });
  const signing = await currentVersion(h, 'graced-attestation');
  expect((await h.rotate('graced-attestation', 60_000)).status).toBe('succeeded');
  // Previous now, in a grace of an hour; the first test's replacement value may still be on its way.
  await expect.poll(async () => (await deaf.value(credential)).status, { timeout: 60_000, interval: 200 }).toBe(200); // the live values are cached now
  // The grace ends (the clock passing it, without the hour's wait).
  await h.runtime.db.version.update({ where: { id: signing.id }, data: { graceEndsAt: new Date(Date.now() - 1000) } });
  const before = deaf.caught();
  expect([401, 503]).toContain((await deaf.value(credential)).status);
  await expect.poll(deaf.caught, { timeout: 10_000 }).toBeGreaterThan(before);
});
