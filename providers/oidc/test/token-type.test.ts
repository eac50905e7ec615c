/**
 * Explicit typing (RFC 8725 §3.11): an issuer signs other JWTs than ID tokens and access tokens
 * with the same keys, typed so that no verifier takes one for another: a back-channel logout
 * token (`logout+jwt`, OpenID Connect Back-Channel Logout 1.0 §2.4), a security event token
 * (`secevent+jwt`, RFC 8417), a JWT introspection response (`token-introspection+jwt`, RFC 9701).
 * None of them proves who holds it, so the oidc authenticator refuses them (reason `token type`),
 * while an ID token (`typ` JWT or none) and a JWT access token (`at+jwt`, RFC 9068) pass. An
 * issuer on 127.0.0.1 serves a discovery document and its JWKS as any OpenID Connect issuer does.
 */
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { OidcAuthenticator } from '../oidc.authenticator.js';
import { oidcBinding } from '../oidc.schema.js';

let server: Server;
let issuer: string;
let privateKey: CryptoKey;
let jwk: JWK;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  privateKey = pair.privateKey;
  jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  server = createServer((request, response) => {
    const body = request.url === '/.well-known/openid-configuration' ? { issuer, jwks_uri: `${issuer}/jwks` } : request.url === '/jwks' ? { keys: [jwk] } : undefined;
    response.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
});

const call = { signal: new AbortController().signal };
const ci = () => new OidcAuthenticator('ci', oidcBinding.parse({ issuer, audience: 'rekey-client', insecure: true }));
const sign = (typ: string | undefined, claims: Record<string, unknown> = {}) => {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: 'user-1', iss: issuer, aud: 'rekey-client', iat: now, exp: now + 120, jti: 'j1', ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1', ...(typ === undefined ? {} : { typ }) })
    .sign(privateKey);
};
const outcome = async (authenticator: OidcAuthenticator, token: string) =>
  authenticator.authenticate(SecretValue.of(token), call).then(
    (subject) => subject.id,
    (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)),
  );

it('ID tokens and JWT access tokens pass, whichever way their typ is spelt', async () => {
  const authenticator = ci();
  for (const typ of [undefined, 'JWT', 'jwt', 'application/jwt', 'at+jwt', 'AT+JWT', 'application/at+jwt']) expect(await outcome(authenticator, await sign(typ)), String(typ)).toBe('user-1');
});

it('a logout token, a security event token and a JWT introspection response of the same issuer are refused', async () => {
  const authenticator = ci();
  const events = { 'http://schemas.openid.net/event/backchannel-logout': {} };
  expect(await outcome(authenticator, await sign('logout+jwt', { events }))).toBe('REKEY_ERR_DENIED: authenticator ci: token type');
  expect(await outcome(authenticator, await sign('application/logout+jwt', { events }))).toBe('REKEY_ERR_DENIED: authenticator ci: token type');
  expect(await outcome(authenticator, await sign('secevent+jwt', { events }))).toBe('REKEY_ERR_DENIED: authenticator ci: token type');
  expect(await outcome(authenticator, await sign('token-introspection+jwt', { token_introspection: { active: true } }))).toBe('REKEY_ERR_DENIED: authenticator ci: token type');
});

// Not a token type, but the same issuer's keys: a JWT without exp would never expire.
it('a token without exp is refused, though every other claim passes', async () => {
  const authenticator = ci();
  expect(await outcome(authenticator, await sign(undefined, { exp: undefined }))).toMatch(/^REKEY_ERR_DENIED: authenticator ci: /);
  expect(await outcome(authenticator, await sign(undefined))).toBe('user-1');
});
