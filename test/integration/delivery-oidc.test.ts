/**
 * The oidc authenticator (issue 17) against a real OpenID Connect provider run locally
 * (`oidc-provider`, a certified implementation): it issues JWT access tokens by the client
 * credentials grant, and rekey finds its keys through its discovery document. Valid tokens are
 * exchanged at POST /v1/token; expired, wrong-audience, wrong-issuer (same keys, another
 * issuer), unknown-key (same issuer name, other keys), tampered and claim-rule-failing tokens
 * all get the one refusal, each logged with its reason.
 */
import { decodeJwt, type JWK } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { ACCESS_TOKEN_TYPE, exchange as exchangeToken, REFUSED } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { type LocalIdp, rsaKey, startIdp } from '../support/oidc-provider.js';

const REKEY = 'https://rekey.test/';
const idps: LocalIdp[] = [];

/** A listening oidc-provider issuing JWT access tokens by client credentials; `issuer` defaults to its own address. */
async function idp(keys: JWK[], issuer?: string, middleware?: Parameters<typeof startIdp>[2]): Promise<{ issuer: string; url: string }> {
  const clients = ['ci-deploy', 'short', 'other'].map((id) => ({ client_id: id, client_secret: `${id}-secret-0123456789`, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }));
  const started = await startIdp(
    {
      clients,
      jwks: { keys },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => REKEY,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource, client) => ({
            scope: 'deploy',
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: client.clientId === 'short' ? 1 : 300,
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
    },
    issuer,
    middleware,
  );
  idps.push(started);
  return started;
}

/** A JWT access token from the provider at `url` for `client`, for `resource`. */
async function tokenFrom(url: string, client: string, resource = REKEY): Promise<string> {
  const response = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client}:${client}-secret-0123456789`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'deploy' }),
  });
  const body = (await response.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`no token from ${url}: ${response.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

let h: Harness;
let real: { issuer: string; url: string };
let sameKeysOtherIssuer: { issuer: string; url: string };
let sameIssuerOtherKeys: { issuer: string; url: string };
/** A real provider whose JWKS endpoint answers 503 while `jwksDown` (an outage of the issuer's key endpoint, or of the load balancer before it). */
let flaky: { issuer: string; url: string };
/** Another such provider, for an authenticator whose discovery has not been made when its test starts. */
let cold: { issuer: string; url: string };
let jwksDown = false;
/** GET /jwks requests the flaky provider received while down. */
let jwksHitsWhileDown = 0;
/** Its discovery document answers 503 while `discoveryDown`; the requests it got meanwhile. */
let discoveryDown = false;
let discoveryHitsWhileDown = 0;

/** idp() with a single key, its discovery document and JWKS endpoint answering 503 while they are down. */
function flakyIdp(key: JWK): Promise<{ issuer: string; url: string }> {
  return idp([key], undefined, async (ctx, next) => {
    if (discoveryDown && ctx.path === '/.well-known/openid-configuration') {
      discoveryHitsWhileDown += 1;
      ctx.status = 503;
      return;
    }
    if (jwksDown && ctx.path === '/jwks') {
      jwksHitsWhileDown += 1;
      ctx.status = 503;
      ctx.body = 'service unavailable';
      return;
    }
    await next();
  });
}

beforeAll(async () => {
  const key = await rsaKey('idp-key-1');
  real = await idp([key]);
  sameKeysOtherIssuer = await idp([key]);
  sameIssuerOtherKeys = await idp([await rsaKey('impostor-key')], real.issuer);
  flaky = await flakyIdp(await rsaKey('flaky-key-1'));
  // An issuer of its own: every request is tried against every authenticator, and one sharing
  // flaky's issuer would have read its discovery document with flaky's tokens' first refusal.
  cold = await flakyIdp(await rsaKey('cold-key-1'));
  h = await startHarness({ label: 'delivery-oidc', routes: [deliveryRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  api-signing:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    grace: 10m
delivery:
  issuer: https://rekey.test
  authenticators:
    ci:
      type: oidc
      issuer: ${real.issuer}
      audience: ${REKEY}
      insecure: true
      clockToleranceSeconds: 0
      claims: { client_id: [ci-deploy, short], scope: deploy }
    flaky: { type: oidc, issuer: ${flaky.issuer}, audience: ${REKEY}, insecure: true }
    flaky-cold: { type: oidc, issuer: ${cold.issuer}, audience: ${REKEY}, insecure: true }
  grants:
    cold-deploys: { authenticator: flaky-cold, subjects: [ci-deploy], token: { signingKey: api-signing, audience: cold-api, ttl: 5m } }
    flaky-deploys: { authenticator: flaky, subjects: [ci-deploy], token: { signingKey: api-signing, audience: flaky-api, ttl: 5m } }
    deploys:
      authenticator: ci
      subjects: [ci-deploy, short]
      token: { signingKey: api-signing, audience: internal-api, ttl: 5m, claims: { copy: [client_id] } }
`);
  expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(async () => {
  await h.stop();
  for (const started of idps) await started.close();
});

/** POST /v1/token with an OIDC token for `internal-api`: status and body. */
async function exchange(subjectToken: string) {
  const { status, body } = await exchangeToken(h, subjectToken, { type: ACCESS_TOKEN_TYPE, audience: 'internal-api' });
  return { status, body };
}

const reasons = () => h.logs.filter((l) => l.includes('credential refused')).map((l) => (JSON.parse(l) as { reason: string }).reason);

it('exchanges a token of the real OIDC provider for a rekey token naming its subject', async () => {
  const presented = await tokenFrom(real.url, 'ci-deploy');
  expect(decodeJwt(presented)).toMatchObject({ iss: real.issuer, aud: REKEY, sub: 'ci-deploy' });
  const answer = await exchange(presented);
  expect(answer.status).toBe(200);
  expect(decodeJwt(answer.body.access_token as string)).toMatchObject({ sub: 'ci-deploy', client_id: 'ci-deploy', aud: 'internal-api', iss: 'https://rekey.test' });
  expect(h.logs.join('\n')).not.toContain(presented);
});

it('refuses expired, wrong-audience, wrong-issuer, unknown-key, tampered and claim-rule-failing tokens with one answer', async () => {
  const short = await tokenFrom(real.url, 'short');
  const expiresAt = decodeJwt(short).exp! * 1000;
  const valid = await tokenFrom(real.url, 'ci-deploy');
  const [header, payload, signature] = valid.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
  const refused: Record<string, string> = {
    'claim aud': await tokenFrom(real.url, 'ci-deploy', 'https://another-api.test/'),
    'claim iss': await tokenFrom(sameKeysOtherIssuer.url, 'ci-deploy'),
    'unknown key': await tokenFrom(sameIssuerOtherKeys.url, 'ci-deploy'),
    signature: `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'short' })).toString('base64url')}.${signature}`,
    'claim rule': await tokenFrom(real.url, 'other'),
    algorithm: `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'idp-key-1' })).toString('base64url')}.${payload}.`,
  };
  // The short token's one second: wait it out (its exp is the provider's), then it must be refused.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now() + 1100)));
  refused.expired = short;
  for (const [why, token] of Object.entries(refused)) {
    const before = reasons().length;
    expect({ why, ...(await exchange(token)) }).toEqual({ why, ...REFUSED });
    // Every authenticator of a token grant is asked, whatever the audience; flaky's and
    // flaky-cold's refuse a token of another issuer before reading their issuer's keys.
    expect(reasons().slice(before)).toEqual([`authenticator ci: ${why}`, 'authenticator flaky-cold: claim iss', 'authenticator flaky: claim iss']);
  }
  expect((await exchange(valid)).status).toBe(200);
}, 60_000);

it("answers 503, not the refusal, while the issuer's JWKS endpoint fails, without a fetch per request, and the token passes once it is back", async () => {
  const presented = await tokenFrom(flaky.url, 'ci-deploy');
  const [, payload, signature] = presented.split('.');
  /** The valid token's payload under a made-up key id: what a flood of garbage looks like. */
  const madeUp = (i: number) => `${Buffer.from(JSON.stringify({ alg: 'RS256', kid: `made-up-${i}` })).toString('base64url')}.${payload}.${signature}`;
  const failures = () => h.logs.filter((l) => l.includes('authenticator failed') && l.includes('"authenticator":"flaky"')).length;
  jwksDown = true;
  try {
    expect((await fetch(`${flaky.url}/jwks`)).status).toBe(503);
    jwksHitsWhileDown = 0;
    const failuresBefore = failures();
    const during = await exchangeToken(h, presented, { type: ACCESS_TOKEN_TYPE, audience: 'flaky-api' });
    // A valid token is not "not valid": the client would drop it, and its address would be charged a failed authentication.
    expect({ status: during.status, body: during.body }).toEqual({ status: 503, body: { error: 'temporarily_unavailable', error_description: 'try again shortly' } });
    expect(failures()).toBeGreaterThan(failuresBefore);
    // Every request that follows at once, made-up key ids included, is answered without asking the failing issuer again.
    for (let i = 0; i < 5; i++) expect((await exchangeToken(h, madeUp(i), { type: ACCESS_TOKEN_TYPE, audience: 'flaky-api' })).status).toBe(503);
    expect(jwksHitsWhileDown, 'JWKS fetches from the failing issuer').toBe(1);
  } finally {
    jwksDown = false;
  }
  // Back: the token passes again within the short back-off (polled: no fixed wait).
  await expect.poll(async () => (await exchangeToken(h, presented, { type: ACCESS_TOKEN_TYPE, audience: 'flaky-api' })).status, { timeout: 20_000, interval: 250 }).toBe(200);
}, 60_000);

it("asks an issuer whose discovery document fails once, not once per request, and passes once it is back", async () => {
  const presented = await tokenFrom(cold.url, 'ci-deploy');
  discoveryDown = true;
  try {
    discoveryHitsWhileDown = 0;
    for (let i = 0; i < 5; i++) expect((await exchangeToken(h, presented, { type: ACCESS_TOKEN_TYPE, audience: 'cold-api' })).status).toBe(503);
    expect(discoveryHitsWhileDown, 'discovery fetches from the failing issuer').toBe(1);
  } finally {
    discoveryDown = false;
  }
  await expect.poll(async () => (await exchangeToken(h, presented, { type: ACCESS_TOKEN_TYPE, audience: 'cold-api' })).status, { timeout: 20_000, interval: 250 }).toBe(200);
}, 60_000);
