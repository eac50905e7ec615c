/**
 * A local fake of the parts of kube-apiserver the kubernetes-service-account authenticator
 * reads (plain HTTP on 127.0.0.1:0), issuing tokens in the exact shape a cluster gives a
 * projected `serviceAccountToken` volume:
 * - service account issuer discovery (https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#service-account-issuer-discovery):
 *   `/.well-known/openid-configuration` naming `/openid/v1/jwks`, RS256, kid = key thumbprint;
 *   unauthenticated, as with `system:service-account-issuer-discovery` bound to everyone;
 * - TokenReview v1 (https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/):
 *   `POST /apis/authentication.k8s.io/v1/tokenreviews` with a bearer token (else 401 Status;
 *   without create on tokenreviews, 403), answered 201 with the review and its `status`:
 *   `authenticated`, `user` (username, uid, groups, extra with the pod's name and uid) and
 *   `audiences` (those of spec.audiences the token carries), or `authenticated: false` with an
 *   `error` when the signature, expiry or audience fail or the token's pod was deleted (a bound
 *   token dies with its pod). `audienceUnaware` plays an API server that ignores spec.audiences
 *   and answers with its own.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { listenLoopback, readBody } from '../../../../test/support/fake-http.js';
import { projectedToken } from './projected-token.js';

type Json = Record<string, unknown>;

export interface TokenShape {
  namespace?: string;
  account?: string;
  aud?: string[];
  /** Seconds from now. */
  exp?: number;
  /** iat (and nbf), seconds from now; null: neither. */
  issued?: number | null;
}

export interface FakeCluster {
  /** The API server, also the service account issuer. */
  url: string;
  /** The bearer token rekey's service account presents. */
  token: string;
  /** TokenReviews received (their spec). */
  reviews: { token: string; audiences?: string[] }[];
  /** Deletes the pod `pod`: its tokens are no longer authenticated. */
  deletePod(pod: string): void;
  /** Answer reviews as an API server that ignores spec.audiences. */
  audienceUnaware: boolean;
  /** Answer reviews 403: rekey's service account lacks create on tokenreviews. */
  forbidden: boolean;
  /** A projected token for the pod `pod`, bound to it. */
  issue(pod: string, shape?: TokenShape): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeCluster(token = 'rekey-sa-token'): Promise<FakeCluster> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  let issuer = '';
  const podUids = new Map<string, string>();
  const deleted = new Set<string>();

  const review = async (spec: { token?: string; audiences?: string[] }): Promise<Json> => {
    let payload: JWTPayload;
    try {
      // What kube-apiserver's service account authenticator checks: signature, issuer, expiry and, when given, audiences.
      ({ payload } = await jwtVerify(spec.token ?? '', publicKey, { issuer, ...(spec.audiences && !cluster.audienceUnaware ? { audience: spec.audiences } : {}) }));
    } catch {
      return { authenticated: false, error: '[invalid bearer token, square/go-jose: error in cryptographic primitive]' };
    }
    const k8s = payload['kubernetes.io'] as { namespace: string; pod: { name: string; uid: string }; serviceaccount: { name: string; uid: string } };
    if (deleted.has(k8s.pod.uid)) return { authenticated: false, error: `[invalid bearer token, pod "${k8s.pod.name}" not found]` };
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    return {
      authenticated: true,
      user: {
        username: payload.sub,
        uid: k8s.serviceaccount.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${k8s.namespace}`, 'system:authenticated'],
        extra: { 'authentication.kubernetes.io/pod-name': [k8s.pod.name], 'authentication.kubernetes.io/pod-uid': [k8s.pod.uid] },
      },
      audiences: cluster.audienceUnaware || !spec.audiences ? ['https://kubernetes.default.svc.cluster.local'] : spec.audiences.filter((a) => aud.includes(a)),
    };
  };

  const server = createServer((req, res) => {
    void readBody(req).then(async (raw) => {
      if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') {
        return json(res, 200, { issuer, jwks_uri: `${issuer}/openid/v1/jwks`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] });
      }
      if (req.method === 'GET' && req.url === '/openid/v1/jwks') return json(res, 200, { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] });
      if (req.url?.split('?')[0] !== '/apis/authentication.k8s.io/v1/tokenreviews') return status(res, 404, 'NotFound', 'the server could not find the requested resource');
      if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
      if (cluster.forbidden) {
        return status(res, 403, 'Forbidden', 'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:rekey:rekey" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope');
      }
      if (req.method !== 'POST') return status(res, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      const body = JSON.parse(raw) as { apiVersion?: string; kind?: string; spec?: { token?: string; audiences?: string[] } };
      if (body.apiVersion !== 'authentication.k8s.io/v1' || body.kind !== 'TokenReview') return status(res, 400, 'BadRequest', 'the object provided is unrecognized');
      if (!body.spec?.token) return status(res, 422, 'Invalid', 'TokenReview.authentication.k8s.io is invalid: spec.token: Required value: token is required');
      cluster.reviews.push({ token: body.spec.token, ...(body.spec.audiences ? { audiences: body.spec.audiences } : {}) });
      return json(res, 201, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', metadata: { creationTimestamp: null }, spec: body.spec, status: await review(body.spec) });
    });
  });
  const port = await listenLoopback(server);
  issuer = `http://127.0.0.1:${port}`;

  const cluster: FakeCluster = {
    url: issuer,
    token,
    reviews: [],
    deletePod: (pod) => void deleted.add(podUids.get(pod) ?? ''),
    audienceUnaware: false,
    forbidden: false,
    issue(pod, shape = {}) {
      const uid = podUids.get(pod) ?? randomUUID();
      podUids.set(pod, uid);
      return projectedToken({ ...shape, key: { kid, privateKey }, iss: issuer, pod: { name: pod, uid } });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  return cluster;
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
