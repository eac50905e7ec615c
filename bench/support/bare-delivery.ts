/**
 * The floor of bench/delivery, in a process of its own: a bare fastify app (no rekey, no
 * workers, no timers, no other heap to collect) that does the same work as rekey's delivery
 * routes with jose alone, so what it measures is fastify + jose on this machine and nothing
 * else. Driven over IPC: it takes one BareSetup (the attestation secret, the signing key's
 * private JWK and the value, from the bench's store: bench values, never written anywhere),
 * listens on 127.0.0.1 and answers `{ url }`; then `cpu` is answered with this process's CPU
 * time and scavenges so far (support/gc.ts), and `profile-start` / `{ profileStop: file }` take a V8 CPU
 * profile of it.
 *   POST /token   parses the same form body, verifies the same incoming HS256 token and signs
 *                 the same ES256 JWT (rekey's POST /v1/token);
 *   GET /secret   verifies the same bearer token and answers the same value held in memory
 *                 (rekey's GET /v1/secrets/{name} from its cache).
 */
import Fastify from 'fastify';
import { importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { usage } from './gc.js';
import { startProfile } from './profile.js';

export interface BareSetup {
  attestationSecret: string;
  signingJwk: JWK;
  value: string;
  tokenType: string;
}

export type BareMessage = 'cpu' | 'profile-start' | { profileStop: string };

process.once('disconnect', () => process.exit(0));
const setup = await new Promise<BareSetup>((resolve) => process.once('message', (m) => resolve(m as BareSetup)));
const shared = new TextEncoder().encode(setup.attestationSecret);
const jwk = setup.signingJwk;
const signingKey = await importJWK(jwk, 'ES256');
const app = Fastify();
app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))));
app.post('/token', async (request, reply) => {
  const token = (request.body as { subject_token: string }).subject_token;
  const { payload } = await jwtVerify(token, shared, { algorithms: ['HS256'], audience: 'rekey', requiredClaims: ['exp'] });
  const access = await new SignJWT({ did: payload.did })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid!, typ: 'JWT' })
    .setIssuer('rekey')
    .setSubject(payload.sub!)
    .setAudience('api.example.com')
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti(crypto.randomUUID())
    .sign(signingKey);
  return reply.header('cache-control', 'no-store').send({ access_token: access, issued_token_type: setup.tokenType, token_type: 'Bearer', expires_in: 300 });
});
app.get('/secret', async (request, reply) => {
  const bearer = (request.headers.authorization ?? '').slice('Bearer '.length);
  await jwtVerify(bearer, shared, { algorithms: ['HS256'], audience: 'rekey', requiredClaims: ['exp'] });
  return reply.header('cache-control', 'no-store').send({ secret: 'payments-api-key', version: 1, value: setup.value, expiresAt: new Date(Date.now() + 300_000).toISOString() });
});
const url = await app.listen({ host: '127.0.0.1', port: 0 });

let stopProfile: ((file: string) => Promise<void>) | undefined;
process.on('message', (message: BareMessage) => {
  if (message === 'cpu') {
    process.send!({ usage: usage() });
  } else if (message === 'profile-start') {
    void startProfile().then((stop) => {
      stopProfile = stop;
      process.send!({ profiling: true });
    });
  } else {
    void stopProfile?.(message.profileStop).then(() => process.send!({ profiled: true }));
  }
});
process.send!({ url });
