/**
 * GET /v1/secrets/{name}: the current value of a secret, for a subject a value grant allows
 * it (src/core/value-delivery.ts). The credential comes as `Authorization: Bearer <credential>`
 * (whatever the grant's authenticator takes: an attestation token, an OIDC token, a client
 * key). The answer carries the version, an expiry no later than the next scheduled rotation,
 * `Cache-Control: no-store` and the version's ETag; a request with `If-None-Match` of the
 * current version gets 304 with nothing read, so polling is cheap.
 */
import { describeError } from '../core/errors.js';
import { DeliveryError, type DeliveryCode } from '../core/delivery.js';
import { SecretValue } from '../core/secret-value.js';
import { deliverValue } from '../core/value-delivery.js';
import type { FastifyInstance } from 'fastify';
import { bearer, refuse, type DeliveryContext } from './context.js';

const ANSWERS: Record<DeliveryCode, { status: number; error: string; description: string }> = {
  unauthenticated: { status: 401, error: 'invalid_token', description: 'the credential is not valid' },
  no_grant: { status: 404, error: 'not_found', description: 'no grant delivers values' },
  forbidden: { status: 403, error: 'insufficient_scope', description: 'the subject may not read this secret' },
  rate_limited: { status: 429, error: 'slow_down', description: 'too many requests' },
  unverifiable: { status: 503, error: 'temporarily_unavailable', description: 'try again shortly' },
  unavailable: { status: 503, error: 'temporarily_unavailable', description: 'try again shortly' },
};

export function secretsRoute(scope: FastifyInstance, ctx: DeliveryContext): void {
  // Secret names may hold '/', so the name is the rest of the path. No HEAD route (fastify adds
  // one to every GET by default): HEAD ran the hand-out, audited a value it never sent, and
  // told its length.
  scope.get<{ Params: { '*': string } }>('/v1/secrets/*', { exposeHeadRoute: false }, async (request, reply) => {
    try {
      const credential = bearer(request);
      if (!credential) {
        ctx.admission.failed(request.ip);
        return refuse(reply, 401, 'invalid_token', 'a bearer credential is required');
      }
      const delivery = await ctx.config();
      if (!delivery) {
        ctx.admission.failed(request.ip);
        return refuse(reply, 404, 'not_found', 'value delivery is not configured');
      }
      const ifNoneMatch = request.headers['if-none-match'];
      const answer = await deliverValue(ctx.deps(), delivery, SecretValue.of(credential), request.params['*'], ifNoneMatch).catch((error: unknown) => {
        if (!(error instanceof DeliveryError)) throw error;
        if (error.code === 'unauthenticated' || error.code === 'unverifiable' || error.code === 'no_grant') ctx.admission.failed(request.ip);
        if (error.code === 'rate_limited') reply.header('retry-after', String(ctx.retryAfterSeconds()));
        return ANSWERS[error.code];
      });
      if ('error' in answer) return refuse(reply, answer.status, answer.error, answer.description);
      ctx.admission.succeeded(request.ip);
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache').header('etag', answer.etag);
      if (answer.status === 'not_modified') return reply.code(304).send();
      return reply.send({ secret: request.params['*'], version: answer.version, value: answer.value.reveal(), expiresAt: answer.expiresAt.toISOString() });
    } catch (error) {
      request.log.error({ error: describeError(error) }, 'value delivery failed');
      return refuse(reply, 500, 'server_error', 'the value could not be read');
    } finally {
      ctx.release(request);
    }
  });
}
