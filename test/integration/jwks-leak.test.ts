/**
 * DESIGN.md "Delivery": a leaked signing key leaves the JWKS at once, so its tokens die
 * everywhere. Under rotate-then-revoke the leaked version stays current until its replacement
 * is promoted; the leak report stamps it compromised, and that stamp alone takes its key out
 * of the document (src/jwks/target.ts liveKeys). The replacement's deploy is held here, so the
 * document is read while the leaked version is still current.
 */
import { createLocalJWKSet, jwtVerify } from 'jose';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { jwtSignerFromValue } from '../../providers/jwt-signing-key/jwks.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { currentVersion } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';

let h: Harness;
const JOURNAL = `jwks-leak-${randomUUID()}`;
const pushed = journal(JOURNAL);
beforeAll(async () => {
  h = await startHarness({ label: 'jwks-leak', routes: [jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
  verifiers: { type: memory, journal: ${JOURNAL} }
secrets:
  session-signing:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    targets: [{ provider: verifiers, publish: jwks }]
    grace: 1h
`);
  expect((await h.rotate('session-signing', 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

async function jwks(): Promise<{ keys: Array<{ kid: string }> }> {
  return (await (await fetch(`${h.serving!.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
}

it('takes a leaked current key out of the JWKS as soon as the revoke returns, before its replacement is promoted', async () => {
  const leaked = await currentVersion(h, 'session-signing');
  const { store } = await h.runtime.resolver.resolve('session-signing');
  const now = Math.floor(Date.now() / 1000);
  const token = await jwtSignerFromValue(await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(5000) })).sign({ sub: 'user-1', iat: now, exp: now + 300 });
  expect((await jwks()).keys.map((k) => k.kid)).toContain(leaked.id);

  const held = pushed.hold('deploy:verifiers');
  await h.runtime.engine.revoke('session-signing', leaked.number);
  await held.reached; // the replacement is pending: the leaked version is still current
  try {
    expect((await currentVersion(h, 'session-signing')).id).toBe(leaked.id);
    const doc = await jwks();
    expect(doc.keys.map((k) => k.kid)).not.toContain(leaked.id);
    await expect(jwtVerify(token, createLocalJWKSet(doc as Parameters<typeof createLocalJWKSet>[0]))).rejects.toThrow(/no applicable key found/i);
  } finally {
    held.release();
  }
  await expect.poll(async () => (await currentVersion(h, 'session-signing').catch(() => leaked)).id, { timeout: 60_000, interval: 100 }).not.toBe(leaked.id);
}, 120_000);
