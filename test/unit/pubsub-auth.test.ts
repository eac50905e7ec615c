// Pub/Sub push authentication: every check a forged, stale or misdirected token must fail, the key
// sources (inline JWKS, PEM, a JWKS URL fetched once and cached), and "cannot check now" kept apart
// from "rejected" so Pub/Sub redelivers instead of losing the message.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pubsubConfig, type PubsubConfig } from '../../src/config/events.js';
import { PushAuthenticator } from '../../src/events/push-auth.js';
import { PUSH_SERVICE_ACCOUNT, pushSigner, startJwksServer, type PushSigner } from '../events/pubsub.js';

const AUDIENCE = 'https://rekey.example.com/events/pubsub';
let signer: PushSigner;
let impostor: PushSigner;
let config: PubsubConfig;

const now = () => Math.floor(Date.now() / 1000);
const bearer = async (claims: Partial<Parameters<PushSigner['token']>[0]> = {}, by = signer) => `Bearer ${await by.token({ audience: AUDIENCE, ...claims })}`;

beforeAll(async () => {
  signer = await pushSigner('k1');
  impostor = await pushSigner('k1'); // same key id, different key
  config = pubsubConfig.parse({ audience: AUDIENCE, serviceAccount: PUSH_SERVICE_ACCOUNT, jwks: signer.jwks });
});

describe('PushAuthenticator', () => {
  it('accepts a token Pub/Sub would send', async () => {
    expect(await new PushAuthenticator().authenticate(await bearer(), config)).toEqual({ ok: true, email: PUSH_SERVICE_ACCOUNT });
  });

  it('accepts both spellings of Google issuer by default, and only the configured one when set', async () => {
    const auth = new PushAuthenticator();
    expect((await auth.authenticate(await bearer({ issuer: 'accounts.google.com' }), config)).ok).toBe(true);
    const strict = { ...config, issuer: 'https://accounts.google.com' };
    expect((await auth.authenticate(await bearer({ issuer: 'accounts.google.com' }), strict)).ok).toBe(false);
  });

  const rejected: Array<[string, () => Promise<string | undefined>]> = [
    ['no Authorization header', () => Promise.resolve(undefined)],
    ['another scheme', async () => (await bearer()).replace('Bearer', 'Basic')],
    ['a wrong audience', () => bearer({ audience: 'https://elsewhere.example.com/' })],
    ['an expired token', () => bearer({ iat: now() - 7200, exp: now() - 3600 })],
    ['a token issued too long ago', () => bearer({ iat: now() - 5 * 3600, exp: now() + 3600 })],
    ['a token from the future', () => bearer({ iat: now() + 600, exp: now() + 4200 })],
    ['another issuer', () => bearer({ issuer: 'https://evil.example.com' })],
    ['another service account', () => bearer({ email: 'someone@other.iam.gserviceaccount.com' })],
    ['an unverified email', () => bearer({ emailVerified: false })],
    ['a signature by another key under the same key id', () => bearer({}, impostor)],
    ['a tampered payload', async () => {
      const [h, , s] = (await bearer()).split('.');
      const payload = Buffer.from(JSON.stringify({ aud: AUDIENCE, iss: 'https://accounts.google.com', email: PUSH_SERVICE_ACCOUNT, email_verified: true, iat: now(), exp: now() + 60 })).toString('base64url');
      return `${h}.${payload}.${s}`;
    }],
    ['HS256 signed with the public key as a secret', async () => {
      const token = await new SignJWT({ email: PUSH_SERVICE_ACCOUNT, email_verified: true })
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .setIssuer('https://accounts.google.com')
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(signer.pem));
      return `Bearer ${token}`;
    }],
    ['an unsigned token (alg none)', () => {
      const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return Promise.resolve(`Bearer ${part({ alg: 'none' })}.${part({ aud: AUDIENCE, iss: 'https://accounts.google.com', email: PUSH_SERVICE_ACCOUNT, email_verified: true, iat: now(), exp: now() + 60 })}.`);
    }],
  ];

  it.each(rejected)('rejects %s', async (_label, header) => {
    expect(await new PushAuthenticator().authenticate(await header(), config)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('verifies with an inline PEM public key', async () => {
    const pem = pubsubConfig.parse({ audience: AUDIENCE, pem: signer.pem });
    expect((await new PushAuthenticator().authenticate(await bearer(), pem)).ok).toBe(true);
    expect((await new PushAuthenticator().authenticate(await bearer({}, impostor), pem)).ok).toBe(false);
  });

  it('refuses private keys and several key sources in config', () => {
    expect(pubsubConfig.safeParse({ audience: AUDIENCE, jwks: { keys: [{ kty: 'RSA', n: 'x', e: 'AQAB', d: 'secret' }] } }).success).toBe(false);
    expect(pubsubConfig.safeParse({ audience: AUDIENCE, jwks: signer.jwks, pem: signer.pem }).success).toBe(false);
    expect(pubsubConfig.safeParse({ audience: AUDIENCE, jwksUrl: 'http://keys.example.com/certs' }).success).toBe(false);
    expect(pubsubConfig.safeParse({ audience: AUDIENCE, jwksUrl: 'http://127.0.0.1:8080/certs' }).success).toBe(true);
  });
});

describe('PushAuthenticator with a JWKS URL', () => {
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  beforeAll(async () => (jwks = await startJwksServer(signer.jwks)));
  afterAll(() => jwks.close());

  it('fetches the keys once and caches them across requests and config reloads', async () => {
    const auth = new PushAuthenticator();
    const remote = pubsubConfig.parse({ audience: AUDIENCE, jwksUrl: jwks.url });
    for (let i = 0; i < 5; i++) expect((await auth.authenticate(await bearer(), remote)).ok).toBe(true);
    // A reloaded config with the same key source keeps the same key set.
    expect((await auth.authenticate(await bearer(), pubsubConfig.parse({ audience: AUDIENCE, jwksUrl: jwks.url }))).ok).toBe(true);
    expect(jwks.fetches()).toBe(1);
    // An unknown key id inside the cooldown is rejected without hammering the key server.
    expect(await auth.authenticate(await bearer({}, await pushSigner('unknown')), remote)).toEqual({ ok: false, reason: 'invalid' });
    expect(jwks.fetches()).toBe(1);
  });

  it('an unreachable key server is "unavailable" (503, redelivered), not a rejection', async () => {
    const down = await startJwksServer(signer.jwks);
    const url = down.url;
    await down.close();
    const result = await new PushAuthenticator().authenticate(await bearer(), pubsubConfig.parse({ audience: AUDIENCE, jwksUrl: url }));
    expect(result).toMatchObject({ ok: false, reason: 'unavailable' });
  });
});
