/**
 * DESIGN.md "Delivery": a minted token's TTL is never longer than its signing key's grace. The
 * config check (ttl ≤ grace) is not enough on its own: right after a rotation the previous key
 * signs (until the new one has been in the JWKS for its max-age, token-exchange.ts signerAt),
 * and its grace is already running, so a token it signs must expire no later than that grace
 * ends (when its key leaves the JWKS), however long the grant's ttl.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { appDelivery, attestationToken, exchange } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;

beforeAll(async () => {
  // The JWKS max-age (60 s) is the previous key's signing time after a promotion: far longer than the mint below takes.
  h = await startHarness({ label: 'token-grace', routes: [deliveryRoutes, jwksRoutes], settings: { REKEY_JWKS_MAX_AGE: '60s' } });
  await h.apply(
    appDelivery(
      '  short-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 5m }\n',
      '    short: { authenticator: app, subjects: ["app:*"], token: { signingKey: short-signing, audience: short.example.com, ttl: 5m } }\n',
    ),
  );
  for (const secret of ['app-attestation', 'short-signing', 'short-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

it("a token the previous key signs after a rotation expires no later than that key's grace ends, though the ttl equals the grace", async () => {
  const previous = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'short-signing' }, state: 'previous' } });
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'short-signing' }, state: 'current' } });
  // As if the rotation had happened 30 s ago, its previous key current for an hour before (the two
  // rotations above ran a second apart): the previous key signs until the new one has been current
  // for the JWKS max-age, and 30 s of its grace are spent.
  const shiftMs = 30_000;
  await h.runtime.db.version.update({ where: { id: previous.id }, data: { promotedAt: new Date(Date.now() - 3_600_000), graceEndsAt: new Date(previous.graceEndsAt!.getTime() - shiftMs) } });
  await h.runtime.db.version.update({ where: { id: current.id }, data: { promotedAt: new Date(current.promotedAt!.getTime() - shiftMs) } });
  const answer = await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'short.example.com' });
  expect(answer.status).toBe(200);
  const token = answer.body.access_token as string;
  expect(decodeProtectedHeader(token).kid).toBe(previous.id);
  const graceEnd = Math.floor((previous.graceEndsAt!.getTime() - shiftMs) / 1000);
  const { exp, iat } = decodeJwt(token);
  expect(exp, 'the token outlives the grace of the key that signed it').toBeLessThanOrEqual(graceEnd);
  expect(answer.body.expires_in).toBe(exp! - iat!);
  const [event] = await h.runtime.db.auditEvent.findMany({ where: { action: 'delivery.token', versionId: previous.id } });
  expect((event!.data as { expiresAt: string }).expiresAt).toBe(new Date(exp! * 1000).toISOString());
}, 60_000);
