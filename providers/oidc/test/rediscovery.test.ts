/**
 * An issuer that moves its keys to a new jwks_uri (and says so in its discovery document) is
 * followed without a restart: a key set that fails to load, or lacks a token's key id, sends
 * the verifier back to the discovery document, at most every 30 s, so a flood of made-up key
 * ids costs the issuer one discovery read per 30 s. An issuer on 127.0.0.1 serves a discovery
 * document and its JWKS the way any OpenID Connect issuer does; the clock (Date only) is moved
 * past jose's 30 s cool-down instead of waiting for it.
 */
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { OidcAuthenticator } from '../oidc.authenticator.js';
import { oidcBinding } from '../oidc.schema.js';

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}
async function key(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

let server: Server;
let issuer: string;
/** Path → key set served; the discovery document names `jwksPath`. */
const sets = new Map<string, JWK[]>();
let jwksPath = '/jwks';
let discoveryReads = 0;

beforeAll(async () => {
  server = createServer((request, response) => {
    if (request.url === '/.well-known/openid-configuration') discoveryReads++;
    const keys = sets.get(request.url!);
    const body = request.url === '/.well-known/openid-configuration' ? { issuer, jwks_uri: `${issuer}${jwksPath}`, id_token_signing_alg_values_supported: ['RS256'] } : keys ? { keys } : undefined;
    response.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterEach(() => {
  vi.useRealTimers();
  sets.clear();
  jwksPath = '/jwks';
  discoveryReads = 0;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
});

const call = { signal: new AbortController().signal };
const sign = (k: Key, claims: Record<string, unknown> = {}) => {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: 'repo:acme/payments', iss: issuer, aud: 'https://rekey.test/', iat: now, exp: now + 300, ...claims }).setProtectedHeader({ alg: 'RS256', kid: k.kid, typ: 'JWT' }).sign(k.privateKey);
};
const outcome = async (authenticator: OidcAuthenticator, token: string) =>
  authenticator.authenticate(SecretValue.of(token), call).then(
    (subject) => subject.id,
    (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)),
  );
const authenticator = () => new OidcAuthenticator('ci', oidcBinding.parse({ issuer, audience: 'https://rekey.test/', insecure: true }));

it('keys moved to a new jwks_uri (the old one gone): tokens of the new keys pass once the discovery document is read again', async () => {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
  const [first, second] = [await key('k1'), await key('k2')];
  sets.set('/jwks', [first.jwk]);
  const ci = authenticator();
  expect(await outcome(ci, await sign(first))).toBe('repo:acme/payments');
  // The issuer moves: its discovery document names a new URI with a new key; the old URI is gone.
  sets.clear();
  sets.set('/keys/v2', [second.jwk]);
  jwksPath = '/keys/v2';
  vi.setSystemTime(Date.now() + 31_000);
  expect(await outcome(ci, await sign(second))).toBe('repo:acme/payments');
});

it('keys rotated to a new jwks_uri while the old one still serves the old keys: a token of a new key passes', async () => {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
  const [first, second] = [await key('k1'), await key('k2')];
  sets.set('/jwks', [first.jwk]);
  const ci = authenticator();
  expect(await outcome(ci, await sign(first))).toBe('repo:acme/payments');
  sets.set('/keys/v2', [second.jwk]);
  jwksPath = '/keys/v2';
  vi.setSystemTime(Date.now() + 31_000);
  expect(await outcome(ci, await sign(second))).toBe('repo:acme/payments');
});

it('a flood of unknown key ids reads the discovery document at most once per 30 s', async () => {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
  const [first, stranger] = [await key('k1'), await key('nobody')];
  sets.set('/jwks', [first.jwk]);
  const ci = authenticator();
  expect(await outcome(ci, await sign(first))).toBe('repo:acme/payments');
  for (let i = 0; i < 20; i++) expect(await outcome(ci, await sign({ ...stranger, kid: `made-up-${i}` }))).toBe('REKEY_ERR_DENIED: authenticator ci: unknown key');
  expect(discoveryReads).toBe(1);
  vi.setSystemTime(Date.now() + 31_000);
  for (let i = 0; i < 20; i++) expect(await outcome(ci, await sign({ ...stranger, kid: `made-up-again-${i}` }))).toBe('REKEY_ERR_DENIED: authenticator ci: unknown key');
  expect(discoveryReads).toBeLessThanOrEqual(2);
  expect(await outcome(ci, await sign(first))).toBe('repo:acme/payments');
});
