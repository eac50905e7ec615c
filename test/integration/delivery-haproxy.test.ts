/**
 * Tokens minted by POST /v1/token, verified by a real HAProxy 2.6 (`jwt_verify`, alg pinned,
 * aud and exp checked) against the public keys rekey publishes to it: the haproxy target's
 * `keyFiles` binding (`publish: jwks`) writes the signing key's live public keys as PEM files
 * and reloads HAProxy through its master CLI. The minted token passes; expired,
 * other-audience, `alg: none` and HS256-signed-with-the-public-key tokens are refused; under
 * continuous traffic, two normal rotations refuse no valid token; after a leak report of the
 * current signing version (`onLeak: block-first`), its tokens are refused within 1 s (on a loaded
 * machine: twice a leaked previous version's takedown measured just before) while the new key's pass.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { jwtSignerFromValue } from '../../providers/jwt-signing-key/jwks.js';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { startJwtHaproxy, type JwtGateway } from '../support/gateways/haproxy-jwt.js';
import { sleep } from '../support/gateways/process.js';
import { continuousTraffic, send } from '../support/gateways/traffic.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let gateway: JwtGateway;
beforeAll(async () => {
  // Four files: during an emergency rotation after two normal ones, pending, current and two previous versions are live.
  gateway = await startJwtHaproxy('api.example.com', 4);
  h = await startHarness({ label: 'delivery-haproxy', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
  edge: { type: haproxy, masterCli: "${gateway.masterCli}" }
secrets:
  app-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  api-signing:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    grace: 10m
    onLeak: block-first
    targets: [{ provider: edge, publish: jwks, keyFiles: ${JSON.stringify(gateway.keyFiles)} }]
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: { authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 2m } }
`);
  for (const secret of ['app-attestation', 'api-signing']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(async () => {
  await gateway?.stop();
  await h.stop();
});

const call = () => ({ signal: AbortSignal.timeout(10_000) });
/** One request on a connection of its own: a reload closes kept-alive connections of the old worker. */
const status = async (token: string) => (await send(gateway.url, 'authorization', `Bearer ${token}`)).status;
const currentSigning = () => h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'api-signing' }, state: 'current' } });

/** Reports the version that signed `token` leaked; the ms until HAProxy refuses the token. */
async function leakToRefused(token: string): Promise<number> {
  const version = await h.runtime.db.version.findUniqueOrThrow({ where: { id: decodeProtectedHeader(token).kid! } });
  expect(await status(token)).toBe(200);
  const reported = performance.now();
  await h.runtime.engine.reportLeak({ source: 'cli', deliveryId: randomUUID(), fingerprint: version.fingerprint!, receivedAt: new Date() });
  while ((await status(token)) === 200) {
    expect(performance.now() - reported, 'leaked key still accepted').toBeLessThan(30_000);
    await sleep(10);
  }
  return performance.now() - reported;
}

async function minted(): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('app-attestation');
  const shared = new TextEncoder().encode((await store.read({ stage: 'current' }, call())).reveal());
  const attestation = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('app:com.example.ios').setAudience('rekey').setIssuedAt().setExpirationTime('1m').sign(shared);
  const response = await fetch(`${h.serving!.url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: attestation, subject_token_type: JWT_TOKEN_TYPE, audience: 'api.example.com' }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** A token signed with the signing key's current private key, as only rekey could: for claims rekey would never mint. */
async function forged(claims: { aud: string; exp: number }): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('api-signing');
  return jwtSignerFromValue(await store.read({ stage: 'current' }, call())).sign({ sub: 'app:com.example.ios', aud: claims.aud, iat: Math.floor(Date.now() / 1000), exp: claims.exp });
}

it('publishes the public key to HAProxy, which accepts a minted token and refuses expired, other-audience, alg none and HS256-with-the-public-key tokens', async () => {
  const pem = await readFile(gateway.keyFiles[0]!, 'utf8');
  expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
  expect(await readFile(gateway.keyFiles[1]!, 'utf8')).toBe('');
  const token = await minted();
  expect(decodeProtectedHeader(token).alg).toBe('ES256');
  expect(await status(token)).toBe(200);
  const now = Math.floor(Date.now() / 1000);
  expect(await status(await forged({ aud: 'api.example.com', exp: now + 60 }))).toBe(200); // the forger itself is sound
  expect(await status(await forged({ aud: 'api.example.com', exp: now - 10 }))).toBe(401);
  expect(await status(await forged({ aud: 'api.other.com', exp: now + 60 }))).toBe(401);
  const [, body] = token.split('.');
  expect(await status(`${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${body}.`)).toBe(401);
  const hs256 = await new SignJWT(JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(pem));
  expect(await status(hs256)).toBe(401);
  expect(await status(`${token.slice(0, -4)}AAAA`)).toBe(401); // tampered signature
  expect(await status('')).toBe(401);
});

it('refuses no valid token during two normal rotations under continuous traffic (HAProxy reloads without dropping a request)', async () => {
  const traffic = continuousTraffic({ url: gateway.url, header: 'authorization', key: `Bearer ${await minted()}`, workers: 4 });
  const tokens = [];
  for (let rotation = 0; rotation < 2; rotation++) {
    expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
    // Clients switch to the new key's tokens; the old key's tokens in flight stay valid (previous, in its grace).
    const token = await minted();
    tokens.push(token);
    traffic.setKey(`Bearer ${token}`);
    await sleep(300);
  }
  const stats = await traffic.stop();
  expect(stats).toMatchObject({ rejected: 0, errors: 0 });
  expect(stats.accepted).toBeGreaterThan(20);
  for (const token of tokens) expect(await status(token)).toBe(200);
}, 120_000);

it("refuses the leaked signing version's tokens at HAProxy within 1 s of the leak report, while the new key's tokens pass", async () => {
  // The bound's reference, measured now: a leaked previous version's takedown, the same path
  // (transition, revocation queue, retire at HAProxy, reload) without the replacement rotation.
  const previous = await minted();
  expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
  // Tokens are signed with the new version once the token endpoint has heard of the rotation.
  const promoted = (await currentSigning()).id;
  await expect.poll(async () => decodeProtectedHeader(await minted()).kid, { timeout: 30_000, interval: 50 }).toBe(promoted);
  const referenceMs = await leakToRefused(previous);
  const leaked = await currentSigning();
  const old = await minted();
  expect(decodeProtectedHeader(old).kid).toBe(leaked.id);
  const blockedMs = await leakToRefused(old);
  // 1 s is the goal on a machine with a core to spare. On a loaded one every step of the path waits
  // for a core; the current version's takedown also starts its replacement beside it (a rotation
  // that reloads HAProxy too), so it may take up to twice the reference.
  const bound = Math.max(1000, 2 * referenceMs);
  console.log(JSON.stringify({ leakToRefusedAtHaproxyMs: Math.round(blockedMs), referenceMs: Math.round(referenceMs), boundMs: Math.round(bound) }));
  expect(blockedMs).toBeLessThan(bound);
  await expect.poll(async () => (await currentSigning().catch(() => undefined))?.id ?? leaked.id, { timeout: 60_000, interval: 50 }).not.toBe(leaked.id);
  const fresh = await minted();
  expect(decodeProtectedHeader(fresh).kid).not.toBe(leaked.id);
  expect(await status(fresh)).toBe(200);
  expect(await status(old)).toBe(401);
}, 120_000);
