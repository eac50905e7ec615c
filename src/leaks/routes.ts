/**
 * The leak receivers as a RouteModule of `rekey server`. All four live in one encapsulated
 * fastify scope whose only body parser keeps `application/json` bodies as raw bytes (up
 * to 1 MiB): signatures are checked over exactly what was sent. In that scope, in order:
 *
 *   1. onRequest: admission (src/http/admission.ts): 503 when the process already has its
 *      cap of requests awaiting authentication, 429 when the source is over its limit of
 *      failed authentications and such sources already hold their share; nothing is charged
 *      to any sender here, but a request that ends before step 3 (too slow, too large, of
 *      another type, its client gone) counts as a failed authentication of its source;
 *   2. the receiver's `leaks:` section from the applied config (404 when absent);
 *   3. authenticate(): 401 with nothing recorded, only rekey_webhook_rejected_total and the
 *      source's failed-authentication bucket;
 *   4. the receiver's own bucket (`leaks.rateLimit`), charged only by authenticated requests:
 *      429 when empty, so no one but the sender can use up the sender's allowance;
 *   5. handle(): parse (400 when malformed), then report through core.
 *
 * Answers never echo the request. No token reaches a log line: nothing here logs a body
 * or a header, and rejections are not logged at all.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeError, RekeyError } from '../core/errors.js';
import { cronEveryAtMost } from '../housekeeping.js';
import { isRefusal, type Ticket } from '../http/admission.js';
import { RateLimiter } from '../http/rate-limit.js';
import type { RouteModule } from '../http/server.js';
import type { Runtime } from '../runtime.js';
import { awsHealthReceiver } from './aws-health.js';
import { readCredential } from '../config/environment.js';
import type { GithubConfig, LeaksConfig } from '../config/leaks.js';
import { githubReceiver } from './github.js';
import { GithubKeys } from './github-keys.js';
import { gitguardianReceiver } from './gitguardian.js';
import { HmslIndex, type PassReason } from './hmsl.js';
import { leakMetrics, type LeakMetrics, type ReceiverName } from './metrics.js';
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

export const leakRoutes: RouteModule = async (app: FastifyInstance, runtime: Runtime, { admission }) => {
  const metrics = leakMetrics(runtime.metrics.registry);
  const ctx = receiverContext(runtime, metrics);
  // Keyed by receiver: each sender's allowance is its own, and only its authenticated requests use it.
  const allowance = new RateLimiter({ max: 60, windowMs: 60_000 });
  const byPath = new Map(receivers.map((r) => [r.path, r]));
  const tickets = new WeakMap<FastifyRequest, Ticket>();
  const misconfigured = new Once<LeaksConfig, ReceiverName>();
  watchHmsl(app, runtime, ctx);

  await app.register((scope, _options, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_request, body, done) => done(null, body));

    scope.addHook('onRequest', async (request, reply) => {
      const receiver = byPath.get(request.routeOptions.url ?? '');
      if (!receiver) return;
      const admitted = admission.enter(request.ip, reply.raw);
      if (!isRefusal(admitted)) {
        // A request that ends before its authentication (a body too slow, too large or of another
        // type; a client gone) counts as a failed authentication of its source (Admission.enter).
        tickets.set(request, admitted);
        return;
      }
      metrics.rejected(receiver.name, admitted.reason);
      // Returning the reply ends the request here: no body is read, the handler never runs.
      return reply.code(admitted.status).header('retry-after', String(admitted.retryAfter)).send({ error: admitted.status === 503 ? 'busy' : 'too many requests' });
    });

    /** Authentication is over (or never needed: no such receiver, our own failure): the slot goes back, nothing is charged. */
    const settle = (request: FastifyRequest) => {
      tickets.get(request)?.release();
      tickets.delete(request);
    };

    scope.setErrorHandler((error: FastifyError | Rejection | RekeyError, request, reply) => {
      // fastify's own refusals (413, 415, bad framing) come before authentication: counted when the response closes (Admission.enter).
      if (!isFastifyRefusal(error)) settle(request);
      return answerError(error, request, reply, byPath, metrics, runtime);
    });

    for (const receiver of receivers) {
      scope.post(receiver.path, async (request, reply) => {
        const receivedAt = new Date();
        const config = await leaksConfig(runtime);
        const section = config ? receiver.section(config) : undefined;
        if (section === undefined) {
          settle(request);
          return reply.code(404).send({ error: 'not found' });
        }
        const raw = { headers: request.headers, body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0), receivedAt };
        let auth: unknown;
        try {
          auth = await receiver.authenticate(raw, section, ctx);
          admission.succeeded(request.ip);
        } catch (error) {
          if (error instanceof Rejection && error.status === 401) admission.failed(request.ip);
          if (error instanceof RekeyError && error.code === 'REKEY_ERR_CONFIG') {
            // Our side: the receiver's credential reference does not resolve (a variable unset on this
            // process, a malformed whsec_). Every request gets this until someone fixes it, signed or not,
            // so it is logged at error once per receiver and config revision, and at debug after that.
            // Not charged to the source: its authentication never ran (see src/http/admission.ts).
            const first = misconfigured.first(config!, receiver.name);
            runtime.log[first ? 'error' : 'debug']({ receiver: receiver.name, error: describeError(error) }, 'leak receiver misconfigured');
            return reply.code(503).send({ error: 'receiver not available' });
          }
          throw error;
        } finally {
          settle(request);
        }
        const { max, window } = config!.rateLimit;
        allowance.configure(max, window);
        if (!allowance.take(receiver.name)) {
          metrics.rejected(receiver.name, 'rate_limited');
          return reply.code(429).header('retry-after', String(allowance.retryAfterSeconds())).send({ error: 'too many requests' });
        }
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
    hmsl: new HmslIndex(runtime, runtime.log.child({ component: 'hmsl-index' })),
    now: () => Date.now(),
    credential: (ref, where) => readCredential(ref, process.env, where),
    githubKeys(config: GithubConfig) {
      // One cache for the setting in force: a config change replaces it.
      const id = JSON.stringify([config.publicKeys, config.refresh, config.minRefresh, config.githubToken?.name]);
      if (github?.id !== id) {
        const token = config.githubToken;
        const keys = new GithubKeys({
          source: config.publicKeys,
          minRefreshMs: config.minRefresh,
          token: token ? () => readCredential(token, process.env, 'leaks.github.githubToken') : undefined,
          log,
        });
        // Replaces the job of the previous setting, if any.
        runtime.housekeeping.schedule({ name: 'github-keys', schedule: cronEveryAtMost(config.refresh), run: () => keys.refresh() });
        github = { id, keys };
      }
      return github.keys;
    },
  };
}

