/**
 * What the delivery routes of one server share: the admission ticket each request took before
 * anything of it was read, the per-subject rate limit (charged after authentication, counted
 * by this replica), and the core dependencies bound to the runtime.
 */
import { CronExpressionParser } from 'cron-parser';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DeliveryConfig } from '../config/delivery.js';
import { own, type SecretSpec } from '../config/schema.js';
import { handableVersion, signingKeys } from '../core/live-values.js';
import { HandoutJournal } from '../db/handouts.js';
import type { ValueDeliveryDeps } from '../core/value-delivery.js';
import type { Admission, Ticket } from '../http/admission.js';
import { RateLimiter } from '../http/rate-limit.js';
import type { Runtime } from '../runtime.js';
import { DeliveryCache } from './cache.js';

type Schedule = NonNullable<SecretSpec['schedule']>;

/**
 * The request property holding its admission ticket (decorated in the routes' scope, so every
 * request has it from its construction). Not a WeakMap keyed by request: V8's scavenges hold a
 * WeakMap's values strongly, so every ticket (and what its closures hold) made since the last
 * scavenge survived it, whether its request had ended or not.
 */
export const TICKET = 'deliveryTicket';

type Holding = FastifyRequest & { [TICKET]: Ticket | null };

/**
 * Retry-After (seconds) of a 503 that names no wait of its own: an authenticator that cannot
 * verify now, a secret with no version that may be handed out (a leaked one's replacement on its
 * way). RFC 9110 §15.6.4; the client library and `rekey agent` wait at least this long.
 */
export const UNAVAILABLE_RETRY_AFTER_S = 2;

export class DeliveryContext {
  private readonly perSubject = new RateLimiter({ max: 120, windowMs: 60_000 });
  /** Current versions' values and authenticators' live values, dropped on the change feed. */
  readonly cache: DeliveryCache;
  /** Hand-outs checked and audited, one transaction per batch. */
  readonly journal: HandoutJournal;
  private unsubscribe: (() => void) | undefined;
  private shared: ValueDeliveryDeps | undefined;
  private readonly nextRotations = new Map<string, { schedule: Schedule; at: Date }>();

  constructor(
    readonly runtime: Runtime,
    readonly admission: Admission,
  ) {
    const { repo } = runtime.engine.deps;
    this.cache = new DeliveryCache(
      {
        current: (secret, call) => handableVersion(repo, runtime.resolver, secret, call),
        signing: (secret, call) => signingKeys(repo, runtime.resolver, runtime.log, secret, call),
        live: runtime.resolver.readLiveValues,
      },
      runtime.settings.deliveryCacheMaxAgeMs,
    );
    runtime.resolver.useLiveValues((secret, call, recheck) => this.cache.live(secret, call, recheck));
    this.journal = new HandoutJournal(runtime.db, runtime.audit);
  }

  /** Drops cached entries of every secret the change feed reports changed, from now on. */
  async follow(): Promise<void> {
    this.unsubscribe = await this.runtime.changes.subscribe((change) => this.cache.forget(change.secret));
  }

  /** Stops following the change feed. */
  close(): void {
    this.unsubscribe?.();
  }

  /** Ends the journal's connections, once no request can hand out any more. */
  async end(): Promise<void> {
    await this.journal.close();
  }

  hold(request: FastifyRequest, ticket: Ticket): void {
    (request as Holding)[TICKET] = ticket;
  }

  /** Gives the request's admission slot back (authentication is over); idempotent. */
  release(request: FastifyRequest): void {
    (request as Holding)[TICKET]?.release();
  }

  /** The applied `delivery:` section, with the rate limit it sets. */
  async config(): Promise<DeliveryConfig | undefined> {
    const delivery = (await this.runtime.resolver.config()).delivery;
    if (delivery) this.perSubject.configure(delivery.rateLimit.max, delivery.rateLimit.windowMs);
    return delivery;
  }

  /** Seconds until a subject over its limit has a request again. */
  retryAfterSeconds(): number {
    return this.perSubject.retryAfterSeconds();
  }

  /** What the core delivery flows need, made once: every request of this server shares it. */
  deps(): ValueDeliveryDeps {
    this.shared ??= this.makeDeps();
    return this.shared;
  }

  /**
   * When `schedule` next fires, computed once per schedule and due time: parsing the cron
   * expression took longer than the rest of a value request. A config revision makes new
   * schedule objects, so a changed schedule is parsed afresh.
   */
  private nextRotation(secret: string, schedule: Schedule | undefined): Date | undefined {
    if (!schedule) return undefined;
    const held = this.nextRotations.get(secret);
    if (held?.schedule === schedule && held.at.getTime() > Date.now()) return held.at;
    const at = CronExpressionParser.parse(schedule.cron, { tz: schedule.timezone }).next().toDate();
    this.nextRotations.set(secret, { schedule, at });
    return at;
  }

  private makeDeps(): ValueDeliveryDeps {
    const { runtime } = this;
    const log = runtime.log.child({ component: 'delivery' });
    return {
      repo: runtime.engine.deps.repo,
      providers: runtime.resolver,
      authenticator: (name) => runtime.resolver.authenticator(name),
      admit: (subjectKey) => this.perSubject.take(subjectKey),
      within: (subjectKey) => this.perSubject.available(subjectKey),
      current: (secret, call) => this.cache.current(secret, call),
      signingKeys: (secret, call) => this.cache.signing(secret, call),
      publishLeadMs: runtime.settings.jwksMaxAgeMs,
      handOut: async (entry) => {
        const recorded = await this.journal.record(entry);
        if (!recorded) {
          log.debug('hand-out check failed: a version was revoked or replaced; reading afresh');
          this.cache.forgetVersions([...entry.handed, ...entry.relied]);
        }
        return recorded;
      },
      log,
      nextRotation: async (secret) => this.nextRotation(secret, own((await runtime.resolver.config()).secrets, secret)?.schedule),
    };
  }
}

/** The credential of `Authorization: Bearer <credential>`, or undefined. */
export function bearer(request: FastifyRequest): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

/**
 * An RFC 6749/6750-shaped error answer with a fixed description; never an echo of the request.
 * A 503 carries Retry-After: the caller's own (admission's, the stream cap's), else {@link UNAVAILABLE_RETRY_AFTER_S}.
 */
export function refuse(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  if (status === 401) reply.header('www-authenticate', `Bearer realm="rekey", error="${error}"`);
  if (status === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_S));
  return reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description });
}
