/**
 * The delivery endpoints (docs/delivery.md): POST /v1/token here, GET /v1/secrets/{name}
 * (secrets.ts) and the change stream GET /v1/events (events.ts).
 *
 * POST /v1/token: token exchange shaped as RFC 8693. A workload presents
 * a credential (`subject_token`), an authenticator of `delivery.authenticators` turns it into
 * a subject, a grant of `delivery.grants` allows it a token for the requested `audience`, and
 * rekey answers with a short-lived JWT signed with the current version of the grant's signing
 * key (src/core/token-exchange.ts). The body is form-encoded (RFC 8693) or JSON.
 *
 * Admission (src/http/admission.ts, shared with every authenticated route) is taken before
 * the body is read; a request that fails authentication (or never gets that far: a malformed
 * request), and an authenticated one for an audience no grant serves, counts against its
 * source's failures, never against any authenticated caller; one that gets its token (or value,
 * or stream) makes its source proven, so it keeps its share of admission through a flood from
 * addresses that never authenticated. Answers carry
 * `Cache-Control: no-store`; errors are RFC 6749 §5.2 codes with fixed descriptions, never an
 * echo of what was sent.
 */
import { DeliveryError, MAX_CREDENTIAL_LENGTH, type DeliveryCode } from '../core/delivery.js';
import { describeError } from '../core/errors.js';
import { SecretValue } from '../core/secret-value.js';
import { exchangeToken } from '../core/token-exchange.js';
import { isRefusal } from '../http/admission.js';
import { lazyChildLoggers } from '../log.js';
import type { RouteModule } from '../http/server.js';
import type { FastifyError } from 'fastify';
import { DeliveryContext, refuse, TICKET } from './context.js';
import { eventsRoute } from './events.js';
import { secretsRoute } from './secrets.js';

export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
/** subject_token_type values accepted: every credential our authenticators take is a JWT. */
const SUBJECT_TOKEN_TYPES = [JWT_TOKEN_TYPE, 'urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:access_token'];

/**
 * The largest POST /v1/token body read: a subject_token at its longest (MAX_CREDENTIAL_LENGTH,
 * percent-encoded at worst three bytes a character) and the other fields. A longer one is
 * answered 413 unread, instead of parsed from up to the server's 1 MiB body limit.
 */
const TOKEN_BODY_LIMIT = 3 * MAX_CREDENTIAL_LENGTH + 4096;

const ANSWERS: Record<DeliveryCode, { status: number; error: string; description: string }> = {
  unauthenticated: { status: 400, error: 'invalid_request', description: 'the subject token is not valid' },
  no_grant: { status: 400, error: 'invalid_target', description: 'no grant issues tokens for this audience' },
  forbidden: { status: 400, error: 'invalid_target', description: 'the subject is not allowed a token for this audience' },
  rate_limited: { status: 429, error: 'slow_down', description: 'too many requests' },
  unverifiable: { status: 503, error: 'temporarily_unavailable', description: 'try again shortly' },
  unavailable: { status: 503, error: 'temporarily_unavailable', description: 'try again shortly' },
};

