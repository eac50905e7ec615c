/**
 * "Why TTL ≤ grace" (docs/delivery.md): a token minted just before a rotation lives `ttl` more,
 * and the previous key stays in the JWKS for the grace, so a normal rotation never invalidates
 * a live token. That must hold for two rotations in a row too (an operator's `rekey rotate`
 * after the scheduled one, a Secret Manager rotation event): a token minted under v1 before
 * v2 and v3 were promoted keeps verifying against the served JWKS until its exp. Before, the
 * promotion of v3 cut v1's grace to now, so v1 was retired and left the JWKS at once.
 *
 * And a verifier that caches the JWKS document for its max-age (as HTTP caches and most JWT
 * libraries do) must never meet a token whose key it does not hold: the new key is in the
 * document from pending on, but a rotation promotes it about a second later, so the previous
 * key signs until the new one has been current for the max-age (5 s here, 60 s by default).
 */
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { attestationToken, currentVersion, exchange, servedJwks, appDelivery } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
// Long enough that the mint right after a rotation falls within it even on a loaded machine.
const MAX_AGE_S = 5;

beforeAll(async () => {
  h = await startHarness({ label: 'jwks-overlap', routes: [deliveryRoutes, jwksRoutes], settings: { REKEY_JWKS_MAX_AGE: `${MAX_AGE_S}s` } });
  await h.apply(appDelivery());
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

it('a token minted under v1 still verifies against the served JWKS after two rotations of its signing key within its ttl', async () => {
  const v1 = await currentVersion(h, 'api-signing');
  const answer = await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'api.example.com' });
  expect(answer.status).toBe(200);
  const token = answer.body.access_token as string;
  expect(decodeProtectedHeader(token).kid).toBe(v1.id);
  const exp = decodeJwt(token).exp! * 1000;

  for (let i = 0; i < 2; i++) expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
  expect((await currentVersion(h, 'api-signing')).number).toBe(v1.number + 2);

  // v1's key must stay published until the token it signed expires: its grace was set at v2's promotion.
  const after = await h.runtime.db.version.findUniqueOrThrow({ where: { id: v1.id } });
  expect(after.state).toBe('previous');
  expect(after.graceEndsAt!.getTime(), "v1's grace ends before the token it signed expires").toBeGreaterThanOrEqual(exp);
  const served = (await (await fetch(`${h.serving!.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  await expect(jwtVerify(token, createLocalJWKSet(served), { issuer: 'https://rekey.test', audience: 'api.example.com', algorithms: ['ES256'] })).resolves.toBeTruthy();
}, 120_000);

it("a verifier that caches the JWKS for its max-age verifies every token minted across a rotation; the new key signs once that age has passed", async () => {
  const before = await currentVersion(h, 'api-signing');
  const mint = async () => {
    const answer = await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'api.example.com' });
    expect(answer.status).toBe(200);
    return answer.body.access_token as string;
  };
  // The current key signs once it has been current for the max-age (the test before rotated it twice just now;
  // until then an older key signs, or it does as the only key old enough or none).
  const aged = () => Date.now() >= before.promotedAt!.getTime() + MAX_AGE_S * 1000;
  await expect.poll(async () => aged() && decodeProtectedHeader(await mint()).kid === before.id, { timeout: 30_000, interval: 250 }).toBe(true);
  const response = await fetch(`${h.serving!.url}/.well-known/jwks.json`);
  expect(response.headers.get('cache-control')).toBe(`public, max-age=${MAX_AGE_S}`);
  const cached = createLocalJWKSet((await response.json()) as JSONWebKeySet);
  const verify = (token: string, keys: typeof cached) => jwtVerify(token, keys, { issuer: 'https://rekey.test', audience: 'api.example.com', algorithms: ['ES256'] });

  expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
  const promoted = await currentVersion(h, 'api-signing');
  const token = await mint();
  // Within the max-age of the cached document (the rotation took under 2 s on an idle machine; the check holds whatever it took).
  if (Date.now() < promoted.promotedAt!.getTime() + MAX_AGE_S * 1000) {
    expect(decodeProtectedHeader(token).kid, 'signed with a key the cached JWKS may not hold').toBe(before.id);
    await expect(verify(token, cached)).resolves.toBeTruthy();
  }
  const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'delivery.token' }, orderBy: { seq: 'desc' }, take: 1 });
  expect(events[0]!.versionId).toBe(decodeProtectedHeader(token).kid);

  // Once the new key has been current for the max-age, it signs; a verifier whose cache expired has fetched it.
  await expect.poll(async () => decodeProtectedHeader(await mint()).kid, { timeout: 30_000, interval: 250 }).toBe(promoted.id);
  expect(Date.now()).toBeGreaterThanOrEqual(promoted.promotedAt!.getTime() + MAX_AGE_S * 1000);
  await expect(verify(await mint(), createLocalJWKSet(await servedJwks(h)))).resolves.toBeTruthy();
}, 120_000);
