/**
 * The few Kubernetes API calls the target makes, through @kubernetes/client-node, with
 * rekey's error codes and the call's AbortSignal. Patches are JSON merge patches (RFC 7386,
 * `application/merge-patch+json`): a `null` removes a field, and a `metadata.resourceVersion`
 * in the patch is a precondition (409 Conflict when the object changed since it was read).
 * API reference: https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/
 * and https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/.
 */
import { ApiException, AppsV1Api, CoreV1Api, type KubeConfig, type V1Deployment, type V1Secret, PatchStrategy, setHeaderMiddleware } from '@kubernetes/client-node';
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';

type Options = Parameters<CoreV1Api['readNamespacedSecret']>[1];

export class KubeApi {
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;

  constructor(
    kc: KubeConfig,
    private readonly timeoutMs: number,
    private readonly provider: string,
  ) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#apps = kc.makeApiClient(AppsV1Api);
  }

  /** The Secret, or undefined when it does not exist. */
  async readSecret(namespace: string, name: string, signal: AbortSignal): Promise<V1Secret | undefined> {
    return this.#absent(() => this.#core.readNamespacedSecret({ namespace, name }, this.#options(signal)), 'get', 'secrets', namespace, name);
  }

  async patchSecret(namespace: string, name: string, body: object, signal: AbortSignal): Promise<V1Secret> {
    return this.#call(() => this.#core.patchNamespacedSecret({ namespace, name, body }, this.#options(signal, PatchStrategy.MergePatch)), 'patch', 'secrets', namespace, name);
  }

  async createSecret(namespace: string, body: V1Secret, signal: AbortSignal): Promise<V1Secret> {
    return this.#call(() => this.#core.createNamespacedSecret({ namespace, body }, this.#options(signal)), 'create', 'secrets', namespace, body.metadata?.name ?? '');
  }

  async readDeployment(namespace: string, name: string, signal: AbortSignal): Promise<V1Deployment> {
    return this.#call(() => this.#apps.readNamespacedDeployment({ namespace, name }, this.#options(signal)), 'get', 'deployments', namespace, name);
  }

  async patchDeployment(namespace: string, name: string, body: object, signal: AbortSignal): Promise<V1Deployment> {
    return this.#call(() => this.#apps.patchNamespacedDeployment({ namespace, name, body }, this.#options(signal, PatchStrategy.MergePatch)), 'patch', 'deployments', namespace, name);
  }

  /** Per-request options: the call's signal (with the per-request timeout) and, for patches, the content type. */
  #options(signal: AbortSignal, contentType?: string): Options {
    const combined = AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]);
    const base = contentType ? setHeaderMiddleware('Content-Type', contentType) : setHeaderMiddleware('Accept', 'application/json');
    return {
      middleware: [{ pre: (context) => (context.setSignal(combined), base.pre(context)), post: (response) => base.post(response) }],
      middlewareMergeStrategy: 'append',
    };
  }

  async #absent<T>(run: () => Promise<T>, verb: string, resource: string, namespace: string, name: string): Promise<T | undefined> {
    try {
      return await this.#call(run, verb, resource, namespace, name);
    } catch (error) {
      if ((error as ProviderError).code === 'REKEY_ERR_NOT_FOUND') return undefined;
      throw error;
    }
  }

  async #call<T>(run: () => Promise<T>, verb: string, resource: string, namespace: string, name: string): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.#error(error, verb, resource, namespace, name);
    }
  }

  /** Never passes the API server's message on: a Status for a Secret may quote the request. */
  #error(error: unknown, verb: string, resource: string, namespace: string, name: string): ProviderError {
    const where = `${verb} ${resource}/${name} in namespace ${namespace}`;
    const make = (code: ErrorCode, message: string) => new ProviderError(code, message, { provider: this.provider, cause: error });
    if (!(error instanceof ApiException)) {
      const aborted = (error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError';
      return make(aborted ? 'REKEY_ERR_TIMEOUT' : 'REKEY_ERR_UNAVAILABLE', `${where}: ${aborted ? 'timed out' : 'the API server could not be reached'}`);
    }
    const code = error.code;
    if (code === 401) return make('REKEY_ERR_DENIED', `${where}: the API server did not accept rekey's credentials`);
    if (code === 403) return make('REKEY_ERR_DENIED', `${where} is forbidden: rekey's Role needs "${verb}" on ${resource} with resourceNames [${name}] (see README)`);
    if (code === 404) return make('REKEY_ERR_NOT_FOUND', `${where}: not found`);
    if (code === 409) return make('REKEY_ERR_CONFLICT', `${where}: changed since it was read`);
    if (code === 429) return make('REKEY_ERR_THROTTLED', `${where}: throttled by the API server`);
    if (code >= 500) return make('REKEY_ERR_UNAVAILABLE', `${where}: the API server answered ${code}`);
    return make('REKEY_ERR_INVALID', `${where}: the API server rejected the request (${code})`);
  }
}
