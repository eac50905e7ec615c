/**
 * A token whose signature matches none of the live values the attestation-jwt authenticator was
 * given asks for them again (ProviderContext.liveValues' recheck, throttled by the delivery
 * cache) and is tried against the answer: a version promoted a moment ago verifies at once.
 * Tokens refused for any other reason (expired, wrong audience, not a JWT) ask for nothing, and
 * a recheck that cannot be read leaves the refusal as it was.
 */
import { SignJWT, type JWTPayload } from 'jose';
import { expect, it } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type { LiveValue } from '../../../src/core/provider.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { AttestationJwtAuthenticator } from '../attestation-jwt.authenticator.js';
import { attestationJwtBinding } from '../attestation-jwt.schema.js';

const OLD = 'o'.repeat(32);
const NEW = 'n'.repeat(32);
const call = { signal: new AbortController().signal };
const binding = attestationJwtBinding.parse({ secret: 'app-attestation', audience: 'rekey' });
const live = (...pairs: Array<[string, string]>): LiveValue[] => pairs.map(([versionId, value]) => ({ versionId, value: SecretValue.of(value) }));
const now = () => Math.floor(Date.now() / 1000);
const sign = (key: string, claims: JWTPayload = {}) =>
  new SignJWT({ sub: 'app:a', aud: 'rekey', iat: now(), exp: now() + 60, ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(key));

/** An authenticator whose live values are `held` until a recheck, which answers `rechecked` (or fails); the calls it made. */
function setup(held: LiveValue[], rechecked: LiveValue[] | Error) {
  const calls: boolean[] = [];
  const authenticator = new AttestationJwtAuthenticator('app', binding, (_secret, _call, recheck = false) => {
    calls.push(recheck);
    if (!recheck) return Promise.resolve(held);
    return rechecked instanceof Error ? Promise.reject(rechecked) : Promise.resolve(rechecked);
  });
  const outcome = (token: string) =>
    authenticator.authenticate(SecretValue.of(token), call).then(
      (subject) => `accepted ${subject.versions!.join()}`,
      (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)),
    );
  return { calls, outcome };
}

it('accepts a token under a version only the recheck holds, naming it; the next one under it asks nothing again once held', async () => {
  const { calls, outcome } = setup(live(['v1', OLD]), live(['v2', NEW], ['v1', OLD]));
  expect(await outcome(await sign(NEW))).toBe('accepted v2');
  expect(calls).toEqual([false, true]);
  expect(await outcome(await sign(OLD))).toBe('accepted v1');
  expect(calls).toEqual([false, true, false]);
});

it('refuses a token under no live version after one recheck, and when the recheck answers the same values', async () => {
  const stranger = await sign('s'.repeat(32));
  const changed = setup(live(['v1', OLD]), live(['v2', NEW], ['v1', OLD]));
  expect(await changed.outcome(stranger)).toBe('REKEY_ERR_DENIED: authenticator app: signature');
  expect(changed.calls).toEqual([false, true]);
  const same = live(['v1', OLD]);
  const unchanged = setup(same, same);
  expect(await unchanged.outcome(stranger)).toBe('REKEY_ERR_DENIED: authenticator app: signature');
  expect(unchanged.calls).toEqual([false, true]);
});

it('asks for no recheck when the token is refused for anything but its signature', async () => {
  const { calls, outcome } = setup(live(['v1', OLD]), live(['v2', NEW]));
  expect(await outcome(await sign(OLD, { exp: now() - 3600 }))).toBe('REKEY_ERR_DENIED: authenticator app: expired');
  expect(await outcome(await sign(OLD, { aud: 'someone-else' }))).toBe('REKEY_ERR_DENIED: authenticator app: claim aud');
  expect(await outcome('not.a.jwt')).toMatch(/^REKEY_ERR_DENIED: authenticator app: /);
  expect(calls).toEqual([false, false, false]);
});

it('keeps the refusal when the recheck cannot be read', async () => {
  const { calls, outcome } = setup(live(['v1', OLD]), new Error('store down'));
  expect(await outcome(await sign(NEW))).toBe('REKEY_ERR_DENIED: authenticator app: signature');
  expect(calls).toEqual([false, true]);
});
