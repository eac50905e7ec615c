/**
 * Secret names as long as rekey.yaml allows (128 characters, `/` included, sent as `%2F`) reach
 * their admin API routes. fastify's router refused a path parameter over 100 characters (414)
 * before the route, so a long per-client family name could not be read or revoked by the API.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';

const family = `${'payments-'.repeat(12)}api`; // 111 characters
const client = 'a'.repeat(16);
const name = `${family}/${client}`; // 128: the longest a name may be
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'api-long-names', routes: [adminApiRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  ${family}:
    store: { provider: vault }
    issuer: { type: random }
    clients: [${client}]
`);
  expect((await h.rotate(name)).status).toBe('succeeded');
}, 60_000);
afterAll(() => h?.stop());

it('a 128-character name with a slash is read and revoked through its routes', async () => {
  expect(name).toHaveLength(128);
  const admin = await tokenFor(h, 'admin', ['admin']);
  const path = `/api/v1/secrets/${encodeURIComponent(name)}`;
  const read = await call(h, path, { token: admin });
  expect([read.status, (read.json as { name?: string }).name]).toEqual([200, name]);
  const revoke = await call(h, `${path}/versions/1/revoke`, { token: admin, method: 'POST' });
  expect(revoke.status).toBe(200);
});
