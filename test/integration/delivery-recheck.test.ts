/**
 * An attestation token signed with a version promoted a moment ago passes at once, even when the
 * server's cache never hears of the promotion (its change event lost, the cache kept an hour):
 * the attestation-jwt authenticator asks for the live values again when a signature matches
 * none it holds (src/delivery/cache.ts, recheck). A token under no live version is still refused,
 * and the held previous version keeps verifying through its grace.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { appDelivery, attestationToken, currentVersion, exchange, REFUSED } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-recheck', routes: [deliveryRoutes], settings: { REKEY_DELIVERY_CACHE_MAX_AGE: '1h' } });
  await h.apply(appDelivery());
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

const token = (secret: string) => attestationToken(h, secret);
const status = async (presented: string) => (await exchange(h, presented, { audience: 'api.example.com' })).status;

it('accepts a token under the version just promoted though the change event was lost, and still refuses one under no live version', async () => {
  const before = await token('app-attestation');
  expect(await status(before)).toBe(200); // the live values are now held, for an hour

  // The promotion's change event never reaches the server (pub/sub keeps nothing; here it is not sent).
  const publish = vi.spyOn(h.runtime.changes, 'publish').mockResolvedValue(undefined);
  const was = await currentVersion(h, 'app-attestation');
  expect((await h.rotate('app-attestation', 60_000)).status).toBe('succeeded');
  expect(publish).toHaveBeenCalledWith(expect.objectContaining({ secret: 'app-attestation' }));
  expect((await currentVersion(h, 'app-attestation')).id).not.toBe(was.id);

  expect(await status(await token('app-attestation'))).toBe(200);
  expect(await status(before)).toBe(200); // the previous version, in its grace
  const now = Math.floor(Date.now() / 1000);
  const stranger = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('app:com.example.ios')
    .setAudience('rekey')
    .setIssuedAt(now - 5)
    .setExpirationTime(now + 60)
    .sign(new TextEncoder().encode('not-the-shared-secret-at-all-0123456789'));
  expect(await exchange(h, stranger, { audience: 'api.example.com' })).toMatchObject(REFUSED);
  publish.mockRestore();
}, 120_000);
