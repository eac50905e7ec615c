/**
 * Test helpers for Pub/Sub push: an RS256 key pair the test owns (published as inline JWKS, PEM, or
 * from a JWKS server on 127.0.0.1), ID tokens shaped like the ones Pub/Sub attaches
 * (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions: iss, aud, email,
 * email_verified, iat, exp, sub), and push envelopes (https://cloud.google.com/pubsub/docs/push).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';

export const PUSH_SERVICE_ACCOUNT = 'pubsub-push@rekey-test.iam.gserviceaccount.com';

export interface TokenClaims {
  audience: string;
  issuer?: string;
  email?: string;
  emailVerified?: boolean;
  /** Seconds since the epoch. @defaultValue now */
  iat?: number;
  /** Seconds since the epoch. @defaultValue iat + 3600 */
  exp?: number;
}

export interface PushSigner {
  kid: string;
  jwks: { keys: JWK[] };
  pem: string;
  /** A token like the one Pub/Sub attaches, signed with this key pair. */
  token(claims: TokenClaims): Promise<string>;
}

export async function pushSigner(kid = `test-${randomUUID().slice(0, 8)}`): Promise<PushSigner> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return {
    kid,
    jwks: { keys: [jwk] },
    pem: await exportSPKI(publicKey),
    async token(claims) {
      const iat = claims.iat ?? Math.floor(Date.now() / 1000);
      return new SignJWT({ email: claims.email ?? PUSH_SERVICE_ACCOUNT, email_verified: claims.emailVerified ?? true })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(claims.issuer ?? 'https://accounts.google.com')
        .setAudience(claims.audience)
        .setSubject('112233445566778899000')
        .setIssuedAt(iat)
        .setExpirationTime(claims.exp ?? iat + 3600)
        .sign(privateKey);
    },
  };
}

/** A JWKS endpoint on 127.0.0.1 that counts its fetches. */
export async function startJwksServer(jwks: { keys: JWK[] }): Promise<{ url: string; fetches: () => number; close(): Promise<void> }> {
  let fetches = 0;
  const server = createServer((req, res) => {
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=3600' });
    res.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/oauth2/v3/certs`,
    fetches: () => fetches,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A push request body around one message. */
export function pushEnvelope(message: { attributes: Record<string, string>; data?: string; messageId?: string }, subscription = 'projects/rekey-test/subscriptions/rekey-push') {
  const messageId = message.messageId ?? String(Math.floor(Math.random() * 1e16));
  const publishTime = new Date().toISOString();
  return {
    message: { attributes: message.attributes, data: message.data ?? '', messageId, message_id: messageId, publishTime, publish_time: publishTime },
    subscription,
  };
}
