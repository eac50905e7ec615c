/**
 * The `kubernetes-secret` provider: a target that writes the value into one key of a Secret
 * and optionally restarts Deployments so their pods read it.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { RekeyError } from '../../src/core/errors.js';
import { defineProvider } from '../../src/core/provider.js';
import { KubeApi } from './kube-api.js';
import { kubernetesConfigSchema, kubernetesTargetSchema, type KubernetesConfig, type KubernetesTargetParams } from './kubernetes-secret.schema.js';
import { KubernetesSecretTarget } from './kubernetes-secret.target.js';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const kubernetesSecret = defineProvider<KubernetesConfig, never, never, KubernetesTargetParams>({
  type: 'kubernetes-secret',
  summary: 'A key of a Kubernetes Secret, with optional Deployment restarts so pods read the new value',
  config: kubernetesConfigSchema,
  bindings: { target: kubernetesTargetSchema },
  open(config, ctx) {
    const kc = loadKubeConfig(config, `providers.${ctx.name}`);
    const api = new KubeApi(kc, config.timeoutMs, ctx.name);
    const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
    return {
      target({ secret, params }) {
        const name = params.name ?? secret;
        if (!NAME.test(name) || name.length > 253) {
          throw new RekeyError('REKEY_ERR_CONFIG', `secrets.${secret}: "${secret}" is not a valid Secret name; set the binding's name`);
        }
        return new KubernetesSecretTarget({
          provider: ctx.name,
          api,
          namespace: params.namespace ?? config.namespace ?? contextNamespace ?? 'default',
          name,
          key: params.key,
          previousKey: params.previousKey === false ? undefined : (params.previousKey ?? `${params.key}.previous`),
          restart: params.restart,
          waitForRollout: params.waitForRollout,
          create: params.create,
          fingerprint: ctx.fingerprint,
          log: ctx.log.child({ provider: ctx.name, secret }),
        });
      },
    };
  },
});

/** A kubeconfig file when given; in a pod, the service account; else $KUBECONFIG or ~/.kube/config. */
function loadKubeConfig(config: KubernetesConfig, where: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    if (config.context) kc.setCurrentContext(config.context);
  } catch (error) {
    // Not the loader's message: a YAML error quotes kubeconfig lines, which may hold tokens or keys.
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
    const from = config.kubeconfig ?? (process.env.KUBERNETES_SERVICE_HOST ? 'the service account' : '$KUBECONFIG or ~/.kube/config');
    throw new RekeyError('REKEY_ERR_CONFIG', `${where}: cannot load the Kubernetes configuration from ${from} (${why})`);
  }
  if (!kc.getCurrentCluster()) throw new RekeyError('REKEY_ERR_CONFIG', `${where}: the Kubernetes configuration names no cluster`);
  return kc;
}

export default kubernetesSecret;
