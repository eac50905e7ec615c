/**
 * How a provider that calls the Kubernetes API finds it (`kubernetes-secret`, the TokenReview of
 * `kubernetes-service-account`): a kubeconfig file when given; in a pod, its service account;
 * else $KUBECONFIG or ~/.kube/config. No credential is ever in rekey.yaml.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { RekeyError } from '../errors.js';

export interface KubeConfigSource {
  /** Path of a kubeconfig file. */
  kubeconfig?: string | undefined;
  /** The kubeconfig context to use. @defaultValue its current-context */
  context?: string | undefined;
}

/**
 * @param where the config path for errors (`providers.k8s`, `delivery.authenticators.cluster.tokenReview`).
 * @throws RekeyError REKEY_ERR_CONFIG when it cannot be loaded or names no cluster.
 */
export function loadKubeConfig(source: KubeConfigSource, where: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (source.kubeconfig) kc.loadFromFile(source.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    if (source.context) kc.setCurrentContext(source.context);
  } catch (error) {
    // Not the loader's message: a YAML error quotes kubeconfig lines, which may hold tokens or keys.
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
    const from = source.kubeconfig ?? (process.env.KUBERNETES_SERVICE_HOST ? 'the service account' : '$KUBECONFIG or ~/.kube/config');
    throw new RekeyError('REKEY_ERR_CONFIG', `${where}: cannot load the Kubernetes configuration from ${from} (${why})`);
  }
  if (!kc.getCurrentCluster()) throw new RekeyError('REKEY_ERR_CONFIG', `${where}: the Kubernetes configuration names no cluster`);
  return kc;
}
