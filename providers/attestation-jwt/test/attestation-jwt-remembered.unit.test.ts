/**
 * A token the attestation-jwt authenticator verified once is remembered (so a client polling
 * with the same token is not verified again each time), but it passes again only when a fresh
 * verification would: within its time claims (exp, nbf, iat's maximum age, with the clock
 * tolerance, at every second around each bound), and only while the version whose key verified
 * it is still a live value with that same key.
 */
import { SignJWT, type JWTPayload } from 'jose';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type { LiveValue } from '../../../src/core/provider.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { AttestationJwtAuthenticator } from '../attestation-jwt.authenticator.js';
import { attestationJwtBinding } from '../attestation-jwt.schema.js';

const KEY = 'k'.repeat(32);
const OTHER = 'o'.repeat(32);
const T0 = 1_800_000_000;
const call = { signal: new AbortController().signal };
const binding = attestationJwtBinding.parse({ secret: 'app-attestation', audience: 'rekey', maxAgeSeconds: 600, clockToleranceSeconds: 30 });
const authenticator = (values: () => LiveValue[]) => new AttestationJwtAuthenticator('app', binding, () => Promise.resolve(values()));
const live = (...pairs: Array<[string, string]>) => pairs.map(([versionId, value]) => ({ versionId, value: SecretValue.of(value) }));
const sign = (claims: JWTPayload, key = KEY) => new SignJWT({ sub: 'app:a', aud: 'rekey', ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(key));
const outcome = (a: AttestationJwtAuthenticator, token: string) =>
  a.authenticate(SecretValue.of(token), call).then(
    (subject) => `accepted ${subject.versions!.join()}`,
    (error: unknown) => (error instanceof ProviderError ? `${error.code}: ${error.message}` : String(error)),
  );
const at = (seconds: number) => vi.setSystemTime(seconds * 1000 + 500);

beforeEach(() => vi.useFakeTimers({ toFake: ['Date'] }));
afterEach(() => vi.useRealTimers());

it('a remembered token is accepted and refused at the same seconds as a fresh verification: exp, nbf and iat bounds with the tolerance', async () => {
  const cases: Array<{ claims: JWTPayload; from: number; to: number }> = [
    // exp: refused once exp <= now - 30
    { claims: { iat: T0, exp: T0 + 120 }, from: T0 + 140, to: T0 + 160 },
    // iat's maximum age: refused once now - iat - 30 > 600
    { claims: { iat: T0, exp: T0 + 3600 }, from: T0 + 620, to: T0 + 640 },
    // iat in the future beyond the tolerance (the clock moved back): refused while now - iat < -30
    { claims: { iat: T0, exp: T0 + 3600 }, from: T0 - 40, to: T0 - 20 },
    // nbf: refused while nbf > now + 30 (the clock moved back)
    { claims: { iat: T0 - 100, nbf: T0, exp: T0 + 3600 }, from: T0 - 40, to: T0 - 20 },
  ];
  for (const { claims, from, to } of cases) {
    const token = await sign(claims);
    const values = live(['v1', KEY]);
    const warm = authenticator(() => values);
    at(T0);
    expect(await outcome(warm, token)).toBe('accepted v1');
    const answers = new Set<string>();
    for (let now = from; now <= to; now++) {
      at(now);
      const fresh = await outcome(authenticator(() => values), token);
      answers.add(fresh);
      // Each second: the remembered answer is the fresh one, refusals included; then back at T0 it is accepted again.
      expect({ now, answer: await outcome(warm, token) }).toEqual({ now, answer: fresh });
      at(T0);
      expect(await outcome(warm, token)).toBe('accepted v1');
    }
    // Each range crosses its bound.
    expect([...answers].sort()).toEqual([expect.stringMatching(/^REKEY_ERR_DENIED: authenticator app: (expired|claim (iat|nbf))$/), 'accepted v1']);
  }
});

it('a remembered token is refused once the version that verified it is no longer live, or no longer has that key', async () => {
  at(T0);
  const token = await sign({ iat: T0, exp: T0 + 3600 });
  let values = live(['v2', OTHER], ['v1', KEY]);
  const a = authenticator(() => values);
  expect(await outcome(a, token)).toBe('accepted v1');
  // v1 retired or compromised: only v2 is live.
  values = live(['v2', OTHER]);
  expect(await outcome(a, token)).toBe('REKEY_ERR_DENIED: authenticator app: signature');
  values = live(['v2', OTHER], ['v1', KEY]);
  expect(await outcome(a, token)).toBe('accepted v1');
  // The same version id with another value (never the case in rekey, but no token rides on an id alone).
  values = live(['v1', OTHER]);
  expect(await outcome(a, token)).toBe('REKEY_ERR_DENIED: authenticator app: signature');
  // Re-read values (new objects, same keys) keep it accepted.
  values = live(['v3', OTHER], ['v1', KEY]);
  expect(await outcome(a, token)).toBe('accepted v1');
});

it('forgets the remembered tokens of a version once it is seen no longer live, not only when they are presented again', async () => {
  at(T0);
  let values = live(['v2', OTHER], ['v1', KEY]);
  const a = authenticator(() => values);
  const remembered = () => a['verified'].size;
  const onV1 = await Promise.all(['app:a', 'app:b', 'app:c'].map((sub) => sign({ sub, iat: T0, exp: T0 + 3600 })));
  const onV2 = await sign({ sub: 'app:d', iat: T0, exp: T0 + 3600 }, OTHER);
  for (const token of [...onV1, onV2]) expect(await outcome(a, token)).toMatch(/^accepted/);
  expect(remembered()).toBe(4);
  // v1 goes out of service: the next request, whatever its token, drops v1's three (each held its KeyObject).
  values = live(['v2', OTHER]);
  expect(await outcome(a, onV2)).toBe('accepted v2');
  expect(remembered()).toBe(1);
  // Nor does a value of v1 under another key keep them.
  values = live(['v2', OTHER], ['v1', KEY]);
  expect(await outcome(a, onV1[0]!)).toBe('accepted v1');
  values = live(['v2', OTHER], ['v1', OTHER]);
  expect(await outcome(a, onV2)).toBe('accepted v2');
  expect(remembered()).toBe(1);
});
