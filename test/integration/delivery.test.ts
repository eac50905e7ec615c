/**
 * Just-in-time delivery, first slice (issue 17): POST /v1/token on a real server exchanges an
 * app attestation token (HS256 under a secret rekey rotates, as an attestation service would
 * sign it) for a short JWT signed with the current version of a jwt-signing-key secret.
 * Checked with jose against the JWKS the server publishes: valid, expired, wrong audience,
 * tampered, `alg: none`, wrong key and ungranted subjects; the previous attestation secret
 * during its grace; every hand-out audited without the token; and after a leak of the signing
 * key's current version, new tokens come from the new version and the old key has left the JWKS.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { currentVersion, exchange as exchangeToken, REFUSED, servedJwks, verifyServed } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  app-attestation:
    store: { provider: vault }
    issuer: { type: hmac-key }
    grace: 1h
  api-signing:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    grace: 10m
delivery:
  issuer: https://rekey.test
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    # Before mobile, which matches its subject too: the first in the file serves it.
    kiosk-restricted:
      authenticator: app
      subjects: ["app:com.example.kiosk"]
      token: { signingKey: api-signing, audience: api.example.com, ttl: 1m, claims: { fixed: { tier: bronze } } }
    mobile:
      authenticator: app
      subjects: ["app:com.example.*"]
      token: { signingKey: api-signing, audience: api.example.com, ttl: 5m, claims: { copy: [did], fixed: { tier: gold } } }
`);
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(() => h.stop());

const call = () => ({ signal: AbortSignal.timeout(10_000) });

/** An attestation token as the attestation service signs it, with the given stage of the shared secret. */
async function attestation(o: { sub?: string; aud?: string; exp?: number; stage?: 'current' | 'previous'; key?: string } = {}): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('app-attestation');
  const secret = o.key ?? (await store.read({ stage: o.stage ?? 'current' }, call())).reveal();
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ did: 'device-42' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.sub ?? 'app:com.example.ios')
    .setAudience(o.aud ?? 'rekey')
    .setIssuedAt(now - 5)
    .setExpirationTime(o.exp ?? now + 60)
    .sign(new TextEncoder().encode(secret));
}

const exchange = (subjectToken: string, audience = 'api.example.com') => exchangeToken(h, subjectToken, { audience });
const jwks = () => servedJwks(h);
const currentSigning = () => currentVersion(h, 'api-signing');

it('exchanges a valid attestation token for a JWT that verifies against the published JWKS, and audits it without the token', async () => {
  const presented = await attestation();
  const answer = await exchange(presented);
  expect(answer.status).toBe(200);
  expect(answer.cacheControl).toBe('no-store');
  expect(answer.body).toMatchObject({ issued_token_type: JWT_TOKEN_TYPE, token_type: 'Bearer', expires_in: 300 });
  const token = answer.body.access_token as string;
  const { payload, protectedHeader } = await verifyServed(h, token, { issuer: 'https://rekey.test', audience: 'api.example.com' });
  expect(protectedHeader.kid).toBe((await currentSigning()).id);
  expect(payload).toMatchObject({ sub: 'app:com.example.ios', did: 'device-42', tier: 'gold' });
  expect(payload.exp! - payload.iat!).toBe(300);

  const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'delivery.token' } });
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ actor: 'subject:app:com.example.ios', secret: 'api-signing', versionId: protectedHeader.kid, data: { grant: 'mobile', authenticator: 'app', subject: 'app:com.example.ios', version: 1, jti: payload.jti } });
  const everything = JSON.stringify(await h.runtime.db.auditEvent.findMany(), (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)) + h.logs.join('\n');
  expect(everything).not.toContain(token);
  expect(everything).not.toContain(presented);
});

it('refuses expired, wrong-audience, tampered, alg none and wrongly keyed attestation tokens with one answer, and ungranted subjects', async () => {
  const now = Math.floor(Date.now() / 1000);
  const valid = await attestation();
  const [header, body] = valid.split('.');
  const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>;
  const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'app:com.example.admin' })).toString('base64url')}.${valid.split('.')[2]}`;
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${body}.`;
  const refused = {
    expired: await attestation({ exp: now - 120 }),
    audience: await attestation({ aud: 'someone-else' }),
    tampered,
    none,
    key: await attestation({ key: 'not-the-shared-secret-at-all-0123456789' }),
    garbage: 'not.a.jwt',
  };
  for (const [why, token] of Object.entries(refused)) {
    expect({ why, ...(await exchange(token)) }).toEqual({ why, ...REFUSED, cacheControl: 'no-store' });
  }
  expect(decodeProtectedHeader(none).alg).toBe('none');
  // Authenticated, but no grant covers this subject, or this audience.
  expect((await exchange(await attestation({ sub: 'app:org.other.app' }))).body).toMatchObject({ error: 'invalid_target' });
  expect((await exchange(valid, 'api.other.com')).body).toMatchObject({ error: 'invalid_target' });
  expect(await h.runtime.db.auditEvent.count({ where: { action: 'delivery.token' } })).toBe(1);
  // Reasons are logged as fixed words, never a token.
  expect(h.logs.filter((l) => l.includes('credential refused')).join('\n')).toMatch(/authenticator app: expired[\s\S]*claim aud[\s\S]*signature[\s\S]*algorithm/);
});