/**
 * Keeps GitGuardian's HMSL index warm while that receiver is configured, so an incident rarely
 * waits for store reads: from the start (in the background), after every promotion (the change
 * feed's `rotated`, from any process), and every minute (a version a store could not give, a
 * pending one, a change missed while Redis was away). Started once the server listens: a server
 * that cannot (its port taken) closes its runtime at once, and a pass begun before would open a
 * database connection after that and keep the process from exiting.
 */
function watchHmsl(app: FastifyInstance, runtime: Runtime, ctx: ReceiverContext): void {
  const refresh = async (reason: Exclude<PassReason, 'incident'>) => {
    if ((await leaksConfig(runtime))?.gitguardian) await ctx.hmsl.refresh(reason);
  };
  const failed = (error: unknown) => runtime.log.warn({ error: describeError(error) }, 'hmsl index: refresh failed');
  let unsubscribe: (() => void) | undefined;
  let closed = false;
  app.addHook('onListen', (done) => {
    refresh('start').catch(failed);
    runtime.housekeeping.schedule({ name: 'hmsl-index', schedule: '1m', run: () => refresh('minutely') });
    runtime.changes
      .subscribe((change) => {
        if (change.event !== 'rotated') return;
        refresh('promotion').catch(failed);
      })
      .then(
        (stop) => (closed ? stop() : (unsubscribe = stop)),
        // Redis away at start: the minutely refresh still runs.
        (error: unknown) => runtime.log.warn({ error: describeError(error) }, 'hmsl index: cannot follow promotions'),
      );
    done();
  });
  app.addHook('onClose', async () => {
    closed = true;
    unsubscribe?.();
    await runtime.housekeeping.cancel('hmsl-index');
  });
}

/** Whether a (config revision, receiver) pair is seen for the first time; a revision's pairs go with it. */
class Once<Revision extends object, Name> {
  private readonly seen = new WeakMap<Revision, Set<Name>>();

  first(revision: Revision, name: Name): boolean {
    const names = this.seen.get(revision) ?? new Set<Name>();
    this.seen.set(revision, names);
    if (names.has(name)) return false;
    names.add(name);
    return true;
  }
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
  const status = statusOf(error);
  if (isFastifyRefusal(error)) {
    // fastify's own refusals: body too large, wrong content type, bad framing.
    if (name) metrics.rejected(name, status === 413 ? 'too_large' : status === 415 ? 'content_type' : 'malformed');
    return reply.code(status).send({ error: status === 413 ? 'payload too large' : status === 415 ? 'unsupported media type' : 'bad request' });
  }
  if (error instanceof RekeyError && error.code === 'REKEY_ERR_UNAVAILABLE') {
    // Our side: before authentication (GitHub's keys not loaded), or after it (a store that could not be
    // read to match a GitGuardian hmsl_hash; nothing recorded). The sender retries later. Not logged per
    // request (an unauthenticated flood must not become a flood of log lines): the failure behind it is.
    return reply.code(503).header('retry-after', '30').send({ error: 'receiver not available' });
  }
  if (error instanceof RekeyError && error.code === 'REKEY_ERR_CONFIG') {
    // Our side, after authentication (a misconfigured credential is answered in the route). The sender retries later.
    runtime.log.error({ receiver: name, error: describeError(error) }, 'leak receiver misconfigured');
    return reply.code(503).send({ error: 'receiver not available' });
  }
  runtime.log.error({ receiver: name, error: describeError(error) }, 'leak receiver failed');
  return reply.code(500).send({ error: 'internal error' });
}

function statusOf(error: FastifyError | Rejection | RekeyError): number {
  return 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
}

/** fastify's own 4xx refusals of a request (body too large, wrong content type, bad framing): before any authentication. */
function isFastifyRefusal(error: FastifyError | Rejection | RekeyError): boolean {
  const status = statusOf(error);
  return !(error instanceof Rejection) && status >= 400 && status < 500;
}
