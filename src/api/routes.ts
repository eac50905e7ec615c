/**
 * The admin API as a RouteModule of `rekey server`, under /api/v1, in a fastify scope of its
 * own. Every request is authenticated first (src/api/auth.ts), then, per operation: the
 * token's scope (403), the request against the operation's schemas (400), for actions the
 * `Idempotency-Key` (src/api/idempotency.ts), the handler, and the answer stripped to its
 * schema, so a field no schema names never leaves the server. Actions write an audit event
 * `api.<operationId>` naming the caller (`token:<name>`); the engine's own events name it too.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { JsonValue } from '../core/ports.js';
import { describeError, RekeyError } from '../core/errors.js';
import type { RouteModule } from '../http/server.js';
import type { Runtime } from '../runtime.js';
import { describeInfraFailure } from '../cli/failures.js';
import { Authenticator } from './auth.js';
import { sessionsOf } from './sessions.js';
import { claim, IDEMPOTENCY_KEY_PATTERN, keepFresh, release, requestHash, settle } from './idempotency.js';
import { actionRoutes } from './actions.js';
import { verificationRoutes, verificationsOf } from './verifications.js';
import { openapiRoute } from './openapi.js';
import { historyRoutes } from './read-history.js';
import { keyRoutes } from './keys.js';
import { secretRoutes } from './read-secrets.js';
import { ApiProblem, sendProblem, type ProblemCode } from './problems.js';
import { API_PREFIX, type ApiRoute, type Caller } from './route.js';

/** Every operation of the API; the OpenAPI document is generated from this list. */
export const apiRoutes: readonly ApiRoute[] = [...secretRoutes, ...historyRoutes, ...actionRoutes, ...verificationRoutes, ...keyRoutes, openapiRoute(() => apiRoutes)];

export const adminApiRoutes: RouteModule = async (app: FastifyInstance, runtime: Runtime, { admission }) => {
  const auth = new Authenticator(runtime.db, admission, sessionsOf(runtime));
  const log = runtime.log.child({ component: 'api' });
  // Background audit verifications: this server takes up one another server stopped (or lost), and stops its own (between two batches) when it closes.
  app.addHook('onReady', () => verificationsOf(runtime).resumeEvery());
  app.addHook('onClose', () => verificationsOf(runtime).close());
  await app.register(
    (api, _options, done) => {
      api.addHook('onRequest', auth.hook);
      api.setNotFoundHandler((_request, reply) => sendProblem(reply, 'REKEY_API_NOT_FOUND', 'no operation at this path'));
      api.setErrorHandler((error: FastifyError | Error, _request, reply) => answerError(error, reply, runtime, log));
      for (const definition of apiRoutes) {
        api.route({ method: definition.method, url: definition.path, handler: (request, reply) => handle(definition, runtime, auth.caller(request), request, reply) });
      }
      done();
    },
    { prefix: API_PREFIX },
  );
};

