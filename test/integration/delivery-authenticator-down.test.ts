/**
 * One authenticator that cannot verify does not lock out the callers of another: an `oidc`
 * authenticator whose issuer does not answer (its discovery document unreachable) is named by
 * the first grant for an audience (first in the file and in PostgreSQL's jsonb key order, which
 * puts shorter names first), an `attestation-jwt` one by the second. An attested app still
 * gets its token; a credential nobody accepts that claims the unreachable issuer gets 503, not
 * the refusal, since that issuer might have vouched for it; one that does not claim it is refused. Before, the first authenticator's failure answered 503 to
 * everyone: an outage of a CI system's issuer stopped every mobile app's token exchange.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import type { Admission } from '../../src/http/admission.js';
import { attestationToken, exchange, REFUSED, DELIVERY_KEYS } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
/** The OIDC issuer nothing answers for. */
let ciIssuer: string;
/** The server's admission, whose failed() counts a source's failed authentications. */
let admission: Admission | undefined;

/** A port nothing listens on: taken, then given back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-auth-down', routes: [deliveryRoutes, (_app, _runtime, shared) => void (admission = shared.admission)] });
  ciIssuer = `http://127.0.0.1:${await closedPort()}`;
  await h.apply(`
${DELIVERY_KEYS}
  ci-value: { store: { provider: vault }, issuer: { type: random } }
delivery:
  issuer: https://rekey.test
  authenticators:
    ci: { type: oidc, issuer: "${ciIssuer}", audience: rekey, insecure: true }
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    ci: { authenticator: ci, subjects: ["*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    ci-values: { authenticator: ci, subjects: ["*"], value: { secret: ci-value, ttl: 5m } }
    app-values: { authenticator: app, subjects: ["app:*"], value: { secret: ci-value, ttl: 5m } }
`);
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

const failures = () => h.logs.filter((line) => line.includes('authenticator failed') && line.includes('"authenticator":"ci"')).length;

/** A JWT that claims the unreachable issuer, signed by nobody: only that issuer's keys could tell. */
const claimingCi = () => {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'ci-key' })}.${part({ iss: ciIssuer, aud: 'rekey', sub: 'ci-job', exp: Math.floor(Date.now() / 1000) + 60 })}.${'A'.repeat(342)}`;
};

it('an attested app gets its token while the OIDC issuer named by an earlier grant is unreachable', async () => {
  const before = failures();
  const answer = await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'api.example.com' });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.body.access_token).toEqual(expect.any(String));
  // ci was asked first and refused a token that does not claim its issuer without reaching for it.
  expect(failures()).toBe(before);
  expect(h.logs.some((line) => line.includes('authenticator ci: claim iss'))).toBe(true);
});

it('a credential no authenticator accepts gets 503 while one of them could not verify it, not the refusal, and counts against its source', async () => {
  const before = failures();
  const counted = vi.spyOn(admission!, 'failed');
  const answer = await exchange(h, claimingCi(), { audience: 'api.example.com' });
  expect(answer.status).toBe(503);
  expect(answer.body).not.toEqual(REFUSED.body);
  expect(failures()).toBeGreaterThan(before);
  // Else garbage sprayed during the outage would be counted nowhere.
  expect(counted).toHaveBeenCalledTimes(1);
  // A valid credential of the working authenticator is not.
  expect((await exchange(h, await attestationToken(h, 'app-attestation'), { audience: 'api.example.com' })).status).toBe(200);
  expect(counted).toHaveBeenCalledTimes(1);
  // The same on GET /v1/secrets and GET /v1/events.
  for (const path of ['/v1/secrets/ci-value', '/v1/events']) {
    const response = await fetch(`${h.serving!.url}${path}`, { headers: { authorization: `Bearer ${claimingCi()}` } });
    expect({ path, status: response.status }).toEqual({ path, status: 503 });
    await response.body?.cancel();
  }
  expect(counted).toHaveBeenCalledTimes(3);
  counted.mockRestore();
  // One that does not claim ci's issuer is refused: ci could never have vouched for it.
  const forged = await attestationToken(h, 'app-attestation');
  expect(await exchange(h, `${forged.slice(0, -4)}AAAA`, { audience: 'api.example.com' })).toMatchObject(REFUSED);
});