export const deliveryRoutes: RouteModule = async (app, runtime, shared) => {
  const ctx = new DeliveryContext(runtime, shared.admission);
  // Without the change feed, cached entries would live their full age after every rotation;
  // not awaited: a server starts while Redis is away.
  void ctx.follow().catch((error: unknown) => runtime.log.warn({ error: describeError(error) }, 'delivery cache: change feed unavailable; entries expire by age only'));
  let endStreams = () => {};
  // Open streams would keep the server from closing.
  app.addHook('preClose', (done) => {
    endStreams();
    ctx.close();
    done();
  });
  app.addHook('onClose', () => ctx.end());
  await app.register((scope, _options, registered) => {
    // Each request's logger (its request id bound) is made only if the request logs something.
    scope.setChildLoggerFactory(lazyChildLoggers as unknown as Parameters<typeof scope.setChildLoggerFactory>[0]);
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    scope.decorateRequest(TICKET, null);
    // A body the parsers refuse (too large, not JSON, another type) never reaches a route: answered
    // as RFC 6749 errors with a fixed text, as every other answer here, not with fastify's own
    // error object. Its admission slot counts as a failure (admission.ts).
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const status = error.statusCode ?? 500;
      if (status >= 500) {
        request.log.error({ error: describeError(error) }, 'delivery request failed');
        return refuse(reply, 500, 'server_error', 'the request could not be answered');
      }
      return refuse(reply, status, 'invalid_request', status === 413 ? 'the request body is too large' : 'the request body cannot be read');
    });
    scope.addHook('onRequest', (request, reply, done) => {
      const admitted = shared.admission.enter(request.ip, reply.raw);
      if (isRefusal(admitted)) {
        reply.header('retry-after', String(admitted.retryAfter));
        void refuse(reply, admitted.status, admitted.status === 503 ? 'temporarily_unavailable' : 'slow_down', 'too many requests');
        return;
      }
      ctx.hold(request, admitted);
      done();
    });

    scope.post('/v1/token', { bodyLimit: TOKEN_BODY_LIMIT }, async (request, reply) => {
      try {
        const fields = (request.body && typeof request.body === 'object' ? request.body : {}) as Record<string, unknown>;
        const field = (name: string) => (typeof fields[name] === 'string' ? fields[name] : undefined);
        const failed = (status: number, error: string, description: string) => {
          shared.admission.failed(request.ip);
          return refuse(reply, status, error, description);
        };
        if (field('grant_type') !== GRANT_TYPE) return failed(400, 'unsupported_grant_type', `grant_type must be ${GRANT_TYPE}`);
        const subjectToken = field('subject_token');
        if (!subjectToken) return failed(400, 'invalid_request', 'subject_token is required');
        if (!SUBJECT_TOKEN_TYPES.includes(field('subject_token_type') ?? '')) return failed(400, 'invalid_request', 'subject_token_type must be a JWT token type');
        // A JSON audience that is not a string (a list, an object) is not "no audience": read as
        // one, it got a token for whatever audience the subject's first grant serves.
        if (fields.audience !== undefined && typeof fields.audience !== 'string') return failed(400, 'invalid_request', 'audience must be a string');
        const requested = field('requested_token_type');
        if (requested !== undefined && requested !== JWT_TOKEN_TYPE) return failed(400, 'invalid_request', `requested_token_type must be ${JWT_TOKEN_TYPE}`);
        const delivery = await ctx.config();
        if (!delivery) return failed(404, 'invalid_request', 'token exchange is not configured');

        const minted = await exchangeToken(ctx.deps(), delivery, SecretValue.of(subjectToken), field('audience')).catch((error: unknown) => {
          if (!(error instanceof DeliveryError)) throw error;
          if (error.code === 'unauthenticated' || error.code === 'unverifiable' || error.code === 'no_grant') shared.admission.failed(request.ip);
          if (error.code === 'rate_limited') reply.header('retry-after', String(ctx.retryAfterSeconds()));
          return ANSWERS[error.code];
        });
        if ('status' in minted) return refuse(reply, minted.status, minted.error, minted.description);
        shared.admission.succeeded(request.ip);
        return reply
          .header('cache-control', 'no-store')
          .header('pragma', 'no-cache')
          .send({ access_token: minted.token, issued_token_type: JWT_TOKEN_TYPE, token_type: 'Bearer', expires_in: minted.expiresInSeconds });
      } catch (error) {
        request.log.error({ error: describeError(error) }, 'token exchange failed');
        return refuse(reply, 500, 'server_error', 'the token could not be issued');
      } finally {
        ctx.release(request);
      }
    });
    secretsRoute(scope, ctx);
    endStreams = eventsRoute(scope, ctx);
    registered();
  });
};
