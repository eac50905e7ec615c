/**
 * `rekey scan --report` (POST /api/v1/keys/report) on a key that is retired but not yet revoked:
 * taken off every target, yet still valid at its issuer (an http issuer whose revoke keeps
 * failing leaves it so). Found where it must not be, it is live for anyone holding it and must go
 * down the leak path as a webhook report would take it: compromised, its revocation queued on
 * the leak queue, the report recorded.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { acmeProviderYaml, startFakeSaas, type FakeSaas } from '../../providers/http/test/fake/saas-server.js';
import { adminApiRoutes } from '../../src/api/routes.js';
import { generateKey } from '../../src/core/key-format.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

const TOKEN_ENV = `ACME_ADMIN_TOKEN_RETIRED_${process.pid}`;
let h: Harness;
let saas: FakeSaas;

beforeAll(async () => {
  saas = await startFakeSaas();
  process.env[TOKEN_ENV] = saas.adminToken;
  h = await startHarness({ label: 'keys-report-retired', routes: [adminApiRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
${acmeProviderYaml(saas, TOKEN_ENV)}
secrets:
  acme-key:
    store: { provider: vault }
    issuer: { provider: acme }
    grace: 1s
env: { allow: [${TOKEN_ENV}] }
`);
}, 60_000);
afterAll(async () => {
  await h?.stop();
  await saas?.close();
  delete process.env[TOKEN_ENV];
});

it('a retired key whose revocation keeps failing is still live at its issuer: --report takes it down the leak path', async () => {
  const leaked = generateKey('rk_live_');
  saas.issueNext(leaked);
  expect((await h.rotate('acme-key', 60_000)).status).toBe('succeeded');
  saas.issueNext(generateKey('rk_live_'));
  expect((await h.rotate('acme-key', 60_000)).status).toBe('succeeded');
  // The issuer stops answering: v1's retirement takes it off (no) targets, then its revoke fails, again and again.
  saas.failNext(1_000_000, 503);
  const v1 = () => h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'acme-key' }, number: 1 } });
  await until(async () => (await v1()).state === 'retired', 30_000, 'v1 retired, its revocation failing');
  expect([...saas.keys.values()].some((k) => k.key === leaked)).toBe(true); // still valid at the issuer

  const token = await tokenFor(h, 'scanner', ['read', 'revoke:acme-key']);
  const answer = await call(h, '/api/v1/keys/report', { method: 'POST', token, body: { keys: [leaked] } });
  expect(answer.status).toBe(200);
  expect((answer.json as { items: unknown[] }).items[0]).toMatchObject({ secret: 'acme-key', version: 1, live: true, outcome: 'revoking' });
  expect((await v1()).state).toBe('compromised');
  expect(await h.runtime.db.leakReport.count()).toBe(1);

  // The issuer back: the key is revoked there.
  saas.failNext(0, 503);
  await until(async () => (await v1()).state === 'revoked', 30_000, 'v1 revoked');
  expect([...saas.keys.values()].some((k) => k.key === leaked)).toBe(false);
});
