/**
 * The attestation-jwt authenticator checks a token's audience and, when the binding names one,
 * its issuer: a token the same shared secret MACed for another audience (another service
 * verifying the same attestation service's tokens) or by another issuer is refused, with the
 * claim as its reason. Each check is tested alone: every other claim of the token is valid.
 */
import { SignJWT } from 'jose';
import { expect, it } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { AttestationJwtAuthenticator } from '../attestation-jwt.authenticator.js';
import { attestationJwtBinding } from '../attestation-jwt.schema.js';

const KEY = 'k'.repeat(32);
const now = () => Math.floor(Date.now() / 1000);
const sign = (claims: { aud: string; iss?: string }) =>
  new SignJWT({ sub: 'app:a', iat: now(), exp: now() + 120, ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(Buffer.from(KEY));
const call = { signal: new AbortController().signal };
const authenticator = (binding: { audience: string; issuer?: string }) =>
  new AttestationJwtAuthenticator('app', attestationJwtBinding.parse({ secret: 'app-attestation', ...binding }), () => Promise.resolve([{ versionId: 'v1', value: SecretValue.of(KEY) }]));
const outcome = (promise: Promise<unknown>) => promise.then(() => 'accepted', (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)));

it('refuses a token for another audience, and accepts the same token shape for its own', async () => {
  const app = authenticator({ audience: 'rekey' });
  expect(await outcome(app.authenticate(SecretValue.of(await sign({ aud: 'billing' })), call))).toBe('REKEY_ERR_DENIED: authenticator app: claim aud');
  expect(await outcome(app.authenticate(SecretValue.of(await sign({ aud: 'rekey' })), call))).toBe('accepted');
});

it('refuses a token of another issuer, or of none, when the binding names one', async () => {
  const app = authenticator({ audience: 'rekey', issuer: 'https://attest.example.com' });
  expect(await outcome(app.authenticate(SecretValue.of(await sign({ aud: 'rekey', iss: 'https://evil.example.com' })), call))).toBe('REKEY_ERR_DENIED: authenticator app: claim iss');
  expect(await outcome(app.authenticate(SecretValue.of(await sign({ aud: 'rekey' })), call))).toBe('REKEY_ERR_DENIED: authenticator app: claim iss');
  expect(await outcome(app.authenticate(SecretValue.of(await sign({ aud: 'rekey', iss: 'https://attest.example.com' })), call))).toBe('accepted');
});
