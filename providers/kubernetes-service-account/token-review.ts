/**
 * The optional TokenReview of a projected service account token (`tokenReview:` of the binding):
 * after the signature check, rekey asks the cluster's API server
 * (`POST /apis/authentication.k8s.io/v1/tokenreviews`, through @kubernetes/client-node) whether
 * the token is still valid for rekey's audience. The API server knows what a signature cannot:
 * a bound token whose pod (or secret, or service account) was deleted is no longer
 * authenticated, though its signature and expiry are fine.
 * API reference: https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/
 *
 * Fails closed: an API server that cannot be reached, times out or refuses rekey's own
 * credentials is REKEY_ERR_UNAVAILABLE (the caller gets 503, never a token); a token the API
 * server does not authenticate, or authenticates for other audiences or as another user, is
 * REKEY_ERR_DENIED with a fixed reason. The API server's `status.error` is never passed on.
 *
 * A refusal is for good (a deleted pod does not come back; nor does a token's audience or user
 * change), so it is remembered, by the token's SHA-256, until the token expires: whoever holds a
 * dead token gets one review out of it, not one per request. An acceptance is never remembered:
 * the next request of the same token is reviewed again, so a pod's deletion counts at once.
 */
import { createHash } from 'node:crypto';
import { ApiException, AuthenticationV1Api, setHeaderMiddleware } from '@kubernetes/client-node';
import { ProviderError } from '../../src/core/errors.js';
import { loadKubeConfig } from '../../src/core/kit/kubeconfig.js';
import type { Call } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { TokenReviewOptions } from './kubernetes-service-account.schema.js';

type Options = Parameters<AuthenticationV1Api['createTokenReview']>[1];

/** Refused tokens remembered at most: past it the expired ones are forgotten, then the oldest. */
const MAX_REFUSED = 10_000;

export class TokenReview {
  readonly #api: AuthenticationV1Api;
  /** Refused tokens by SHA-256 (hex): the reason, and when the token expires (ms). */
  readonly #refused = new Map<string, { reason: string; until: number }>();

  /** @throws RekeyError REKEY_ERR_CONFIG when the Kubernetes configuration cannot be loaded. */
  constructor(
    private readonly name: string,
    private readonly options: TokenReviewOptions,
    private readonly audience: string,
  ) {
    this.#api = loadKubeConfig(options, `delivery.authenticators.${name}.tokenReview`).makeApiClient(AuthenticationV1Api);
  }

  /**
   * Resolves when the API server authenticates `credential` (which expires at `expiresAt`, epoch
   * seconds) for the audience as `username`.
   * @throws ProviderError REKEY_ERR_DENIED (`token review`, `token review audience`, `token review user`).
   * @throws ProviderError REKEY_ERR_UNAVAILABLE when the review cannot be had now.
   */
  async check(credential: SecretValue, username: string, expiresAt: number, call: Call): Promise<void> {
    const key = createHash('sha256').update(credential.reveal()).digest('hex');
    const refused = this.#refused.get(key);
    if (refused && refused.until > Date.now()) throw this.#denied(refused.reason);
    const reason = await this.#review(credential, username, call);
    if (reason === undefined) return;
    this.#remember(key, reason, expiresAt * 1000);
    throw this.#denied(reason);
  }

  /** The review's refusal reason; undefined when it authenticates the token as `username` for the audience. */
  async #review(credential: SecretValue, username: string, call: Call): Promise<string | undefined> {
    let status;
    try {
      const review = await this.#api.createTokenReview(
        { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: credential.reveal(), audiences: [this.audience] } } },
        this.#requestOptions(call.signal),
      );
      status = review.status;
    } catch (error) {
      throw this.#unavailable(error);
    }
    if (!status?.authenticated) return 'token review';
    // An API server that ignores spec.audiences answers without status.audiences: that is no proof for rekey's audience.
    if (!status.audiences?.includes(this.audience)) return 'token review audience';
    if (status.user?.username !== username) return 'token review user';
    return undefined;
  }

  #remember(key: string, reason: string, until: number): void {
    const now = Date.now();
    if (this.#refused.size >= MAX_REFUSED) {
      for (const [other, entry] of this.#refused) if (entry.until <= now) this.#refused.delete(other);
    }
    // Still full of live ones: the one remembered first goes (a Map iterates in insertion order).
    if (this.#refused.size >= MAX_REFUSED) this.#refused.delete(this.#refused.keys().next().value!);
    this.#refused.set(key, { reason, until });
  }

  #requestOptions(signal: AbortSignal): Options {
    const combined = AbortSignal.any([signal, AbortSignal.timeout(this.options.timeoutMs)]);
    const accept = setHeaderMiddleware('Accept', 'application/json');
    return {
      middleware: [{ pre: (context) => (context.setSignal(combined), accept.pre(context)), post: (response) => accept.post(response) }],
      middlewareMergeStrategy: 'append',
    };
  }

  #denied(reason: string): ProviderError {
    return new ProviderError('REKEY_ERR_DENIED', `authenticator ${this.name}: ${reason}`, { provider: this.name });
  }

  /** Never the API server's message: a Status may quote the request, which holds the token. */
  #unavailable(error: unknown): ProviderError {
    const why = !(error instanceof ApiException)
      ? (error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError'
        ? 'timed out'
        : 'the API server could not be reached'
      : error.code === 401
        ? "the API server did not accept rekey's credentials (401)"
        : error.code === 403
          ? 'forbidden (403): rekey needs create on tokenreviews.authentication.k8s.io (system:auth-delegator; see the provider README)'
          : `the API server answered ${error.code}`;
    return new ProviderError('REKEY_ERR_UNAVAILABLE', `authenticator ${this.name}: token review: ${why}`, { provider: this.name, cause: error });
  }
}
