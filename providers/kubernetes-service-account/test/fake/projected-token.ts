/**
 * A projected service account token in the exact shape kube-apiserver issues it (TokenRequest,
 * bound to a pod): RS256 under the cluster's key, kid its thumbprint, the `kubernetes.io` claim
 * naming the namespace, node, pod and service account. Shared by the fake cluster and the tests
 * that sign tokens themselves.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, type CryptoKey } from 'jose';

/** A cluster's signing key, as its JWKS names it. */
export interface ClusterKey {
  kid: string;
  privateKey: CryptoKey;
}

export interface ProjectedToken {
  key: ClusterKey;
  iss: string;
  namespace?: string;
  account?: string;
  /** The pod the token is bound to. */
  pod?: { name: string; uid: string };
  /** Overrides the `system:serviceaccount:<namespace>:<account>` subject. */
  sub?: string;
  aud?: string[];
  /** Seconds from now. @defaultValue 3607, what a projected volume asks for */
  exp?: number;
  /** When it was issued (iat, and nbf), in seconds from now; null: neither claim (no cluster issues that). @defaultValue -10 */
  issued?: number | null;
}

export function projectedToken({ key, iss, namespace = 'payments', account = 'api', pod, sub, aud = ['rekey'], exp = 3607, issued = -10 }: ProjectedToken): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    aud,
    exp: now + exp,
    ...(issued === null ? {} : { iat: now + issued, nbf: now + issued }),
    iss,
    jti: randomUUID(),
    'kubernetes.io': {
      namespace,
      node: { name: 'worker-1', uid: randomUUID() },
      pod: pod ?? { name: `${account}-7d9f8c6b5-x2x4z`, uid: randomUUID() },
      serviceaccount: { name: account, uid: randomUUID() },
    },
    sub: sub ?? `system:serviceaccount:${namespace}:${account}`,
  })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .sign(key.privateKey);
}
