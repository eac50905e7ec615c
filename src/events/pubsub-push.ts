/**
 * POST /events/pubsub: Google Secret Manager rotation notifications, pushed by a Pub/Sub push
 * subscription (https://cloud.google.com/pubsub/docs/push). The OIDC token is checked first, in an
 * onRequest hook, before the body is even parsed, once the request is admitted (src/http/admission.ts:
 * 503 `busy` when the process has its cap of requests awaiting authentication, 429 `throttled` when
 * the source is over its limit of failed authentications and such sources hold their share). A
 * rejected push gets 401 and leaves no trace but a counter
 * (rekey_pubsub_push_total{outcome="unauthenticated"}) and a failure in its source's bucket.
 *
 * Then, for a SECRET_ROTATE message (https://cloud.google.com/secret-manager/docs/event-notifications),
 * `secretId` (projects/<number or id>/secrets/<id>) is matched to the managed secrets whose store
 * says it is that secret (SecretStore.references), and one rotation is requested with the idempotency key
 * `pubsub:<messageId>` (a redelivery joins the same run) and the message's timestamp (a message
 * older than the last rotation is stale). Answers, as Pub/Sub reads them (2xx acknowledges, anything
 * else is redelivered with backoff):
 * - 200 `{outcome: queued|joined|stale|scheduled}`: handled.
 * - 204: acknowledged and ignored: other event types (rekey's own writes publish SECRET_VERSION_ADD
 *   and SECRET_UPDATE, which must never start a rotation), and secrets rekey does not manage (logged;
 *   redelivering them would only storm).
 * - 400: not a push envelope. 401: authentication failed. 404: `events.pubsub` is not configured.
 * - 503: rekey could not decide now (keys unreachable, database down, no secret matched while some
 *   could not be opened here): Pub/Sub retries.
 *
 * A secret with a `schedule:` in rekey.yaml is rotated by rekey's cron; `rekey apply` mirrors that
 * schedule into Secret Manager, whose SECRET_ROTATE at the same moments would start a second run
 * whenever it arrives after the cron's run has promoted. Those are acknowledged as `scheduled`.
 */
import type client from 'prom-client';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { RekeyConfig, SecretSpec } from '../config/schema.js';
import type { ProviderResolver } from '../core/resolved.js';
import { RekeyError, describeError } from '../core/errors.js';
import { sharedCounter } from '../metrics.js';
import { isRefusal } from '../http/admission.js';
import type { RouteModule } from '../http/server.js';
import type { Runtime } from '../runtime.js';
import type { PubsubConfig } from '../config/events.js';
import { PushAuthenticator } from './push-auth.js';

export const PUBSUB_PATH = '/events/pubsub';

type Outcome =
  | 'queued'
  | 'joined'
  | 'stale'
  | 'scheduled'
  | 'ignored'
  | 'unknown_secret'
  | 'invalid'
  | 'unauthenticated'
  | 'busy'
  | 'throttled'
  | 'not_configured'
  | 'unavailable';

/** The push envelope (https://cloud.google.com/pubsub/docs/push#receive_push). Both spellings of ids appear. */
const envelope = z.object({
  message: z
    .object({
      attributes: z.record(z.string(), z.string()).default({}),
      data: z.string().optional(),
      messageId: z.string().min(1).optional(),
      message_id: z.string().min(1).optional(),
      publishTime: z.string().optional(),
      publish_time: z.string().optional(),
    })
    .loose()
    .refine((m) => (m.messageId ?? m.message_id) !== undefined, 'message.messageId is required'),
  subscription: z.string().min(1),
});

