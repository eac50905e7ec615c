/**
 * POST /api/v1/keys/check and /keys/report on a key two secrets share (an http issuer that hands
 * both the same account token): a token scoped to one of them must see and report its own
 * secret's version, whichever row the fingerprint lookup meets first.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { generateKey } from '../../src/core/key-format.js';
import { call, tokenFor } from '../support/api.js';
import type { Harness } from '../support/harness.js';
import { startSharedAcme, type SharedAcme } from '../support/shared-acme.js';

const TOKEN_ENV = `ACME_ADMIN_TOKEN_KEYS_SHARED_${process.pid}`;
let h: Harness;
let env: SharedAcme | undefined;
const shared = generateKey('rk_live_');

beforeAll(async () => {
  env = await startSharedAcme('keys-report-shared-value', TOKEN_ENV, [adminApiRoutes]);
  h = env.h;
  for (const secret of ['acme-a', 'acme-b']) {
    env.saas.issueNext(shared);
    expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  }
}, 60_000);
afterAll(() => env?.stop());

it("a token scoped to one of two secrets sharing a key sees and reports that secret's version", async () => {
  const seen: Record<string, unknown> = {};
  for (const secret of ['acme-a', 'acme-b']) {
    const answer = await call(h, '/api/v1/keys/check', { method: 'POST', token: await tokenFor(h, `reader-${secret}`, [`read:${secret}`]), body: { keys: [shared] } });
    seen[secret] = (answer.json as { items: Array<{ secret: string | null }> }).items[0]?.secret;
  }
  expect(seen).toEqual({ 'acme-a': 'acme-a', 'acme-b': 'acme-b' });

  const scanner = await tokenFor(h, 'scanner', ['read', 'revoke:acme-b']);
  const answer = await call(h, '/api/v1/keys/report', { method: 'POST', token: scanner, body: { keys: [shared] } });
  expect(answer.status).toBe(200);
  expect((answer.json as { items: unknown[] }).items[0]).toMatchObject({ secret: 'acme-b', version: 1, live: true, outcome: 'blocking' });
  const versions = await h.runtime.db.version.findMany({ where: { number: 1 }, select: { compromisedAt: true, secret: { select: { name: true } } } });
  // The leak path takes down every version holding the value (src/core/leak.ts), acme-a's too.
  expect(Object.fromEntries(versions.map((v) => [v.secret.name, v.compromisedAt !== null]))).toEqual({ 'acme-a': true, 'acme-b': true });
});
