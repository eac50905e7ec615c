/**
 * The leak receivers as a RouteModule of `rekey server`. All four live in one encapsulated
 * fastify scope whose only body parser keeps `application/json` bodies as raw bytes (up
 * to 1 MiB): signatures are checked over exactly what was sent. In that scope, in order:
 *
 *   1. onRequest: the per-source-IP token bucket (429 when empty), before any body is read;
 *   2. the receiver's `leaks:` section from the applied config (404 when absent);
 *   3. authenticate(): 401 with nothing recorded, only rekey_webhook_rejected_total;
 *   4. handle(): parse (400 when malformed), then report through core.
 *
 * Answers never echo the request. No token reaches a log line: nothing here logs a body
 * or a header, and rejections are not logged at all.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { resolveCredential } from '../core/credential.js';
import { describeError, RekeyError } from '../core/errors.js';
import type { RouteModule } from '../http/server.js';
import type { Runtime } from '../runtime.js';
import { awsHealthReceiver } from './aws-health.js';
import type { GithubConfig, LeaksConfig } from './config.js';
import { githubReceiver } from './github.js';
import { GithubKeys } from './github-keys.js';
import { gitguardianReceiver } from './gitguardian.js';
import { HmslIndex } from './hmsl.js';
import { leakMetrics, type LeakMetrics, type ReceiverName } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { type Receiver, type ReceiverContext, Rejection } from './receiver.js';
import { LeakReporter } from './report.js';
import { webhookReceiver } from './standard-webhook.js';

/** Bodies above this are refused with 413 before they are buffered whole. */
export const MAX_BODY_BYTES = 1024 * 1024;

export const receivers: ReadonlyArray<Receiver<unknown, unknown>> = [
  githubReceiver,
  gitguardianReceiver,
  awsHealthReceiver,
  webhookReceiver,
] as ReadonlyArray<Receiver<unknown, unknown>>;

export const leakRoutes: RouteModule = async (app: FastifyInstance, runtime: Runtime) => {
  const metrics = leakMetrics(runtime.metrics.registry);
  const ctx = receiverContext(runtime, metrics);
  const limiter = new RateLimiter({ max: 60, windowMs: 60_000 });
  const byPath = new Map(receivers.map((r) => [r.path, r]));

  await app.register((scope, _options, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_request, body, done) => done(null, body));

    scope.addHook('onRequest', async (request, reply) => {
      const receiver = byPath.get(request.routeOptions.url ?? '');
      if (!receiver) return;
      const { max, window } = (await leaksConfig(runtime))?.rateLimit ?? { max: 60, window: 60_000 };
      limiter.configure(max, window);
      if (limiter.take(request.ip)) return undefined;
      metrics.rejected(receiver.name, 'rate_limited');
      // Returning the reply ends the request here: no body is read, the handler never runs.
      return reply.code(429).header('retry-after', String(Math.ceil(window / max / 1000))).send({ error: 'too many requests' });
    });

    scope.setErrorHandler((error: FastifyError | Rejection | RekeyError, request, reply) => answerError(error, request, reply, byPath, metrics, runtime));

    for (const receiver of receivers) {
      scope.post(receiver.path, async (request, reply) => {
        const receivedAt = new Date();
        const config = await leaksConfig(runtime);
        const section = config ? receiver.section(config) : undefined;
        if (section === undefined) return reply.code(404).send({ error: 'not found' });
        const raw = { headers: request.headers, body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0), receivedAt };
        const auth = await receiver.authenticate(raw, section, ctx);
        const answer = await receiver.handle(raw, section, ctx, auth);
        return reply.code(answer.status).send(answer.body);
      });
    }
    done();
  });
};

function receiverContext(runtime: Runtime, metrics: LeakMetrics): ReceiverContext {
  const log = runtime.log.child({ component: 'leaks' });
  let github: { id: string; keys: GithubKeys } | undefined;
  return {
    runtime,
    reporter: new LeakReporter(runtime, metrics),
    hmsl: new HmslIndex(runtime, log),
    now: () => Date.now(),
    credential: (ref, where) => resolveCredential(ref, process.env, where),
    githubKeys(config: GithubConfig) {
      // One cache for the setting in force: a config change replaces it.
      const id = JSON.stringify([config.publicKeys, config.refresh, config.minRefresh, config.githubToken?.name]);
      if (github?.id !== id) {
        const token = config.githubToken;
        const keys = new GithubKeys({
          source: config.publicKeys,
          refreshMs: config.refresh,
          minRefreshMs: config.minRefresh,
          token: token ? () => resolveCredential(token, process.env, 'leaks.github.githubToken') : undefined,
          log,
        });
        github = { id, keys };
      }
      return github.keys;
    },
  };
}

/** The applied `leaks:` section; undefined before any config is applied (every receiver is then absent). */
async function leaksConfig(runtime: Runtime): Promise<LeaksConfig | undefined> {
  try {
    return (await runtime.resolver.config()).leaks;
  } catch (error) {
    if (error instanceof RekeyError && error.code === 'REKEY_ERR_CONFIG') return undefined;
    throw error;
  }
}

function answerError(
  error: FastifyError | Rejection | RekeyError,
  request: FastifyRequest,
  reply: FastifyReply,
  byPath: ReadonlyMap<string, Receiver<unknown, unknown>>,
  metrics: LeakMetrics,
  runtime: Runtime,
): FastifyReply {
  const name: ReceiverName | undefined = byPath.get(request.routeOptions.url ?? '')?.name;
  if (error instanceof Rejection) {
    if (name) metrics.rejected(name, error.reason);
    return reply.code(error.status).send({ error: error.status === 401 ? 'unauthorized' : 'bad request' });
  }
  const status = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
  if (status === 413 || status === 415 || (status >= 400 && status < 500)) {
    // fastify's own refusals: body too large, wrong content type, bad framing.
    if (name) metrics.rejected(name, status === 413 ? 'too_large' : status === 415 ? 'content_type' : 'malformed');
    return reply.code(status).send({ error: status === 413 ? 'payload too large' : status === 415 ? 'unsupported media type' : 'bad request' });
  }
  if (error instanceof RekeyError && error.code === 'REKEY_ERR_CONFIG') {
    // Our side: a credential reference that does not resolve. The sender retries later.
    runtime.log.error({ receiver: name, error: describeError(error) }, 'leak receiver misconfigured');
    return reply.code(503).send({ error: 'receiver not available' });
  }
  runtime.log.error({ receiver: name, error: describeError(error) }, 'leak receiver failed');
  return reply.code(500).send({ error: 'internal error' });
}