/** The route module `rekey server` registers (src/http/routes.ts). */
export const pubsubPushRoutes: RouteModule = (app: FastifyInstance, runtime: Runtime, { admission }) => {
  const counter = pushCounter(runtime.metrics.registry);
  const auth = new PushAuthenticator();
  const log = runtime.log.child({ component: 'pubsub-push' });
  /** The config each authenticated request was checked against, so its handler uses the same one. */
  const authenticated = new WeakMap<FastifyRequest, RekeyConfig>();
  // Problems met before a request is authenticated are logged at most once a minute, so that
  // unauthenticated traffic cannot turn into a flood of log lines.
  let lastWarning = 0;
  const warnBeforeAuth = (fields: Record<string, unknown>, message: string) => {
    if (Date.now() - lastWarning < 60_000) return;
    lastWarning = Date.now();
    log.warn(fields, message);
  };
  const reply = (res: FastifyReply, outcome: Outcome, status: number, body?: Record<string, unknown>) => {
    counter.inc({ outcome });
    return body ? res.code(status).send({ outcome, ...body }) : res.code(status).send();
  };

  const authenticate = async (request: FastifyRequest, res: FastifyReply) => {
    const ticket = admission.enter(request.ip, res.raw);
    if (isRefusal(ticket)) return reply(res.header('retry-after', String(ticket.retryAfter)), ticket.status === 503 ? 'busy' : 'throttled', ticket.status, {});
    try {
      return await check(request, res);
    } finally {
      ticket.release();
    }
  };

  const check = async (request: FastifyRequest, res: FastifyReply) => {
    let config: RekeyConfig;
    try {
      config = await runtime.resolver.config();
    } catch (error) {
      warnBeforeAuth({ error: describeError(error) }, 'pubsub push: no applied configuration to check it against');
      return reply(res, 'unavailable', 503, {});
    }
    const pubsub: PubsubConfig | undefined = config.events?.pubsub;
    if (!pubsub) return reply(res, 'not_configured', 404, { error: 'events.pubsub is not configured' });
    const result = await auth.authenticate(request.headers.authorization, pubsub);
    if (result.ok) {
      admission.succeeded(request.ip);
      authenticated.set(request, config);
      return;
    }
    if (result.reason === 'invalid') {
      admission.failed(request.ip);
      // No log line: a flood of forged pushes must not become a flood of log lines.
      return reply(res.header('www-authenticate', 'Bearer error="invalid_token"'), 'unauthenticated', 401, {});
    }
    warnBeforeAuth({ error: describeError(result.error) }, 'pubsub push: cannot get the token signing keys');
    return reply(res, 'unavailable', 503, {});
  };

  app.post(PUBSUB_PATH, { onRequest: authenticate }, async (request, res) => {
    const config = authenticated.get(request)!;
    const parsed = envelope.safeParse(request.body);
    if (!parsed.success) {
      log.warn({ issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'pubsub push: not a push envelope');
      return reply(res, 'invalid', 400, { error: 'not a Pub/Sub push envelope' });
    }
    const { message, subscription } = parsed.data;
    const messageId = (message.messageId ?? message.message_id)!;
    const { eventType, secretId, timestamp } = message.attributes;
    const fields = { messageId, subscription, eventType, secretId };
    if (eventType !== 'SECRET_ROTATE') {
      log.debug(fields, 'pubsub push: not a rotation notification; acknowledged');
      return reply(res, 'ignored', 204);
    }
    const requestedAt = new Date(timestamp ?? message.publishTime ?? message.publish_time ?? '');
    if (!secretId || Number.isNaN(requestedAt.getTime())) {
      log.warn(fields, 'pubsub push: SECRET_ROTATE without a secretId or a timestamp; acknowledged');
      return reply(res, 'invalid', 204);
    }
    let matches: SecretSpec[];
    try {
      matches = await managedSecretsFor(config, runtime.resolver, secretId);
    } catch (error) {
      // No match among the secrets that could be opened, and some could not: it may be one of those.
      log.warn({ ...fields, error: describeError(error) }, 'pubsub push: cannot tell which secret the notification is for');
      return reply(res, 'unavailable', 503, {});
    }
    if (!matches.length) {
      log.warn(fields, 'pubsub push: SECRET_ROTATE for a secret rekey does not manage; acknowledged');
      return reply(res, 'unknown_secret', 204);
    }
    const results = [];
    for (const spec of matches) {
      if (spec.schedule) {
        log.info({ ...fields, secret: spec.name }, 'pubsub push: secret rotates on its rekey schedule; acknowledged');
        results.push({ secret: spec.name, outcome: 'scheduled' as const });
        continue;
      }
      // Two managed secrets on one Google secret would otherwise share (and collide on) one key.
      const idempotencyKey = matches.length === 1 ? `pubsub:${messageId}` : `pubsub:${messageId}:${spec.name}`;
      try {
        const result = await runtime.engine.requestRotation({ secret: spec.name, trigger: 'event', idempotencyKey, requestedAt });
        const runId = result.status === 'stale' ? undefined : result.run.id;
        log.info({ ...fields, secret: spec.name, outcome: result.status, runId }, 'pubsub push: rotation requested');
        results.push({ secret: spec.name, outcome: result.status, runId });
      } catch (error) {
        // Database or Redis trouble, or an apply racing us: let Pub/Sub redeliver; the key dedupes.
        const level = error instanceof RekeyError && error.code === 'REKEY_ERR_UNKNOWN' ? 'warn' : 'error';
        log[level]({ ...fields, secret: spec.name, error: describeError(error) }, 'pubsub push: could not request the rotation');
        return reply(res, 'unavailable', 503, {});
      }
    }
    const outcome = results.length === 1 ? results[0]!.outcome : results.every((r) => r.outcome === 'scheduled') ? 'scheduled' : 'queued';
    return reply(res, outcome, 200, { results });
  });
};

/**
 * Managed secrets whose store says it is the secret `resourceName` names (SecretStore.references).
 * A secret whose providers cannot be opened here (a credential missing from this process) is
 * skipped, so that it does not stop the notifications of every other secret.
 * @throws the first such failure when nothing matched and some secret could not be asked.
 */
export async function managedSecretsFor(config: RekeyConfig, resolver: ProviderResolver, resourceName: string): Promise<SecretSpec[]> {
  const matches: SecretSpec[] = [];
  let failure: { error: unknown } | undefined;
  for (const spec of Object.values(config.secrets)) {
    try {
      const { store } = await resolver.resolve(spec.name);
      if (store.references?.(resourceName)) matches.push(spec);
    } catch (error) {
      failure ??= { error };
    }
  }
  if (!matches.length && failure) throw failure.error;
  return matches;
}

function pushCounter(registry: client.Registry): client.Counter<'outcome'> {
  return sharedCounter(
    registry,
    'rekey_pubsub_push_total',
    'Pub/Sub push requests on /events/pubsub by outcome (queued, joined, stale, scheduled, ignored, unknown_secret, invalid, unauthenticated, busy, throttled, not_configured, unavailable)',
    ['outcome'],
  );
}
