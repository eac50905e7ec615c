/**
 * Tokens minted by POST /v1/token, verified by a real HAProxy 2.6 (`jwt_verify` against the
 * signing version's public key as a PEM file, alg pinned, aud and exp checked): the minted
 * token passes; expired, other-audience, `alg: none` and HS256-signed-with-the-public-key
 * tokens are refused. (Publishing the key file from rekey is not built yet: the test writes
 * the PEM of the JWKS key rekey serves.)
 */
import { decodeProtectedHeader, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pemOfJwk } from '../../src/cli/demo-gateway.js';
import { signingKeyFromValue } from '../../providers/jwt-signing-key/jwks.js';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { startJwtHaproxy, type JwtGateway } from '../support/gateways/haproxy-jwt.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let gateway: JwtGateway;
let pem: string;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-haproxy', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 2m } }
`);
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  const { keys } = (await (await fetch(`${h.serving!.url}/.well-known/jwks/api-signing.json`)).json()) as { keys: JWK[] };
  pem = pemOfJwk(keys[0]!);
  gateway = await startJwtHaproxy(pem, 'api.example.com');
}, 120_000);
afterAll(async () => {
  await gateway?.stop();
  await h.stop();
});

const call = () => ({ signal: AbortSignal.timeout(10_000) });
const status = async (token: string) => (await fetch(gateway.url, { headers: { authorization: `Bearer ${token}` } })).status;

async function minted(): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('app-attestation');
  const shared = new TextEncoder().encode((await store.read({ stage: 'current' }, call())).reveal());
  const attestation = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('app:com.example.ios').setAudience('rekey').setIssuedAt().setExpirationTime('1m').sign(shared);
  const response = await fetch(`${h.serving!.url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: attestation, subject_token_type: JWT_TOKEN_TYPE, audience: 'api.example.com' }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** A token signed with the signing key's current private key, as only rekey could: for claims rekey would never mint. */
async function forged(claims: { aud: string; exp: number }): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('api-signing');
  const key = await signingKeyFromValue(await store.read({ stage: 'current' }, call()));
  return new SignJWT({ sub: 'app:com.example.ios' }).setProtectedHeader({ alg: key.alg, kid: key.kid }).setAudience(claims.aud).setIssuedAt().setExpirationTime(claims.exp).sign(key.key);
}

it('accepts a minted token at HAProxy and refuses expired, other-audience, alg none and HS256-with-the-public-key tokens', async () => {
  const token = await minted();
  expect(decodeProtectedHeader(token).alg).toBe('ES256');
  expect(await status(token)).toBe(200);
  const now = Math.floor(Date.now() / 1000);
  expect(await status(await forged({ aud: 'api.example.com', exp: now + 60 }))).toBe(200); // the forger itself is sound
  expect(await status(await forged({ aud: 'api.example.com', exp: now - 10 }))).toBe(401);
  expect(await status(await forged({ aud: 'api.other.com', exp: now + 60 }))).toBe(401);
  const [, body] = token.split('.');
  expect(await status(`${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${body}.`)).toBe(401);
  const hs256 = await new SignJWT(JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(pem));
  expect(await status(hs256)).toBe(401);
  expect(await status(`${token.slice(0, -4)}AAAA`)).toBe(401); // tampered signature
  expect(await status('')).toBe(401);
});
