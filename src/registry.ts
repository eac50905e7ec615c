/**
 * The one explicit list of providers, by type. Adding a provider is one line here. Each is
 * imported on first use (ProviderCatalog), so a command loads only the SDKs its config needs.
 */
import { ProviderCatalog } from './core/provider.js';

export const providers = new ProviderCatalog({
  // stores
  local: () => import('../providers/local/index.js'),
  'aws-secrets-manager': () => import('../providers/aws-secrets-manager/index.js'),
  'gcp-secret-manager': () => import('../providers/gcp-secret-manager/index.js'),
  // issuers
  random: () => import('../providers/random/index.js'),
  'postgres-role': () => import('../providers/postgres-role/index.js'),
  'redis-acl': () => import('../providers/redis-acl/index.js'),
  'aws-iam-access-key': () => import('../providers/aws-iam-access-key/index.js'),
  'jwt-signing-key': () => import('../providers/jwt-signing-key/index.js'),
  'hmac-key': () => import('../providers/hmac-key/index.js'),
  http: () => import('../providers/http/index.js'),
  // targets
  'redis-keyset': () => import('../providers/redis-keyset/index.js'),
  haproxy: () => import('../providers/haproxy/index.js'),
  caddy: () => import('../providers/caddy/index.js'),
  nginx: () => import('../providers/nginx/index.js'),
  kong: () => import('../providers/kong/index.js'),
  webhook: () => import('../providers/webhook/index.js'),
  'aws-api-gateway': () => import('../providers/aws-api-gateway/index.js'),
  'kubernetes-secret': () => import('../providers/kubernetes-secret/index.js'),
  // authenticators (delivery)
  'attestation-jwt': () => import('../providers/attestation-jwt/index.js'),
  'client-key': () => import('../providers/client-key/index.js'),
  'kubernetes-service-account': () => import('../providers/kubernetes-service-account/index.js'),
  oidc: () => import('../providers/oidc/index.js'),
});
