/**
 * hmac-key through a real rotation (issue 6): a request signed with the previous secret
 * verifies during grace and not after, the verifier reading current and previous from the
 * store (the local store here) and caching them briefly in memory only.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHmacVerifier, signPayload, storeReader } from '../../providers/hmac-key/index.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'hmac' });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  webhook-signing:
    store: { provider: vault }
    issuer: { type: hmac-key, prefix: whsec_ }
    grace: 1500ms
`);
});
afterAll(() => h.stop());

it('accepts the previous secret during grace, not after', async () => {
  const { store } = await h.runtime.resolver.resolve('webhook-signing');
  const read = async (stage: 'current' | 'previous') => store.read({ stage }, { signal: AbortSignal.timeout(5000) });
  const verifier = createHmacVerifier({ read: storeReader(store), ttlMs: 200, toleranceSeconds: 300, refreshOnMissMs: 100 });
  const body = '{"event":"payment.succeeded"}';

  await h.rotate('webhook-signing');
  const oldSecret = await read('current');
  const oldSignature = signPayload(oldSecret, body);
  await h.rotate('webhook-signing');
  const newSignature = signPayload(await read('current'), body);
  expect((await read('previous')).equals(oldSecret)).toBe(true);

  await new Promise((resolve) => setTimeout(resolve, 250)); // past the cache
  expect(await verifier.verify(body, newSignature)).toEqual({ ok: true });
  expect(await verifier.verify(body, oldSignature)).toEqual({ ok: true });
  expect(await verifier.verify(`${body} `, oldSignature)).toMatchObject({ ok: false, reason: 'mismatch' });

  await expect.poll(() => h.runtime.db.version.count({ where: { state: 'revoked' } }), { timeout: 10_000 }).toBe(1);
  await new Promise((resolve) => setTimeout(resolve, 250));
  expect(await verifier.verify(body, oldSignature)).toMatchObject({ ok: false, reason: 'mismatch' });
  expect(await verifier.verify(body, newSignature)).toEqual({ ok: true });
});
