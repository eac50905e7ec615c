/**
 * DESIGN.md "Delivery": a leaked signing key leaves the JWKS at once, so its tokens die
 * everywhere. Under rotate-then-revoke the leaked version stays current until its replacement
 * is promoted; the leak report stamps it compromised, and that stamp alone takes its key out
 * of the document (src/jwks/target.ts liveKeys). The replacement's deploy is held here, so the
 * document is read while the leaked version is still current.
 */
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { currentVersion, servedJwks as jwks } from '../support/delivery.js';
import type { Harness } from '../support/harness.js';
import { signSession, startJwksHarness } from '../support/jwks.js';
import type { Journal } from '../support/memory-provider.js';

let h: Harness;
let pushed: Journal;
beforeAll(async () => {
  ({ h, pushed } = await startJwksHarness('jwks-leak', { grace: '1h' }));
  expect((await h.rotate('session-signing', 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

it('takes a leaked current key out of the JWKS as soon as the revoke returns, before its replacement is promoted', async () => {
  const leaked = await currentVersion(h, 'session-signing');
  const token = await signSession(h, 'current');
  expect((await jwks(h)).keys.map((k) => k.kid)).toContain(leaked.id);

  const held = pushed.hold('deploy:verifiers');
  await h.runtime.engine.revoke('session-signing', leaked.number);
  await held.reached; // the replacement is pending: the leaked version is still current
  try {
    expect((await currentVersion(h, 'session-signing')).id).toBe(leaked.id);
    const doc = await jwks(h);
    expect(doc.keys.map((k) => k.kid)).not.toContain(leaked.id);
    await expect(jwtVerify(token, createLocalJWKSet(doc))).rejects.toThrow(/no applicable key found/i);
  } finally {
    held.release();
  }
  await expect.poll(async () => (await currentVersion(h, 'session-signing').catch(() => leaked)).id, { timeout: 60_000, interval: 100 }).not.toBe(leaked.id);
}, 120_000);
