/**
 * GET /v1/events: a server-sent-events stream telling an authenticated client that a secret it
 * may read (its value grants) or whose key signs its tokens (its token grants) rotated or that
 * one of its versions was revoked, so it fetches the value, or a token, again at once instead of
 * polling. Events carry the secret, the version number and nothing else:
 *
 *   event: ready     data: {"secrets":[{"secret":"payments-api-key","version":4}]}   (once, first)
 *   event: rotated   data: {"secret":"payments-api-key","version":5}
 *   event: revoked   data: {"secret":"payments-api-key","version":4}
 *
 * `rotated` and `revoked` carry an `id:` (their place in the change log): a client that
 * reconnects with `Last-Event-ID` gets the changes it missed instead of `ready`, or `ready` when
 * the log no longer reaches back that far.
 *
 * Changes come from every process through the change feed (Redis pub/sub, change-feed.ts).
 * The subscription is in place before `ready` is read, so nothing falls between the two. The
 * stream ends when the credential expires (its `exp`), and after an hour at most (a credential
 * without `exp`, such as a client key): the client reconnects and is authenticated and
 * authorized again, so a grant removed by `rekey apply` stops its streams within the hour. It
 * ends sooner when the version the credential was verified against stops being one a hand-out
 * may rely on: at once when the change feed reports it revoked, at the end of its grace once a
 * rotation made it previous.
 * The admission slot is given back once the caller is authenticated: a stream holds none. A
 * server holds MAX_STREAMS streams, and one subject `delivery.rateLimit.streams` of them (429
 * beyond), so a subject's clients cannot take every slot of the others.
 */
import type { FastifyInstance } from 'fastify';
import { allGrants, authenticate, DeliveryError, followedSecrets, retryingStale } from '../core/delivery.js';
import { describeError } from '../core/errors.js';
import type { SecretChange, VersionRecord } from '../core/model.js';
import { SecretValue } from '../core/secret-value.js';
import { compareIds } from './change-feed.js';
import { bearer, refuse, type DeliveryContext } from './context.js';

/** Streams one server holds open at most. */
const MAX_STREAMS = 10_000;
/** The longest a stream lives before its client must authenticate again. */
const MAX_STREAM_MS = 3_600_000;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** Retry-After of a subject refused for holding `delivery.rateLimit.streams` already: its streams end within the hour. */
const SUBJECT_STREAMS_RETRY_AFTER_S = 30;

