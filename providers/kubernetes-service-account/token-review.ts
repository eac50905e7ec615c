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
 */
import { ApiException, AuthenticationV1Api, setHeaderMiddleware } from '@kubernetes/client-node';
import { ProviderError } from '../../src/core/errors.js';
import { loadKubeConfig } from '../../src/core/kit/kubeconfig.js';
import type { Call } from '../../src/core/ports.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { TokenReviewOptions } from './kubernetes-service-account.schema.js';

type Options = Parameters<AuthenticationV1Api['createTokenReview']>[1];

export class TokenReview {
  readonly #api: AuthenticationV1Api;

  /** @throws RekeyError REKEY_ERR_CONFIG when the Kubernetes configuration cannot be loaded. */
  constructor(
    private readonly name: string,
    private readonly options: TokenReviewOptions,
    private readonly audience: string,
  ) {
    this.#api = loadKubeConfig(options, `delivery.authenticators.${name}.tokenReview`).makeApiClient(AuthenticationV1Api);
  }

  /**
   * Resolves when the API server authenticates `credential` for the audience as `username`.
   * @throws ProviderError REKEY_ERR_DENIED (`token review`, `token review audience`, `token review user`).
   * @throws ProviderError REKEY_ERR_UNAVAILABLE when the review cannot be had now.
   */
  async check(credential: SecretValue, username: string, call: Call): Promise<void> {
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
    if (!status?.authenticated) throw this.#denied('token review');
    // An API server that ignores spec.audiences answers without status.audiences: that is no proof for rekey's audience.
    if (!status.audiences?.includes(this.audience)) throw this.#denied('token review audience');
    if (status.user?.username !== username) throw this.#denied('token review user');
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
