/**
 * kubernetes-service-account: an authenticator for a workload's projected service account
 * token (audience = rekey), verified against the cluster's OIDC discovery document and JWKS,
 * with namespace/service-account rules, and optionally the cluster's TokenReview (token-review.ts).
 */
import { defineProvider } from '../../src/core/provider.js';
import { KubernetesServiceAccountAuthenticator } from './kubernetes-service-account.authenticator.js';
import {
  kubernetesServiceAccountBinding,
  kubernetesServiceAccountConfig,
  type KubernetesServiceAccountBinding,
  type KubernetesServiceAccountConfig,
} from './kubernetes-service-account.schema.js';

export default defineProvider<KubernetesServiceAccountConfig, never, never, never, KubernetesServiceAccountBinding>({
  type: 'kubernetes-service-account',
  summary: "Authenticator of projected Kubernetes service account tokens: the cluster's JWKS through its discovery document, with namespace/service-account rules and an optional TokenReview",
  config: kubernetesServiceAccountConfig,
  bindings: { authenticator: kubernetesServiceAccountBinding },
  open() {
    return { authenticator: ({ name, params }) => new KubernetesServiceAccountAuthenticator(name, params) };
  },
});