async function handle(definition: ApiRoute, runtime: Runtime, caller: Caller, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const params = parse(definition.params, request.params, 'path');
  if (!permitted(definition, caller, params)) throw new ApiProblem('REKEY_API_FORBIDDEN', `needs scope ${definition.scope ?? ''}`);
  const query = parse(definition.query, request.query, 'query');
  const body = parse(definition.body, request.body ?? {}, 'body');
  const status = definition.status ?? 200;
  const header = request.headers['idempotency-key'];
  if (header !== undefined && (!definition.action || typeof header !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(header))) {
    throw new ApiProblem('REKEY_API_INVALID_REQUEST', 'Idempotency-Key is 1-200 printable ASCII characters, on actions only');
  }
  const key = header;
  const act = async () => definition.response.parse(await definition.handler({ runtime, caller, params, query, body, idempotencyKey: key })) as JsonValue;
  if (!definition.action) return reply.code(status).send(await act());

  const tokenId = caller.principal.id;
  let held: { key: string; claim: string; kept: { stop(): void } } | undefined;
  if (key !== undefined) {
    const claimed = await claim(runtime.db, tokenId, key, requestHash(definition.method, request.url, body));
    if (claimed.replay) return reply.code(claimed.replay.status).header('idempotent-replayed', 'true').send(claimed.replay.response);
    // Refreshed while the action runs (a whole-log walk takes minutes), so a retry is told it is in progress instead of acting again.
    held = { key, claim: claimed.claim, kept: keepFresh(runtime.db, tokenId, key, claimed.claim) };
  }
  try {
    let answer: JsonValue;
    try {
      answer = await act();
      await runtime.db.$transaction((tx) =>
        runtime.audit.append(tx, {
          actor: caller.actor,
          action: `api.${definition.operationId}`,
          secret: typeof (params as { name?: unknown }).name === 'string' ? (params as { name: string }).name : null,
          data: { status, ...(key !== undefined ? { idempotencyKey: key } : {}) },
        }),
      );
    } catch (error) {
      if (held) await release(runtime.db, tokenId, held.key, held.claim).catch(() => undefined);
      throw error;
    }
    // Nothing is written when the claim was taken over (this request looked dead): the answer kept is its taker's.
    if (held) await settle(runtime.db, tokenId, held.key, held.claim, status, answer);
    return reply.code(status).send(answer);
  } finally {
    held?.kept.stop();
  }
}

function permitted(definition: ApiRoute, caller: Caller, params: unknown): boolean {
  if (!definition.scope) return true;
  if (definition.reach === 'secret') return caller.access.allows(definition.scope, (params as { name: string }).name);
  if (definition.reach === 'some') return caller.access.holds(definition.scope);
  return caller.access.allows(definition.scope);
}

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return {} as T;
  // PostgreSQL's text holds no NUL: a name, cursor or filter with one is the caller's error, not the database's 500.
  const nul = Object.entries(value as Record<string, unknown>).find(([, v]) => [v].flat().some((s) => typeof s === 'string' && s.includes('\0')));
  if (nul) throw new ApiProblem('REKEY_API_INVALID_REQUEST', undefined, [{ path: `${where}.${nul[0]}`, message: 'a NUL character' }]);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // Paths and zod's messages only: the values sent are never echoed.
  const issues = result.error.issues.map((issue) => ({ path: [where, ...issue.path.map(String)].join('.'), message: issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message.slice(0, 200) }));
  throw new ApiProblem('REKEY_API_INVALID_REQUEST', undefined, issues);
}

const ENGINE_CODES: Partial<Record<string, ProblemCode>> = {
  REKEY_ERR_UNKNOWN: 'REKEY_API_NOT_FOUND',
  REKEY_ERR_CONFIG: 'REKEY_API_CONFLICT',
  REKEY_ERR_INVALID: 'REKEY_API_CONFLICT',
  REKEY_ERR_CONFLICT: 'REKEY_API_CONFLICT',
  REKEY_ERR_UNAVAILABLE: 'REKEY_API_UNAVAILABLE',
  // The run is recorded; the detail says a worker's reconcile pass starts it.
  REKEY_ERR_NOT_QUEUED: 'REKEY_API_UNAVAILABLE',
};

/** Answers any error of an authenticated route as a problem (also the dashboard's session routes). */
export function answerError(error: FastifyError | Error, reply: FastifyReply, runtime: Runtime, log: Runtime['log']): FastifyReply {
  if (error instanceof ApiProblem) return sendProblem(reply, error.code, error.detail, error.issues);
  // RekeyError messages name secrets and versions only, never a value (src/core/errors.ts).
  if (error instanceof RekeyError) return sendProblem(reply, ENGINE_CODES[error.code] ?? 'REKEY_API_INTERNAL', error.message);
  const status = (error as FastifyError).statusCode;
  if (status && status >= 400 && status < 500) return sendProblem(reply, 'REKEY_API_INVALID_REQUEST', (error as FastifyError).code);
  if (describeInfraFailure(error, runtime.settings)) return sendProblem(reply, 'REKEY_API_UNAVAILABLE');
  log.error({ error: describeError(error) }, 'admin API request failed');
  return sendProblem(reply, 'REKEY_API_INTERNAL');
}
