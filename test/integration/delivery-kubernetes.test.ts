/**
 * The kubernetes-service-account authenticator (issue 17): tokens in the exact shape a cluster
 * issues for a projected `serviceAccountToken` volume (RS256, kid, iss, sub
 * `system:serviceaccount:<ns>:<sa>`, aud, exp, iat, nbf, jti and the `kubernetes.io` claim with
 * namespace, node, pod and serviceaccount), signed with a key published the way kube-apiserver
 * publishes it: a discovery document at `<issuer>/.well-known/openid-configuration` naming
 * `/openid/v1/jwks`, served over HTTP on 127.0.0.1. Valid tokens are exchanged at POST
 * /v1/token; expired, wrong-audience, wrong-issuer, unknown-key, tampered, alg none,
 * inconsistent-subject and disallowed namespace/service-account tokens get the one refusal,
 * each logged with its reason.
 */
import { createServer, type Server } from 'node:http';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveryRoutes, GRANT_TYPE, JWT_TOKEN_TYPE } from '../../src/delivery/routes.js';
import { type ClusterKey, projectedToken } from '../../providers/kubernetes-service-account/test/fake/projected-token.js';
import { startHarness, type Harness } from '../support/harness.js';

async function clusterKey(): Promise<ClusterKey & { publicJwk: object }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  // kube-apiserver's kid: the base64url SHA-256 of the public key (its thumbprint here).
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, privateKey, publicJwk: { ...jwk, kid, alg: 'RS256', use: 'sig' } };
}

let server: Server;
let issuer: string;
let cluster: ClusterKey;
let stranger: ClusterKey;
let h: Harness;

beforeAll(async () => {
  const key = await clusterKey();
  cluster = key;
  stranger = await clusterKey();
  server = createServer((request, response) => {
    const body =
      request.url === '/.well-known/openid-configuration'
        ? {
            issuer,
            jwks_uri: `${issuer}/openid/v1/jwks`,
            response_types_supported: ['id_token'],
            subject_types_supported: ['public'],
            id_token_signing_alg_values_supported: ['RS256'],
          }
        : request.url === '/openid/v1/jwks'
          ? { keys: [key.publicJwk] }
          : undefined;
    response.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  h = await startHarness({ label: 'delivery-kubernetes', routes: [deliveryRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }
delivery:
  authenticators:
    cluster:
      type: kubernetes-service-account
      issuer: ${issuer}
      serviceAccounts: [payments/api, "ci-*/deployer"]
      clockToleranceSeconds: 0
      insecure: true
  grants:
    workloads:
      authenticator: cluster
      subjects: ["system:serviceaccount:*"]
      token: { signingKey: api-signing, audience: internal-api, ttl: 5m, claims: { copy: [kubernetes.io] } }
`);
  expect((await h.rotate('api-signing', 60_000)).status).toBe('succeeded');
}, 120_000);
afterAll(async () => {
  await h.stop();
  server.close();
});

interface Shape {
  namespace?: string;
  account?: string;
  sub?: string;
  aud?: string[];
  iss?: string;
  /** Seconds from now. */
  exp?: number;
  issued?: number;
  key?: ClusterKey;
}

/** A projected service account token as kube-apiserver issues it (TokenRequest, bound to a pod). */
function token({ key = cluster, iss = issuer, ...shape }: Shape = {}): Promise<string> {
  return projectedToken({ ...shape, key, iss });
}

async function exchange(subjectToken: string) {
  const response = await fetch(`${h.serving!.url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: subjectToken, subject_token_type: JWT_TOKEN_TYPE, audience: 'internal-api' }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const REFUSED = { status: 400, body: { error: 'invalid_request', error_description: 'the subject token is not valid' } };
const reasons = () => h.logs.filter((l) => l.includes('credential refused')).map((l) => (JSON.parse(l) as { reason: string }).reason);

it('exchanges a projected service account token of an allowed service account for a rekey token naming it', async () => {
  for (const [namespace, account] of [
    ['payments', 'api'],
    ['ci-main', 'deployer'],
  ] as const) {
    const presented = await token({ namespace, account });
    const answer = await exchange(presented);
    expect(answer.status).toBe(200);
    expect(decodeJwt(answer.body.access_token as string)).toMatchObject({
      sub: `system:serviceaccount:${namespace}:${account}`,
      aud: 'internal-api',
      'kubernetes.io': { namespace, serviceaccount: { name: account } },
    });
    expect(h.logs.join('\n')).not.toContain(presented);
  }
});

it('refuses expired, wrong-audience, wrong-issuer, unknown-key, tampered, alg none, inconsistent and disallowed tokens with one answer', async () => {
  const valid = await token();
  const [header, payload, signature] = valid.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
  const refused: [string, string][] = [
    ['expired', await token({ exp: -60 })],
    ['claim aud', await token({ aud: ['https://kubernetes.default.svc'] })],
    ['claim iss', await token({ iss: 'https://kubernetes.default.svc.cluster.local' })],
    ['unknown key', await token({ key: stranger })],
    ['signature', `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'system:serviceaccount:kube-system:admin' })).toString('base64url')}.${signature}`],
    ['algorithm', `${Buffer.from(JSON.stringify({ alg: 'none', kid: cluster.kid })).toString('base64url')}.${payload}.`],
    ['subject', await token({ sub: 'system:serviceaccount:payments:other' })],
    ['subject', await token({ sub: 'payments-api' })],
    ['service account', await token({ namespace: 'payments', account: 'batch' })],
    ['service account', await token({ namespace: 'kube-system', account: 'api' })],
    ['service account', await token({ namespace: 'ci', account: 'deployer' })],
  ];
  for (const [why, presented] of refused) {
    const before = reasons().length;
    expect({ why, ...(await exchange(presented)) }).toEqual({ why, ...REFUSED });
    expect(reasons().slice(before)).toEqual([`authenticator cluster: ${why}`]);
  }
  expect((await exchange(valid)).status).toBe(200);
});

it('refuses a token issued in the future beyond the clock tolerance (iat), as it refuses one not valid yet (nbf)', async () => {
  const valid = await token();
  const [header, payload] = valid.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
  // The same token with its nbf taken out: only its iat says it was issued an hour from now.
  const future = await new SignJWT({ ...Object.fromEntries(Object.entries(claims).filter(([name]) => name !== 'nbf')), iat: (claims.iat as number) + 3610 }).setProtectedHeader(JSON.parse(Buffer.from(header!, 'base64url').toString()) as { alg: string; kid: string }).sign(cluster.privateKey);
  for (const [why, presented] of [['claim nbf', await token({ issued: 3600 })], ['claim iat', future]] as const) {
    const before = reasons().length;
    expect({ why, ...(await exchange(presented)) }).toEqual({ why, ...REFUSED });
    expect(reasons().slice(before)).toEqual([`authenticator cluster: ${why}`]);
  }
});
