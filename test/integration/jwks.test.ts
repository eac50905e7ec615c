/**
 * JWKS with the jwt-signing-key issuer (issue 6): during the overlap a JWT signed with the
 * current or the previous key verifies against the published JWKS; once the previous
 * version is retired, its tokens fail. The same document is served at
 * /.well-known/jwks.json and pushed to a target configured with `publish: jwks`, which never
 * receives a private key. Checked with jose.
 */
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Harness } from '../support/harness.js';
import { signSession, startJwksHarness } from '../support/jwks.js';
import type { Journal } from '../support/memory-provider.js';

let h: Harness;
let pushed: Journal;
beforeAll(async () => {
  ({ h, pushed } = await startJwksHarness('jwks', { grace: '1500ms' }));
});
afterAll(() => h.stop());

const sign = (stage: 'current' | 'previous') => signSession(h, stage);

async function jwks() {
  const response = await fetch(`${h.serving!.url}/.well-known/jwks.json`);
  expect(response.headers.get('cache-control')).toBe('public, max-age=60');
  return createLocalJWKSet((await response.json()) as Parameters<typeof createLocalJWKSet>[0]);
}

it('publishes current and previous keys during the overlap, and drops the retired one', async () => {
  await h.rotate('session-signing');
  const first = await sign('current');
  await h.rotate('session-signing');
  const second = await sign('current');
  expect(await sign('previous')).not.toBe(second);

  const overlap = await jwks();
  await expect(jwtVerify(first, overlap)).resolves.toMatchObject({ payload: { sub: 'user-1' } });
  await expect(jwtVerify(second, overlap)).resolves.toMatchObject({ payload: { sub: 'user-1' } });

  await expect.poll(() => h.runtime.db.version.count({ where: { state: 'revoked' } }), { timeout: 10_000 }).toBe(1);
  const after = await jwks();
  await expect(jwtVerify(first, after)).rejects.toThrow(/no applicable key found/i);
  await expect(jwtVerify(second, after)).resolves.toBeTruthy();
  const doc = (await (await fetch(`${h.serving!.url}/.well-known/jwks/session-signing.json`)).json()) as { keys: Array<Record<string, unknown>> };
  expect(doc.keys).toHaveLength(1);
  expect(doc.keys[0]).not.toHaveProperty('d'); // never a private member
});

it('pushes the same JWKS to a publish: jwks target, and never the private key', async () => {
  const last = () => JSON.parse(pushed.deployedValues.at(-1)!) as { keys: Array<{ kid: string; d?: string }> };
  const served = (await (await fetch(`${h.serving!.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
  expect(last().keys.map((k) => k.kid)).toEqual(served.keys.map((k) => k.kid));
  expect(pushed.deployedValues.length).toBeGreaterThanOrEqual(3); // two rotations and a retirement
  for (const value of pushed.deployedValues) {
    expect(value).not.toMatch(/"d":/);
    expect(JSON.parse(value)).toHaveProperty('keys');
  }
  // The document pushed during the overlap held both keys; the one after retirement, one.
  expect(pushed.deployedValues.map((v) => (JSON.parse(v) as { keys: unknown[] }).keys.length)).toEqual(expect.arrayContaining([2, 1]));
  const token = await sign('current');
  await expect(jwtVerify(token, createLocalJWKSet(last() as Parameters<typeof createLocalJWKSet>[0]))).resolves.toBeTruthy();
});

it('answers a verifier that revalidates with 304 while the keys are the same, and the new document once they change', async () => {
  const url = `${h.serving!.url}/.well-known/jwks.json`;
  const first = await fetch(url);
  const etag = first.headers.get('etag');
  expect(etag).toMatch(/^"[\w-]{27}"$/);
  expect(JSON.parse(await first.text())).toHaveProperty('keys');
  const again = await fetch(url, { headers: { 'if-none-match': etag! } });
  expect([again.status, await again.text(), again.headers.get('etag')]).toEqual([304, '', etag]);
  // One secret's document is tagged the same way (here the same keys: the same tag).
  expect((await fetch(`${h.serving!.url}/.well-known/jwks/session-signing.json`, { headers: { 'if-none-match': etag! } })).status).toBe(304);
  // A rotation adds a key: the tag changes, and the old one gets the new document.
  await h.rotate('session-signing');
  const changed = await fetch(url, { headers: { 'if-none-match': etag! } });
  expect(changed.status).toBe(200);
  expect(changed.headers.get('etag')).not.toBe(etag);
  expect(((await changed.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
});
