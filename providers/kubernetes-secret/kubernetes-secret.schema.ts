/**
 * Config of the `kubernetes-secret` provider (a `providers:` entry) and of its target binding.
 * No credentials here: in-cluster service account token, or a kubeconfig file.
 */
import { z } from 'zod';

const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS-1123 label (a-z 0-9 -, up to 63)');
const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS-1123 subdomain (a-z 0-9 - .)');
/** A Secret data key: what a volume mount turns into a file name. */
export const dataKey = z.string().regex(/^[-._a-zA-Z0-9]{1,253}$/, 'must be a Secret data key (A-Z a-z 0-9 - _ .)');

export const kubernetesConfigSchema = z
  .object({
    /**
     * Path of a kubeconfig file. Without it: the in-cluster service account when running in a
     * pod (KUBERNETES_SERVICE_HOST is set), else $KUBECONFIG or ~/.kube/config.
     */
    kubeconfig: z.string().min(1).optional(),
    /** The kubeconfig context to use. @defaultValue its current-context */
    context: z.string().min(1).optional(),
    /** Namespace of the Secrets. @defaultValue the context's namespace, else `default` */
    namespace: dnsLabel.optional(),
    /** Milliseconds one API request may take. @defaultValue 10000 */
    timeoutMs: z.number().int().positive().max(120_000).default(10_000),
  })
  .strict();

export const kubernetesTargetSchema = z
  .object({
    /** The Secret's name. @defaultValue the rekey secret's name (must then be a valid name) */
    name: dnsSubdomain.optional(),
    /** The Secret's namespace. @defaultValue the provider's */
    namespace: dnsLabel.optional(),
    /** The data key workloads read. @defaultValue `value` */
    key: dataKey.default('value'),
    /**
     * The data key holding the value that `key` held before the last deploy, so a rollback (or a
     * leak of the new value) can give it back; removed when that version is retired. `false`: a
     * single slot (retiring the value in `key` then removes the key). @defaultValue `<key>.previous`
     */
    previousKey: z.union([dataKey, z.literal(false)]).optional(),
    /** Deployments (same namespace) to restart when `key` changes, so pods read the new value. */
    restart: z.array(dnsSubdomain).default([]),
    /** verify() waits for those restarts to finish rolling out. @defaultValue true */
    waitForRollout: z.boolean().default(true),
    /** Create the Secret when it does not exist (needs `create` on secrets; see README). @defaultValue false */
    create: z.boolean().default(false),
  })
  .strict()
  .default({ key: 'value', restart: [], waitForRollout: true, create: false });

export type KubernetesConfig = z.infer<typeof kubernetesConfigSchema>;
export type KubernetesTargetParams = z.infer<typeof kubernetesTargetSchema>;
