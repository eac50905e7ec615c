import { z } from 'zod';
import { checkOutboundUrl, insecureFlag } from '../../src/core/kit/outbound-url.js';

/** The `providers:` entry: nothing to configure (each authenticator names its cluster's issuer). */
export const kubernetesServiceAccountConfig = z.object({}).strict();
export type KubernetesServiceAccountConfig = z.infer<typeof kubernetesServiceAccountConfig>;

/** `namespace/name`, each part a Kubernetes name or a glob of one. */
const serviceAccountGlob = z.string().regex(/^[a-z0-9*]([-a-z0-9.*]*)\/[a-z0-9*]([-a-z0-9.*]*)$/, 'namespace/service-account, each part a name or a glob (*)');

/** `tokenReview:` of a binding: where the API server is, and how long a review may take. */
const tokenReview = z
  .object({
    kubeconfig: z.string().min(1).optional().describe('Path of a kubeconfig file; without it, the in-cluster service account (KUBERNETES_SERVICE_HOST), else $KUBECONFIG or ~/.kube/config'),
    context: z.string().min(1).optional().describe("The kubeconfig context to use (default: its current-context)"),
    timeoutMs: z.number().int().positive().max(30_000).default(5_000).describe('Milliseconds one TokenReview may take; a slower API server refuses the exchange (503)'),
  })
  .strict();
export type TokenReviewOptions = z.infer<typeof tokenReview>;

/** An entry of `delivery.authenticators`. */
export const kubernetesServiceAccountBinding = z
  .object({
    /** The cluster's service account issuer (`--service-account-issuer`), exactly as its tokens' `iss` say it. */
    issuer: z.string().url().describe("The cluster's service account issuer: iss must equal it; its discovery document is <issuer>/.well-known/openid-configuration"),
    audience: z.string().min(1).default('rekey').describe('aud of the projected token (serviceAccountToken.audience in the pod spec)'),
    serviceAccounts: z
      .array(serviceAccountGlob)
      .min(1)
      .describe('Service accounts allowed, as namespace/name globs ("payments/api", "ci/*"); any other is refused'),
    algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'])).min(1).default(['RS256', 'ES256']).describe('Signature algorithms accepted (never none or HMAC)'),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30).describe('Allowed clock skew for exp, nbf and iat'),
    /**
     * The longest lifetime (exp - iat) a token may have; one without iat is refused. Without
     * tokenReview a token whose pod is gone passes until its exp, so this bounds that window.
     * A day passes every projected volume's token up to `expirationSeconds: 86400` (the
     * kubelet's default is 3607) and refuses the year-long tokens of extended expiration.
     * @defaultValue 86400
     */
    maxTokenLifetimeSeconds: z
      .number()
      .int()
      .min(600)
      .max(4 * 366 * 86_400)
      .default(86_400)
      .describe('Tokens whose lifetime (exp - iat) is longer are refused, and tokens without iat: without tokenReview, how long a token outlives its pod at most'),
    insecure: insecureFlag,
    tokenReview: tokenReview
      .optional()
      .describe("After the signature check, ask the cluster's API server (TokenReview, with the audience) whether the token is still valid: a bound token whose pod was deleted is refused. Fails closed (503) when the API server cannot answer"),
  })
  .strict()
  .superRefine((binding, ctx) => checkOutboundUrl(binding.issuer, binding.insecure, ['issuer'], ctx));
export type KubernetesServiceAccountBinding = z.infer<typeof kubernetesServiceAccountBinding>;
