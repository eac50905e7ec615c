/* eslint-disable @typescript-eslint/no-unsafe-member-access -- answers are JSON, checked field by field */
/**
 * An admin API token (`rkadm_...`) found by `rekey scan` and sent to POST /api/v1/keys/check or
 * /keys/report (review-admin finding 3): check names it (its name and state, never the token)
 * and leaves it alone; report revokes it as the leak webhooks do (`token.revoked`, reason
 * leaked, by the caller), so the token is refused from then on.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'keys-admin-token', routes: [adminApiRoutes] });
});
afterAll(() => h?.stop());

const revocations = async (name: string) => (await h.runtime.db.auditEvent.findMany({ where: { action: 'token.revoked' } })).filter((e) => (e.data as { name?: string }).name === name);

it('check names a leaked admin token without revoking it; report revokes it, and it is refused from then on', async () => {
  const leaked = await tokenFor(h, 'pushed-to-github', ['admin']);
  // Neither caller holds admin: presenting the token is what lets them name it (check) or revoke it (report).
  const reader = await tokenFor(h, 'reader', ['read:payments-*']);
  const scanner = await tokenFor(h, 'scanner', ['revoke:payments-*']);

  const checked = await call(h, '/api/v1/keys/check', { method: 'POST', token: reader, body: { keys: [leaked] } });
  expect(checked.status).toBe(200);
  expect(checked.json.items).toEqual([{ index: 0, prefix: 'rkadm_', secret: null, version: null, state: 'active', live: true, adminToken: 'pushed-to-github' }]);
  // Check only says what it is.
  expect((await call(h, '/api/v1/openapi.json', { token: leaked })).status).toBe(200);
  expect((await h.runtime.db.apiToken.findUniqueOrThrow({ where: { name: 'pushed-to-github' } })).revokedAt).toBeNull();
  expect(await revocations('pushed-to-github')).toEqual([]);

  const reported = await call(h, '/api/v1/keys/report', { method: 'POST', token: scanner, body: { keys: [leaked] } });
  expect(reported.status).toBe(200);
  expect(reported.json.items).toEqual([{ index: 0, prefix: 'rkadm_', secret: null, version: null, state: 'active', live: true, adminToken: 'pushed-to-github', outcome: 'revoked' }]);
  expect((await h.runtime.db.apiToken.findUniqueOrThrow({ where: { name: 'pushed-to-github' } })).revokedAt).not.toBeNull();
  expect((await call(h, '/api/v1/openapi.json', { token: leaked })).status).toBe(401);
  // Audited as a leak webhook's report is: token.revoked, reason leaked, naming who reported it.
  expect((await revocations('pushed-to-github')).map((e) => ({ actor: e.actor, data: e.data }))).toEqual([{ actor: 'token:scanner', data: { name: 'pushed-to-github', reason: 'leaked' } }]);
  expect(h.logs.some((line) => line.includes('admin API token reported leaked') && line.includes('"tokenName":"pushed-to-github"'))).toBe(true);

  // Reported again: nothing more happens; checked again: named, revoked, not live.
  const again = await call(h, '/api/v1/keys/report', { method: 'POST', token: scanner, body: { keys: [leaked] } });
  expect(again.json.items).toEqual([expect.objectContaining({ state: 'revoked', live: false, adminToken: 'pushed-to-github', outcome: 'revoked' })]);
  expect(await revocations('pushed-to-github')).toHaveLength(1);
  const after = await call(h, '/api/v1/keys/check', { method: 'POST', token: reader, body: { keys: [leaked] } });
  expect(after.json.items).toEqual([expect.objectContaining({ state: 'revoked', live: false, adminToken: 'pushed-to-github' })]);

  // The token itself is in no answer and no log line; nor is a piece of its random part.
  for (const text of [checked.text, reported.text, again.text, after.text, ...h.logs]) expect(text).not.toContain(leaked.slice(6, 20));
});

it('an expired admin token is named expired and not live; an unknown one is no token', async () => {
  const expiring = await tokenFor(h, 'expired-one', ['read'], 1);
  await h.runtime.db.apiToken.update({ where: { name: 'expired-one' }, data: { expiresAt: new Date(Date.now() - 1000) } });
  const unknown = await tokenFor(h, 'deleted-one', ['read']);
  await h.runtime.db.apiToken.delete({ where: { name: 'deleted-one' } });
  const reader = await tokenFor(h, 'reader-2', ['read']);
  const checked = await call(h, '/api/v1/keys/check', { method: 'POST', token: reader, body: { keys: [expiring, unknown] } });
  expect(checked.json.items).toEqual([
    { index: 0, prefix: 'rkadm_', secret: null, version: null, state: 'expired', live: false, adminToken: 'expired-one' },
    { index: 1, prefix: 'rkadm_', secret: null, version: null, state: null, live: false, adminToken: null },
  ]);
});
