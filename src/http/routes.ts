/** The receivers `rekey server` adds to health and metrics: one module per feature. */
import { adminApiRoutes } from '../api/routes.js';
import { dashboardRoutes } from '../dashboard/routes.js';
import { deliveryRoutes } from '../delivery/routes.js';
import { pubsubPushRoutes } from '../events/pubsub-push.js';
import { leakRoutes } from '../leaks/routes.js';
import { jwksRoutes } from '../jwks/routes.js';
import type { RouteModule } from './server.js';

export const serverRoutes: readonly RouteModule[] = [
  pubsubPushRoutes, // POST /events/pubsub: Secret Manager rotation notifications
  leakRoutes, // POST /webhooks/{github-secret-scanning,gitguardian,aws-health,leaks}: leak reports
  jwksRoutes, // GET /.well-known/jwks.json: public keys of live signing-key versions
  deliveryRoutes, // POST /v1/token, GET /v1/secrets/{name}, GET /v1/events: delivery to workloads (delivery.grants)
  adminApiRoutes, // /api/v1: the admin API (scoped tokens, OpenAPI at /api/v1/openapi.json)
  dashboardRoutes, // /ui: the dashboard (a session cookie for a token; everything else through /api/v1)
];
