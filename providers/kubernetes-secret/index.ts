/**
 * The `kubernetes-secret` provider: a target that writes the value into one key of a Secret
 * and optionally restarts Deployments so their pods read it.
 */
import { RekeyError } from '../../src/core/errors.js';
import { loadKubeConfig } from '../../src/core/kit/kubeconfig.js';
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
  // A Secret key holds one value: two managed secrets (or two clients of one) on a slot would replace each other's.
  targetOwns: ({ name, namespace, key, previousKey }, secret) =>
    [key, ...(previousKey === false ? [] : [previousKey ?? `${key}.previous`])].map((slot) => `Secret ${namespace ? `${namespace}/` : ''}${name ?? secret} key ${slot}`),
  // The target below refuses to open with a default name that is no Secret name: refused at apply instead.
  targetProblem: ({ name }, secret) =>
    name !== undefined || validName(secret)
      ? undefined
      : secret.includes('/')
        ? "a client's <secret>/<client> is not a Secret name, and clients cannot share one key: a secret with clients: has no kubernetes-secret target"
        : "the managed secret's name is not a Secret name: set the binding's name",
  open(config, ctx) {
    const kc = loadKubeConfig(config, `providers.${ctx.name}`);
    const api = new KubeApi(kc, config.timeoutMs, ctx.name);
    const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
    return {
      target({ secret, params }) {
        const name = params.name ?? secret;
        if (!validName(name)) {
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
          log: ctx.log.child({ secret }),
        });
      },
    };
  },
});

export default kubernetesSecret;

/** Whether a Secret may be named so (a DNS-1123 subdomain). */
function validName(name: string): boolean {
  return NAME.test(name) && name.length <= 253;
}
