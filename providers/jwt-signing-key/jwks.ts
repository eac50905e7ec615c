/**
 * Helpers for whoever publishes or uses jwt-signing-key versions: the rekey server's
 * `/.well-known/jwks.json`, a target that pushes a JWKS document, a workload that signs.
 */
import { createPrivateKey, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import type { JsonObject } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import { JWT_ALGORITHMS, type JwtAlgorithm } from './jwt-signing-key.schema.js';

// Members that only a private (or symmetric) JWK has; a public JWK must carry none of them.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * The public JWK a jwt-signing-key version recorded as its issuer state, or undefined when
 * the state is not one (another issuer's state, a damaged row). Private members are never
 * returned, even if a damaged state held some.
 */
export function publicJwkFromState(state: JsonObject): JWK | undefined {
  const jwk = state.publicJwk;
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) return undefined;
  if (typeof jwk.kty !== 'string' || typeof jwk.kid !== 'string' || !isAlgorithm(jwk.alg)) return undefined;
  const copy: Record<string, string> = {};
  for (const [name, value] of Object.entries(jwk)) {
    if (!PRIVATE_MEMBERS.includes(name) && typeof value === 'string') copy[name] = value;
  }
  return copy;
}

/**
 * A JWKS document (RFC 7517 §5) from the issuer states of the versions that verifiers must
 * trust: the current one and, during the overlap, the previous one (pending too, if signers
 * may switch before promotion). Order is kept; duplicates by kid and foreign states are dropped.
 */
export function buildJwks(states: readonly JsonObject[]): JSONWebKeySet {
  const keys: JWK[] = [];
  for (const state of states) {
    const jwk = publicJwkFromState(state);
    if (jwk && !keys.some((key) => key.kid === jwk.kid)) keys.push(jwk);
  }
  return { keys };
}

function isAlgorithm(alg: unknown): alg is JwtAlgorithm {
  return typeof alg === 'string' && (JWT_ALGORITHMS as readonly string[]).includes(alg);
}

/** Signs JWTs with one version's private key: `sign(payload)` is the compact JWS, header `{ alg, kid, typ: JWT }`. */
export interface JwtSigner {
  kid: string;
  alg: JwtAlgorithm;
  sign(payload: JsonObject): Promise<string>;
}

/** What node:crypto's sign() takes for each algorithm: the digest, and ECDSA's signature as r||s (RFC 7518 §3.4). */
const NODE_SIGNING: Record<JwtAlgorithm, { digest: string | null; keyType: string; curve?: string; dsaEncoding?: 'ieee-p1363' }> = {
  ES256: { digest: 'sha256', keyType: 'ec', curve: 'prime256v1', dsaEncoding: 'ieee-p1363' },
  RS256: { digest: 'sha256', keyType: 'rsa' },
  EdDSA: { digest: null, keyType: 'ed25519' },
};

/**
 * A signer for the private JWK a version's value holds (the one way rekey reads such a value),
 * on node:crypto with the key imported once as a KeyObject; about a third of jose's CPU per
 * ES256 token. sign() runs synchronously: its callback form (WebCrypto's way) hands each
 * signature to the thread pool and back, which on Node 20 leaves most of the work on the event
 * loop anyway and costs the process 15% more CPU per token (docs/benchmarks.md, 2026-12-05).
 * @throws Error when the value is not a private JWK with a kid and a supported alg, or the key does not fit the alg.
 */
export function jwtSignerFromValue(value: SecretValue): JwtSigner {
  const jwk = JSON.parse(value.reveal()) as JWK;
  if (typeof jwk.kid !== 'string' || !isAlgorithm(jwk.alg) || typeof jwk.d !== 'string') {
    throw new Error('not a private JWK with kid and alg');
  }
  const { kid, alg } = jwk as JWK & { kid: string; alg: JwtAlgorithm };
  const how = NODE_SIGNING[alg];
  const key: KeyObject = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  if (key.asymmetricKeyType !== how.keyType || (how.curve && key.asymmetricKeyDetails?.namedCurve !== how.curve)) throw new Error(`the key does not fit ${alg}`);
  const header = base64url({ alg, kid, typ: 'JWT' });
  const signingKey = how.dsaEncoding ? { key, dsaEncoding: how.dsaEncoding } : key;
  return {
    kid,
    alg,
    sign(payload) {
      const input = `${header}.${base64url(payload)}`;
      // A throw in the executor rejects.
      return new Promise((resolve) => resolve(`${input}.${sign(how.digest, Buffer.from(input), signingKey).toString('base64url')}`));
    },
  };
}

function base64url(json: object): string {
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}