it('refuses a credential longer than 16 KiB before any authenticator reads it, a body over the limit unread, and a malformed body with the fixed RFC 6749 answers', async () => {
  const valid = await attestation();
  const [header, body] = valid.split('.');
  // Claims padded past 16 KiB: the one refusal, logged as too long, and no authenticator reached.
  const padded = `${header}.${Buffer.from(JSON.stringify({ ...(JSON.parse(Buffer.from(body!, 'base64url').toString()) as object), pad: 'x'.repeat(16 * 1024) })).toString('base64url')}.${valid.split('.')[2]}`;
  const before = h.logs.length;
  expect(await exchange(padded)).toEqual({ ...REFUSED, cacheControl: 'no-store' });
  const logged = h.logs.slice(before).filter((l) => l.includes('credential refused'));
  expect(logged).toEqual([expect.stringContaining('credential too long')]);
  // A body far past what a token request needs is refused unread (RFC 6749-shaped, as every answer of the route).
  const post = async (contentType: string, text: string) => {
    const response = await fetch(`${h.serving!.url}/v1/token`, { method: 'POST', headers: { 'content-type': contentType }, body: text });
    return { status: response.status, body: await response.text() };
  };
  const big = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: 'a'.repeat(200_000), subject_token_type: JWT_TOKEN_TYPE }).toString();
  expect(await post('application/x-www-form-urlencoded', big)).toEqual({ status: 413, body: JSON.stringify({ error: 'invalid_request', error_description: 'the request body is too large' }) });
  // A credential sent as the JSON body itself: the RFC 6749 shape too, not fastify's own error object.
  expect(await post('application/json', 'rk_live_Zx81bQ2mP0aLk3rT9vYcW4eN7sJd6hGfUq5o')).toEqual({ status: 400, body: JSON.stringify({ error: 'invalid_request', error_description: 'the request body cannot be read' }) });
});

it('accepts attestation tokens signed with the previous shared secret during its grace', async () => {
  const before = await attestation();
  expect((await h.rotate('app-attestation', 60_000)).status).toBe('succeeded');
  expect((await exchange(before)).status).toBe(200);
  // At once, right after the run's commit, whether or not the server has the promotion's change
  // event yet: the authenticator rechecks the live values (delivery-recheck.test.ts).
  expect((await exchange(await attestation({ stage: 'current' }))).status).toBe(200);
});

it('after a leak of the signing key current version, signs with the new version and the old key leaves the JWKS', async () => {
  const leaked = await currentSigning();
  const old = (await exchange(await attestation())).body.access_token as string;
  expect(decodeProtectedHeader(old).kid).toBe(leaked.id);

  await h.runtime.engine.revoke('api-signing', leaked.number);
  await expect.poll(async () => (await currentSigning().catch(() => undefined))?.id ?? leaked.id, { timeout: 60_000, interval: 100 }).not.toBe(leaked.id);
  await expect.poll(async () => (await jwks()).keys.map((k) => k.kid), { timeout: 30_000, interval: 100 }).not.toContain(leaked.id);

  const fresh = (await exchange(await attestation())).body.access_token as string;
  const replacement = await currentSigning();
  expect(decodeProtectedHeader(fresh).kid).toBe(replacement.id);
  const published = createLocalJWKSet(await jwks());
  await expect(jwtVerify(fresh, published, { audience: 'api.example.com' })).resolves.toBeTruthy();
  await expect(jwtVerify(old, published, { audience: 'api.example.com' })).rejects.toThrow(/no applicable key found/i);
  const audited = await h.runtime.db.auditEvent.findMany({ where: { action: 'delivery.token', versionId: replacement.id } });
  expect(audited.length).toBeGreaterThanOrEqual(1);
}, 120_000);

