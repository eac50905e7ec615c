/**
 * Nothing about the grants is told before authentication: an anonymous caller's answer is the
 * same byte for byte whether the audience it asks a token for, or the secret it asks the value
 * of, is served by a grant or not. Before, POST /v1/token answered an audience no grant serves
 * with 400 invalid_target before looking at the credential, and a served one with the refusal:
 * anyone could list the audiences. An authenticated caller is still told invalid_target (token)
 * or 403 (value: the same for a secret that exists and one that does not). Both refusals count
 * against the source's failed authentications.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { Admission } from '../../src/http/admission.js';
import type { RouteModule } from '../../src/http/server.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import { attestationToken, appDelivery } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let admission: Admission | undefined;
const spying: RouteModule = (_app, _runtime, shared) => {
  admission = shared.admission;
};

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-enum', routes: [deliveryRoutes, spying] });
  await h.apply(appDelivery(`  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ } }
`, `    payments: { authenticator: app, subjects: ["app:*"], value: { secret: payments-api-key, ttl: 5m } }
`));
  for (const secret of ['app-attestation', 'api-signing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h?.stop());

/** The raw answer: status, the headers that could differ, and the body's bytes. */
async function raw(response: Response) {
  return { status: response.status, cacheControl: response.headers.get('cache-control'), wwwAuthenticate: response.headers.get('www-authenticate'), body: await response.text() };
}

const token = async (subjectToken: string, audience: string) =>
  raw(
    await fetch(`${h.serving!.url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: subjectToken, subject_token_type: JWT_TOKEN_TYPE, audience }),
    }),
  );

const value = async (credential: string, secret: string) => raw(await fetch(`${h.serving!.url}/v1/secrets/${secret}`, { headers: { authorization: `Bearer ${credential}` } }));

it('answers an anonymous token request the same whether a grant serves its audience or not, and an authenticated one invalid_target', async () => {
  const failed = vi.spyOn(admission!, 'failed');
  const known = await token('not.a.jwt', 'api.example.com');
  const unknown = await token('not.a.jwt', 'api.nobody.example');
  expect(known.status).toBe(400);
  expect(unknown).toEqual(known);
  expect(failed).toHaveBeenCalledTimes(2);

  const valid = await attestationToken(h, 'app-attestation');
  expect((await token(valid, 'api.example.com')).status).toBe(200);
  const ungranted = await token(valid, 'api.nobody.example');
  expect(ungranted.status).toBe(400);
  expect(JSON.parse(ungranted.body)).toEqual({ error: 'invalid_target', error_description: 'no grant issues tokens for this audience' });
  expect(failed).toHaveBeenCalledTimes(3); // as before: an audience no grant serves counts against the source
  failed.mockRestore();
});

it('answers an anonymous value request the same whether a grant serves the secret or not, and an authenticated one 403 for both', async () => {
  const known = await value('not.a.jwt', 'payments-api-key');
  const unknown = await value('not.a.jwt', 'no-such-secret');
  expect(known.status).toBe(401);
  expect(unknown).toEqual(known);

  const valid = await attestationToken(h, 'app-attestation');
  expect((await value(valid, 'payments-api-key')).status).toBe(200);
  const [ungranted, missing] = [await value(valid, 'api-signing'), await value(valid, 'no-such-secret')];
  expect(ungranted.status).toBe(403);
  expect(missing).toEqual(ungranted);
});

it('refuses a JSON body whose audience is not a string, instead of reading it as no audience (a token for whatever audience its grant serves)', async () => {
  const valid = await attestationToken(h, 'app-attestation');
  const post = async (audience: unknown) => {
    const response = await fetch(`${h.serving!.url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: GRANT_TYPE, subject_token: valid, subject_token_type: JWT_TOKEN_TYPE, audience }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  for (const audience of [['api.nobody.example'], ['api.example.com'], { aud: 'api.example.com' }, 42, null]) {
    expect({ audience, ...(await post(audience)) }).toEqual({ audience, status: 400, body: { error: 'invalid_request', error_description: 'audience must be a string' } });
  }
  expect((await post('api.example.com')).status).toBe(200);
});

it('HEAD /v1/secrets/{name} hands nothing out: no hand-out audited for an answer that carries no value, nor its length', async () => {
  // Before, fastify's automatic HEAD route ran the GET handler: 200, the value's Content-Length, and a delivery.value audited.
  const valid = await attestationToken(h, 'app-attestation');
  const before = await h.runtime.db.auditEvent.count({ where: { action: 'delivery.value' } });
  for (const path of ['/v1/secrets/payments-api-key', '/v1/events']) {
    const response = await fetch(`${h.serving!.url}${path}`, { method: 'HEAD', headers: { authorization: `Bearer ${valid}` } });
    expect({ path, status: response.status, etag: response.headers.get('etag') }).toEqual({ path, status: 404, etag: null });
  }
  expect(await h.runtime.db.auditEvent.count({ where: { action: 'delivery.value' } })).toBe(before);
});

