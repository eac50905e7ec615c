/**
 * The client-key authenticator (issue 17) on a real server: each client of a `clients:` family
 * exchanges its own key for a short-lived JWT at POST /v1/token. A valid key (and the previous
 * one during its grace) passes; a revoked client is refused at once while the other clients go
 * on; a tampered key, a key of another family and garbage get the one refusal; neither key nor
 * token reaches the audit log or the logs.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { ACCESS_TOKEN_TYPE, exchange as exchangeToken, REFUSED, storedValue, verifyServed } from '../support/delivery.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-client-key', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  api-clients:
    clients: [acme, globex]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_cli_ }
    grace: 1h
  other-clients:
    clients: [initech]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_oth_ }
  api-signing:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    grace: 10m
delivery:
  issuer: https://rekey.test
  authenticators:
    partners: { type: client-key, secret: api-clients }
  grants:
    partner-api:
      authenticator: partners
      subjects: ["api-clients/*"]
      token: { signingKey: api-signing, audience: partner-api, ttl: 5m, claims: { copy: [client] } }
`);
  for (const secret of ['api-clients/acme', 'api-clients/globex', 'other-clients/initech', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

const keyOf = (secret: string) => storedValue(h, secret);

/** POST /v1/token with a client key for `partner-api`: status and body. */
async function exchange(key: string) {
  const { status, body } = await exchangeToken(h, key, { type: ACCESS_TOKEN_TYPE, audience: 'partner-api' });
  return { status, body };
}

const verify = async (token: string) => (await verifyServed(h, token, { issuer: 'https://rekey.test', audience: 'partner-api' })).payload;

it('exchanges a client key for a token naming the client, audited without key or token', async () => {
  const key = await keyOf('api-clients/acme');
  const answer = await exchange(key);
  expect(answer.status).toBe(200);
  const token = answer.body.access_token as string;
  expect(await verify(token)).toMatchObject({ sub: 'api-clients/acme', client: 'acme' });
  const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'delivery.token' } });
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ actor: 'subject:api-clients/acme', data: { authenticator: 'partners', subject: 'api-clients/acme' } });
  const everything = JSON.stringify(await h.runtime.db.auditEvent.findMany(), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) + h.logs.join('\n');
  expect(everything).not.toContain(key);
  expect(everything).not.toContain(token);
});

it('refuses a tampered key, a key of another family, and garbage with the one answer', async () => {
  const key = await keyOf('api-clients/globex');
  const last = key.at(-1)!;
  const tampered = key.slice(0, -1) + (last === 'A' ? 'B' : 'A');
  for (const presented of [tampered, `${key}x`, key.slice(0, -1), await keyOf('other-clients/initech'), 'rk_cli_nothing', 'x'.repeat(5000)]) {
    expect(await exchange(presented)).toEqual(REFUSED);
  }
  expect(h.logs.filter((l) => l.includes('credential refused')).join('\n')).toContain('authenticator partners: unknown key');
  expect((await exchange(key)).status).toBe(200);
});

it('accepts the previous key of a client during its grace, and its new one', async () => {
  const before = await keyOf('api-clients/globex');
  expect((await h.rotate('api-clients/globex', 60_000)).status).toBe('succeeded');
  const after = await keyOf('api-clients/globex');
  expect(after).not.toBe(before);
  expect((await exchange(before)).status).toBe(200);
  expect(await verify((await exchange(after)).body.access_token as string)).toMatchObject({ sub: 'api-clients/globex' });
}, 60_000);

it('a revoked client is refused at once, alone: the other clients go on, and its replacement key passes', async () => {
  const leaked = await keyOf('api-clients/acme');
  const version = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'api-clients/acme' }, state: 'current' } });
  const globex = await keyOf('api-clients/globex');
  await h.runtime.engine.revoke('api-clients/acme', version.number);
  expect(await exchange(leaked)).toEqual(REFUSED);
  expect((await exchange(globex)).status).toBe(200);
  await expect
    .poll(async () => (await h.runtime.db.version.findFirst({ where: { secret: { name: 'api-clients/acme' }, state: 'current' } }))?.id ?? version.id, { timeout: 60_000, interval: 100 })
    .not.toBe(version.id);
  const replacement = await keyOf('api-clients/acme');
  expect(await verify((await exchange(replacement)).body.access_token as string)).toMatchObject({ sub: 'api-clients/acme' });
  expect(await exchange(leaked)).toEqual(REFUSED);
}, 120_000);