it('refuses attestation tokens signed with a leaked version of the shared secret, and accepts its replacement', async () => {
  const leaked = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'app-attestation' }, state: 'current' } });
  const signedWithLeaked = await attestation();
  expect((await exchange(signedWithLeaked)).status).toBe(200);
  await h.runtime.engine.revoke('app-attestation', leaked.number);
  await expect.poll(async () => (await exchange(signedWithLeaked)).status, { timeout: 30_000, interval: 100 }).toBe(400);
  await expect.poll(async () => (await h.runtime.db.version.findFirst({ where: { secret: { name: 'app-attestation' }, state: 'current' } }))?.id ?? leaked.id, { timeout: 60_000, interval: 100 }).not.toBe(leaked.id);
  expect((await exchange(await attestation())).status).toBe(200);
}, 120_000);

it('counts failed authentications against the source, never against a caller that authenticates', async () => {
  // Past the per-source failure limit (30 a minute) from this very address: a valid credential still gets its token.
  for (let i = 0; i < 35; i++) expect((await exchange('not.a.jwt')).status).toBe(400);
  const answer = await exchange(await attestation());
  expect(answer.status).toBe(200);
  expect(answer.body.access_token).toEqual(expect.any(String));
});

it('leaves out a live version of the shared secret it cannot read, logs it, and verifies with the readable one', async () => {
  // The current version becomes unreadable (sealed under another REKEY_LOCAL_STORE_KEY, as in a
  // database another checkout wrote), then the rotation makes it the previous one.
  const before = await attestation();
  const unreadable = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'app-attestation' }, state: 'current' } });
  await h.runtime.db.$executeRaw`UPDATE local_store_versions SET key_id = 'elsewhere' WHERE version_id = ${unreadable.id}::uuid`;
  expect((await h.rotate('app-attestation', 60_000)).status).toBe('succeeded');
  expect((await exchange(await attestation())).status).toBe(200);
  expect((await exchange(before)).status).toBe(400);
  const logged = h.logs.filter((l) => l.includes('live version unreadable'));
  expect(logged.length).toBeGreaterThan(0);
  expect(JSON.parse(logged[0]!)).toMatchObject({ secret: 'app-attestation', version: unreadable.number });
}, 120_000);

it('keeps nothing of an audience no grant serves: unauthenticated requests cannot grow its memory', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heap = () => {
    gc();
    return process.memoryUsage().heapUsed;
  };
  const before = heap();
  // 1,000 requests, each naming a new audience of 45 KB (near the route's body limit): before, each was kept as a key (45 MB).
  const padding = 'a'.repeat(45_000);
  for (let i = 0; i < 1000; i++) expect((await exchange('not.a.jwt', `${padding}${i}`)).body).toEqual(REFUSED.body);
  const grownMb = (heap() - before) / 1e6;
  console.log(`heap after 1,000 unknown 45 KB audiences: ${grownMb.toFixed(1)} MB more`);
  expect(grownMb).toBeLessThan(20);
}, 120_000);

it('serves a subject by the first grant in the file that matches it, whatever the grants are named', async () => {
  // kiosk-restricted is listed first; PostgreSQL's jsonb would put the shorter name, mobile, first.
  const answer = await exchange(await attestation({ sub: 'app:com.example.kiosk' }));
  expect(answer.status).toBe(200);
  const { payload } = await verifyServed(h, answer.body.access_token as string, { issuer: 'https://rekey.test', audience: 'api.example.com' });
  expect(payload).toMatchObject({ sub: 'app:com.example.kiosk', tier: 'bronze' });
  expect(payload.exp! - payload.iat!).toBe(60);
  // Every other subject of com.example still gets mobile's.
  const other = await exchange(await attestation({ sub: 'app:com.example.ios' }));
  expect((await verifyServed(h, other.body.access_token as string, { issuer: 'https://rekey.test', audience: 'api.example.com' })).payload).toMatchObject({ tier: 'gold' });
});

it('refuses a subject PostgreSQL cannot store (a NUL, an unpaired surrogate) as an invalid credential, and the requests batched with it still get their tokens', async () => {
  // Signed by the attestation service: its JSON may carry "\u0000" or a lone "\ud800", which the audit log's insert refuses.
  const unstorable = [await attestation({ sub: 'app:com.example.\u0000' }), await attestation({ sub: 'app:com.example.\ud800' })];
  const valid = await attestation();
  const answers = await Promise.all([...unstorable, valid, valid, valid].map((token) => exchange(token)));
  expect(answers.slice(0, 2)).toEqual([{ ...REFUSED, cacheControl: 'no-store' }, { ...REFUSED, cacheControl: 'no-store' }]);
  expect(answers.slice(2).map((a) => a.status)).toEqual([200, 200, 200]);
  expect(h.logs.filter((l) => l.includes('credential refused')).join('\n')).toContain('authenticator app: subject');
});
