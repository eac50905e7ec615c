import { subjectMatches } from '../../src/core/delivery.js';
import { OidcVerifier } from '../../src/core/kit/oidc-verifier.js';
import type { Authenticator, Call, JsonObject, Subject } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { KubernetesServiceAccountBinding } from './kubernetes-service-account.schema.js';
import { TokenReview } from './token-review.js';

/** The private claim a cluster puts in a projected service account token. */
interface KubernetesClaim {
  namespace?: unknown;
  serviceaccount?: { name?: unknown; uid?: unknown };
  pod?: { name?: unknown; uid?: unknown };
}

/**
 * Verifies a projected service account token (what the kubelet mounts for a
 * `serviceAccountToken` volume with `audience: rekey`): signature with a key of the cluster's
 * JWKS found through its discovery document (`OidcVerifier`, as the `oidc` authenticator),
 * algorithm, exp, nbf, iss, aud; its lifetime (exp - iat, iat required) no longer than
 * maxTokenLifetimeSeconds; then the token's shape (`sub` is
 * `system:serviceaccount:<namespace>:<name>` and agrees with its `kubernetes.io` claim) and the
 * namespace/service-account rules; then, with `tokenReview:`, the cluster's own word that the
 * token is still valid (token-review.ts: a token of a deleted pod is refused), as the subject's
 * `confirm`, which rekey runs for a subject within its rate limit, before charging it. The subject is the `sub`.
 */
export class KubernetesServiceAccountAuthenticator implements Authenticator {
  private readonly verifier: OidcVerifier;
  private readonly review: TokenReview | undefined;

  constructor(
    name: string,
    private readonly params: KubernetesServiceAccountBinding,
  ) {
    this.verifier = new OidcVerifier(name, params);
    this.review = params.tokenReview && new TokenReview(name, params.tokenReview, params.audience);
  }

  async authenticate(credential: SecretValue, call: Call): Promise<Subject> {
    const payload = await this.verifier.verify(credential, call);
    // A bound token is only as fresh as its lifetime: without a review, a deleted pod's token passes until its exp.
    if (typeof payload.iat !== 'number' || payload.exp! - payload.iat > this.params.maxTokenLifetimeSeconds) throw this.verifier.denied('token lifetime');
    const k8s = payload['kubernetes.io'] as KubernetesClaim | undefined;
    const namespace = k8s?.namespace;
    const account = k8s?.serviceaccount?.name;
    if (typeof namespace !== 'string' || typeof account !== 'string' || payload.sub !== `system:serviceaccount:${namespace}:${account}`) {
      // A legacy (unbound) secret-based token has no kubernetes.io claim: refused too.
      throw this.verifier.denied('subject');
    }
    if (!this.params.serviceAccounts.some((glob) => subjectMatches(glob, `${namespace}/${account}`))) throw this.verifier.denied('service account');
    const subject: Subject = { id: payload.sub, claims: payload as JsonObject };
    // Last, left to rekey (Subject.confirm): only a token that passed every local check, of a
    // subject within its rate limit, costs the API server a request (a refused one, one in all).
    const review = this.review;
    if (review) subject.confirm = (confirming) => review.check(credential, subject.id, payload.exp!, confirming);
    return subject;
  }
}
