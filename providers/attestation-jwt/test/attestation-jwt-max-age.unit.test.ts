/**
 * The attestation-jwt authenticator's default replay window is five minutes (maxAgeSeconds 300,
 * plus the clock tolerance of 30 s, as jose applies it): attestation tokens live minutes in
 * mobile practice (Approov's about 5), and a token is replayable by whoever copied it until it
 * is that old. Before 2026-12-06 the default was an hour. A remembered token (verified once, see
 * attestation-jwt-remembered.unit.test.ts) stops passing at the same second. jose reports a
 * token past its maximum age as expired (JWTExpired), so that is the reason logged.
 */
import { SignJWT, type JWTPayload } from 'jose';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { AttestationJwtAuthenticator } from '../attestation-jwt.authenticator.js';
import { attestationJwtBinding } from '../attestation-jwt.schema.js';

const KEY = 'k'.repeat(32);
const T0 = 1_800_000_000;
const call = { signal: new AbortController().signal };
const authenticator = (options: object = {}) =>
  new AttestationJwtAuthenticator('app', attestationJwtBinding.parse({ secret: 'app-attestation', audience: 'rekey', ...options }), () =>
    Promise.resolve([{ versionId: 'v1', value: SecretValue.of(KEY) }]),
  );
const sign = (claims: JWTPayload) => new SignJWT({ sub: 'app:a', aud: 'rekey', ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(KEY));
const outcome = (a: AttestationJwtAuthenticator, token: string) =>
  a.authenticate(SecretValue.of(token), call).then(
    () => 'accepted',
    (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)),
  );
const at = (seconds: number) => vi.setSystemTime(seconds * 1000 + 500);

beforeEach(() => vi.useFakeTimers({ toFake: ['Date'] }));
afterEach(() => vi.useRealTimers());

it('defaults maxAgeSeconds to 300', () => {
  expect(attestationJwtBinding.parse({ secret: 's', audience: 'rekey' })).toMatchObject({ maxAgeSeconds: 300, clockToleranceSeconds: 30 });
});

it('refuses by default a token issued more than 300 s ago (beyond the 30 s tolerance), fresh or remembered', async () => {
  const token = await sign({ iat: T0, exp: T0 + 3600 });
  const fresh = () => authenticator();
  at(T0 + 330);
  expect(await outcome(fresh(), token)).toBe('accepted');
  at(T0 + 331);
  expect(await outcome(fresh(), token)).toBe('REKEY_ERR_DENIED: authenticator app: expired');
  // Remembered at second 10, refused at the same second as a fresh verification.
  const remembering = authenticator();
  at(T0 + 10);
  expect(await outcome(remembering, token)).toBe('accepted');
  at(T0 + 330);
  expect(await outcome(remembering, token)).toBe('accepted');
  at(T0 + 331);
  expect(await outcome(remembering, token)).toBe('REKEY_ERR_DENIED: authenticator app: expired');
});

it('refuses a token issued 301 s ago with no clock tolerance, and keeps maxAgeSeconds configurable', async () => {
  const token = await sign({ iat: T0, exp: T0 + 7200 });
  at(T0 + 301);
  expect(await outcome(authenticator({ clockToleranceSeconds: 0 }), token)).toBe('REKEY_ERR_DENIED: authenticator app: expired');
  expect(await outcome(authenticator({ clockToleranceSeconds: 0, maxAgeSeconds: 3600 }), token)).toBe('accepted');
});
