/**
 * The demo's second act (`npm run demo`): an app with no key in it. It proves what it is
 * with an attestation token (the demo plays the attestation service, signing with a secret
 * rekey rotates), gets a short-lived JWT through the client library (`rekey/client`) and calls
 * an orders API through a real HAProxy that verifies the JWT itself (`jwt_verify`). Without a
 * token, or with a tampered one, HAProxy refuses the call before the API sees it. Skipped, with
 * a note, when there is no `haproxy` on PATH.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import { SignJWT } from 'jose';
import { createClient } from '../client/index.js';
import type { Runtime } from '../runtime.js';
import { freePort, haproxyJwtConfig, pemOfJwk, startHaproxy } from './demo-gateway.js';

export const TOKEN_SECRETS = ['demo-attestation', 'demo-api-signing'];
const AUDIENCE = 'orders-api';

/** The part of demo.yaml this act needs. */
export const tokenDemoConfig = {
  secrets: `  demo-attestation:
    description: shared with the app attestation service; rekey rotates it
    store: { provider: vault }
    issuer: { type: hmac-key }
    grace: 1h
  demo-api-signing:
    description: signs the short-lived tokens apps get instead of a key
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    grace: 5m
`,
  delivery: `delivery:
  authenticators:
    attested-app: { type: attestation-jwt, secret: demo-attestation, audience: rekey }
  grants:
    orders:
      authenticator: attested-app
      subjects: ["app:com.example.*"]
      token: { signingKey: demo-api-signing, audience: ${AUDIENCE}, ttl: 2m }
`,
};

export async function runTokenDemo(
  runtime: Runtime,
  o: { serverUrl: string; dir: string; line: (text: string) => void; expect: (ok: boolean, what: string) => void },
): Promise<void> {
  const orders = Fastify();
  orders.get('/orders', () => ({ orders: [] }));
  const apiUrl = new URL(await orders.listen({ host: '127.0.0.1', port: 0 }));
  let haproxy: ChildProcess | undefined;
  try {
    // Every live key, as the haproxy target's keyFiles publish them: for a minute after a rotation
    // (the JWKS max-age) the previous key still signs, so the current one alone would refuse its tokens.
    const { keys } = (await (await fetch(`${o.serverUrl}/.well-known/jwks/demo-api-signing.json`)).json()) as { keys: object[] };
    const keyFiles = keys.map((_, i) => join(o.dir, `demo-signing-${i}.pem`));
    await Promise.all(keys.map((key, i) => writeFile(keyFiles[i]!, pemOfJwk(key))));
    const port = await freePort();
    const config = join(o.dir, 'demo-haproxy.cfg');
    await writeFile(config, haproxyJwtConfig({ port, keyFiles, audience: AUDIENCE, backend: apiUrl.host }));
    haproxy = await startHaproxy(config, port);
    if (!haproxy) {
      o.line('skipped the keyless app: no haproxy on PATH (HAProxy 2.6 or later verifies the tokens)');
      return;
    }
    o.line(`orders API behind HAProxy (jwt_verify, ES256, aud ${AUDIENCE}): http://127.0.0.1:${port}/orders`);

    // The app carries no key: it asks rekey for a token with its attestation, through the client library.
    const { store } = await runtime.resolver.resolve('demo-attestation');
    const attestationService = async () => attest((await store.read({ stage: 'current' }, { signal: AbortSignal.timeout(5000) })).reveal());
    const app = createClient({ url: o.serverUrl, credential: attestationService });
    const { token, expiresAt } = await app.token(AUDIENCE);
    o.line(`app (no key inside) got a token through rekey/client: ${token.slice(0, 16)}…, valid ${Math.round((expiresAt - Date.now()) / 1000)} s`);
    const call = async (bearer?: string) => (await fetch(`http://127.0.0.1:${port}/orders`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} })).status;
    o.expect((await call(token)) === 200, 'HAProxy accepts the app\'s token and passes the call to the API');
    o.expect((await app.token(AUDIENCE)).token === token, 'the client serves the token from its cache until it nears expiry');
    o.expect((await call()) === 401, 'a call without a token is refused at HAProxy');
    o.expect((await call(`${token.slice(0, -4)}AAAA`)) === 401, 'a tampered token is refused at HAProxy');
    app.close();
  } finally {
    haproxy?.kill('SIGTERM');
    await orders.close();
  }
}

/** An attestation token as an attestation service issues it: an HS256 JWT for the app, a minute long. */
function attest(sharedSecret: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject('app:com.example.shop').setAudience('rekey').setIssuedAt().setExpirationTime('1m').sign(new TextEncoder().encode(sharedSecret));
}
