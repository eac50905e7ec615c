/**
 * The one explicit list of providers. Adding a provider is one import and one entry here.
 */
import awsApiGateway from '../providers/aws-api-gateway/index.js';
import awsIamAccessKey from '../providers/aws-iam-access-key/index.js';
import awsSecretsManager from '../providers/aws-secrets-manager/index.js';
import caddy from '../providers/caddy/index.js';
import gcpSecretManager from '../providers/gcp-secret-manager/index.js';
import haproxy from '../providers/haproxy/index.js';
import hmacKey from '../providers/hmac-key/index.js';
import http from '../providers/http/index.js';
import jwtSigningKey from '../providers/jwt-signing-key/index.js';
import kong from '../providers/kong/index.js';
import kubernetesSecret from '../providers/kubernetes-secret/index.js';
import local from '../providers/local/index.js';
import nginx from '../providers/nginx/index.js';
import postgresRole from '../providers/postgres-role/index.js';
import random from '../providers/random/index.js';
import redisAcl from '../providers/redis-acl/index.js';
import redisKeyset from '../providers/redis-keyset/index.js';
import webhook from '../providers/webhook/index.js';
import type { AnyProviderModule } from './core/provider.js';

export const providers: readonly AnyProviderModule[] = [
  // stores
  local,
  awsSecretsManager,
  gcpSecretManager,
  // issuers
  random,
  postgresRole,
  redisAcl,
  awsIamAccessKey,
  jwtSigningKey,
  hmacKey,
  http,
  // targets
  redisKeyset,
  haproxy,
  caddy,
  nginx,
  kong,
  webhook,
  awsApiGateway,
  kubernetesSecret,
];
