/**
 * The attestation-jwt authenticator never verifies with a key anyone could guess: a live value
 * that decodes to no key bytes at all (not base64 under `encoding: base64`) or to fewer than 16
 * (hmac-key's own minimum) verifies nothing, so a token MACed with an empty or short key is
 * refused, and a secret whose live versions are all such keys is unavailable, not open.
 */
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { expect, it } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { AttestationJwtAuthenticator } from '../attestation-jwt.authenticator.js';
import { attestationJwtBinding } from '../attestation-jwt.schema.js';

const now = () => Math.floor(Date.now() / 1000);
const sign = (key: Uint8Array) => new SignJWT({ sub: 'app:a', aud: 'rekey', iat: now(), exp: now() + 120 }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);
/** What an attacker makes with the empty key (WebCrypto, hence jose, refuses to sign with one; node:crypto does not). */
const signEmpty = () => {
  const part = (object: object) => Buffer.from(JSON.stringify(object)).toString('base64url');
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: 'app:a', aud: 'rekey', iat: now(), exp: now() + 120 })}`;
  return `${input}.${createHmac('sha256', Buffer.alloc(0)).update(input).digest('base64url')}`;
};
const call = { signal: new AbortController().signal };
const authenticator = (encoding: 'utf8' | 'base64', ...values: string[]) =>
  new AttestationJwtAuthenticator('app', attestationJwtBinding.parse({ secret: 'app-attestation', audience: 'rekey', encoding }), () =>
    Promise.resolve(values.map((value, i) => ({ versionId: `v${i}`, value: SecretValue.of(value) }))),
  );
const outcome = (promise: Promise<unknown>) => promise.then(() => 'accepted', (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)));

it('a value that decodes to an empty key (not base64) verifies nothing: a token MACed with the empty key is refused', async () => {
  const forged = signEmpty();
  expect(await outcome(authenticator('base64', '!!!!').authenticate(SecretValue.of(forged), call))).toMatch(/^REKEY_ERR_UNAVAILABLE/);
  // A good current version beside it: the forged token is refused, the good one's tokens pass.
  const good = 's'.repeat(43);
  expect(await outcome(authenticator('base64', good, '!!!!').authenticate(SecretValue.of(forged), call))).toBe('REKEY_ERR_DENIED: authenticator app: signature');
  expect(await outcome(authenticator('base64', good, '!!!!').authenticate(SecretValue.of(await sign(Buffer.from(good, 'base64'))), call))).toBe('accepted');
});

it('a key shorter than 16 bytes verifies nothing', async () => {
  const forged = await sign(Buffer.from('short'));
  expect(await outcome(authenticator('utf8', 'short').authenticate(SecretValue.of(forged), call))).toMatch(/^REKEY_ERR_UNAVAILABLE/);
  expect(await outcome(authenticator('utf8', 'x'.repeat(16)).authenticate(SecretValue.of(await sign(Buffer.from('x'.repeat(16)))), call))).toBe('accepted');
});
