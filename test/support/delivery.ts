/**
 * Helpers of the delivery tests (issue 17): credentials as their issuers make them, token
 * exchange at POST /v1/token, the one refusal, verification against the served JWKS, and what
 * the store holds now.
 */
import { createLocalJWKSet, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import type { Harness } from './harness.js';

/**
 * The start of the delivery tests' rekey.yaml: a local store and, under `secrets:`, the shared
 * secret attestation tokens are signed with and the ES256 key tokens are signed with. A test
 * adds its own secrets (indented two spaces) and its `delivery:` section after it.
 */
export const DELIVERY_KEYS = `providers:
  vault: { type: local }
secrets:
  app-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }`;

/**
 * DELIVERY_KEYS with `secrets` added, and a delivery section where attested apps (`app:*`) get
 * api-signing's tokens for api.example.com (grant `mobile`), plus `grants` (lines indented as grants).
 */
export function appDelivery(secrets = '', grants = ''): string {
  return `${DELIVERY_KEYS}
${secrets}delivery:
  issuer: https://rekey.test
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
${grants}`;
}

/** The one answer to every invalid subject token. */
export const REFUSED = { status: 400, body: { error: 'invalid_request', error_description: 'the subject token is not valid' } };

/** RFC 8693's token type for an opaque access token: what a client key or an OIDC access token is presented as. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const call = () => ({ signal: AbortSignal.timeout(10_000) });

/** The value of a stage of `secret` as its store holds it now. */
export async function storedValue(h: Harness, secret: string, stage: 'current' | 'previous' = 'current'): Promise<string> {
  return (await (await h.runtime.resolver.resolve(secret)).store.read({ stage }, call())).reveal();
}

/** The current version row of `secret`. */
export const currentVersion = (h: Harness, secret: string) => h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } });

/** An attestation token as an attestation service signs it (HS256 under the shared secret `secret`, audience `rekey`). */
export async function attestationToken(h: Harness, secret: string, o: { sub?: string; ttlSeconds?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.sub ?? 'app:com.example.ios')
    .setAudience('rekey')
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (o.ttlSeconds ?? 120))
    .sign(new TextEncoder().encode(await storedValue(h, secret)));
}

/** POST /v1/token with `subjectToken`: status, Cache-Control and the JSON body. */
export async function exchange(h: Harness, subjectToken: string, o: { audience?: string; type?: string } = {}) {
  const response = await fetch(`${h.serving!.url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: subjectToken, subject_token_type: o.type ?? JWT_TOKEN_TYPE, ...(o.audience ? { audience: o.audience } : {}) }),
  });
  return { status: response.status, cacheControl: response.headers.get('cache-control'), body: (await response.json()) as Record<string, unknown> };
}

export async function servedJwks(h: Harness): Promise<JSONWebKeySet> {
  return (await (await fetch(`${h.serving!.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
}

/** Verifies `token` against the JWKS the server serves now, pinning ES256, issuer and audience; its payload and header. */
export async function verifyServed(h: Harness, token: string, o: { issuer: string; audience: string }) {
  return jwtVerify(token, createLocalJWKSet(await servedJwks(h)), { issuer: o.issuer, audience: o.audience, algorithms: ['ES256'] });
}