/** Registers the route; returns what ends every open stream (the server is closing). */
export function eventsRoute(scope: FastifyInstance, ctx: DeliveryContext): () => void {
  const streams = new Set<() => void>();
  /** The server is closing: its streams were ended, and none opens any more. */
  let closing = false;
  /** Open streams per subject (`<authenticator>:<subject id>`), so one subject cannot take the server's every slot. */
  const perSubject = new Map<string, number>();
  /** Version reads in flight, shared by the streams one change wakes at once. */
  const reading = new Map<string, Promise<VersionRecord | null>>();
  const versionOf = (id: string): Promise<VersionRecord | null> => {
    let read = reading.get(id);
    if (!read) {
      read = ctx.deps().repo.getVersion(id);
      reading.set(id, read);
      read.then(() => reading.delete(id), () => reading.delete(id));
    }
    return read;
  };

  // No HEAD route (fastify adds one to every GET by default): a stream has nothing to tell HEAD.
  scope.get('/v1/events', { exposeHeadRoute: false }, async (request, reply) => {
    let deps;
    let who;
    let secrets: string[];
    let subjectKey: string;
    try {
      const credential = bearer(request);
      const delivery = credential ? await ctx.config() : undefined;
      const grants = delivery ? allGrants(delivery) : [];
      if (!credential || !delivery || !grants.length) {
        ctx.admission.failed(request.ip);
        return credential ? refuse(reply, 404, 'not_found', 'delivery is not configured') : refuse(reply, 401, 'invalid_token', 'a bearer credential is required');
      }
      deps = ctx.deps();
      // As for a hand-out, the versions the proof relied on (its cache may be stale) are checked
      // live in PostgreSQL before the stream opens; a failed check runs once more from PostgreSQL.
      who = await retryingStale(deps, async (deps) => {
        const found = await authenticate(deps, grants, SecretValue.of(credential));
        const relied = found.subject.versions ?? [];
        return !relied.length || (await deps.handOut({ handed: [], relied })) ? found : undefined;
      });
      secrets = followedSecrets(delivery, who);
      if (!secrets.length) return refuse(reply, 403, 'insufficient_scope', 'no grant names this subject');
      // Authenticated while the server began closing: a stream opened now would hold the close until it ends (up to an hour).
      if (closing) return refuse(reply, 503, 'temporarily_unavailable', 'the server is shutting down');
      // Its caller hung up while it was being authenticated: the connection's 'close' has been and
      // gone, so a stream counted now would never end and would hold one of the subject's places
      // (delivery.rateLimit.streams) until its credential expired.
      if (request.raw.socket.destroyed) return refuse(reply, 503, 'temporarily_unavailable', 'the client went away');
      if (streams.size >= MAX_STREAMS) return refuse(reply.header('retry-after', '5'), 503, 'temporarily_unavailable', 'too many streams');
      subjectKey = `${who.authenticator}:${who.subject.id}`;
      if ((perSubject.get(subjectKey) ?? 0) >= delivery.rateLimit.streams) {
        return refuse(reply.header('retry-after', String(SUBJECT_STREAMS_RETRY_AFTER_S)), 429, 'slow_down', 'too many streams for this subject');
      }
      ctx.admission.succeeded(request.ip);
    } catch (error) {
      if (!(error instanceof DeliveryError)) {
        request.log.error({ error: describeError(error) }, 'change stream failed');
        return refuse(reply, 500, 'server_error', 'the stream could not be opened');
      }
      // Refused, or not accepted by any authenticator while one was down: a failed authentication of its source.
      if (error.code === 'unverifiable') ctx.admission.failed(request.ip);
      if (error.code === 'unauthenticated') {
        ctx.admission.failed(request.ip);
        return refuse(reply, 401, 'invalid_token', 'the credential is not valid');
      }
      if (error.code === 'rate_limited') return refuse(reply.header('retry-after', String(ctx.retryAfterSeconds())), 429, 'slow_down', 'too many requests');
      return refuse(reply, 503, 'temporarily_unavailable', 'try again shortly');
    } finally {
      ctx.release(request);
    }

    const readable = new Set(secrets);
    const raw = reply.raw;
    let ready = false;
    // The newest log id sent: a change replayed from the log is not sent again when it also arrives live.
    let sent: string | undefined;
    const early: SecretChange[] = [];
    const send = (event: string, data: unknown, id?: string) => raw.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const forward = (change: SecretChange) => {
      if (!readable.has(change.secret)) return;
      if (!ready) return void early.push(change);
      if (change.id && sent && compareIds(change.id, sent) <= 0) return;
      send(change.event, { secret: change.secret, version: change.version }, change.id);
      if (change.id) sent = change.id;
    };
    let unsubscribe: (() => void) | undefined;
    const timers: NodeJS.Timeout[] = [];
    let deadline = Infinity;
    let lifetime: NodeJS.Timeout | undefined;
    const end = () => {
      if (!streams.delete(end)) return;
      const held = (perSubject.get(subjectKey) ?? 1) - 1;
      if (held > 0) perSubject.set(subjectKey, held);
      else perSubject.delete(subjectKey);
      unsubscribe?.();
      for (const timer of timers) clearTimeout(timer);
      clearTimeout(lifetime);
      raw.end();
    };
    /** Ends the stream at `at` (Date.now() scale) if that is sooner than it would end anyway. */
    const endBy = (at: number) => {
      if (at >= deadline || !streams.has(end)) return;
      deadline = at;
      clearTimeout(lifetime);
      lifetime = setTimeout(end, Math.max(0, at - Date.now()));
    };
    // The versions the credential was verified against (an attestation secret's, a client key),
    // as read once subscribed; changes that come before are held back until then.
    let relied: VersionRecord[] | undefined;
    const heldBack: SecretChange[] = [];
    /** A revocation of a relied-on version ends the stream; a rotation may have made it previous (ends with its grace) or retired it. */
    const watch = (change: SecretChange) => {
      if (!relied) return void heldBack.push(change);
      for (const version of relied) {
        if (version.secret !== change.secret) continue;
        if (change.event === 'revoked' && change.version === version.number) return end();
        if (change.event === 'rotated') {
          versionOf(version.id).then(
            (now) => endBy(reliableUntil(now)),
            (error: unknown) => request.log.warn({ error: describeError(error) }, 'change stream: a relied-on version could not be read again'),
          );
        }
      }
    };
    streams.add(end);
    perSubject.set(subjectKey, (perSubject.get(subjectKey) ?? 0) + 1);
    request.raw.once('close', end);
    // The credential's expiry, and the hour.
    const exp = who.subject.claims.exp;
    endBy(Date.now() + Math.min(typeof exp === 'number' ? exp * 1000 - Date.now() : MAX_STREAM_MS, MAX_STREAM_MS));
    reply.hijack();
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    raw.write('retry: 1000\n\n');
    try {
      unsubscribe = await ctx.runtime.changes.subscribe((change) => {
        watch(change);
        if (streams.has(end)) forward(change);
      });
      const versions = await Promise.all((who.subject.versions ?? []).map(versionOf));
      for (const version of versions) endBy(reliableUntil(version));
      relied = versions.filter((version) => version !== null);
      for (const change of heldBack.splice(0)) watch(change);
      const lastEventId = request.headers['last-event-id'];
      const missed = typeof lastEventId === 'string' ? await ctx.runtime.changes.since(lastEventId) : undefined;
      if (!streams.has(end)) return; // the client left meanwhile
      if (missed) {
        // Resumed: what it missed, from the log, instead of `ready`.
        sent = lastEventId as string;
        ready = true;
        for (const change of missed) forward(change);
      } else {
        const current = await Promise.all(
          secrets.map(async (secret) => {
            const record = await deps.repo.getSecret(secret);
            const version = record ? await deps.repo.currentVersion(record.id) : null;
            return { secret, version: version && !version.compromisedAt ? version.number : null };
          }),
        );
        if (!streams.has(end)) return;
        send('ready', { secrets: current });
        ready = true;
      }
      for (const change of early.splice(0)) forward(change);
    } catch (error) {
      request.log.warn({ error: describeError(error) }, 'change stream could not subscribe');
      end();
      return;
    }
    if (streams.has(end)) timers.push(setInterval(() => raw.write(': keepalive\n\n'), KEEPALIVE_MS));
  });

  return () => {
    closing = true;
    for (const end of [...streams]) end();
  };
}

/**
 * Until when (Date.now() scale) a credential verified against `version` may still be relied
 * on, as the hand-out check has it: a current version until further notice, a previous one
 * until its grace ends, none other (compromised, retired, revoked, gone).
 */
function reliableUntil(version: VersionRecord | null): number {
  if (!version || version.compromisedAt) return 0;
  if (version.state === 'current') return Infinity;
  return version.state === 'previous' && version.graceEndsAt ? version.graceEndsAt.getTime() : 0;
}
