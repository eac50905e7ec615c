/**
 * What the delivery routes of one server share: the admission ticket each request took before
 * anything of it was read, the per-subject rate limit (charged after authentication, counted
 * by this replica), and the core dependencies bound to the runtime.
 */
import { CronExpressionParser } from 'cron-parser';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DeliveryConfig } from '../config/delivery.js';
import { own } from '../config/schema.js';
import type { ValueDeliveryDeps } from '../core/value-delivery.js';
import type { Admission, Ticket } from '../http/admission.js';
import { RateLimiter } from '../http/rate-limit.js';
import type { Runtime } from '../runtime.js';

export class DeliveryContext {
  private readonly tickets = new WeakMap<FastifyRequest, Ticket>();
  private readonly perSubject = new RateLimiter({ max: 120, windowMs: 60_000 });

  constructor(
    readonly runtime: Runtime,
    readonly admission: Admission,
  ) {}

  hold(request: FastifyRequest, ticket: Ticket): void {
    this.tickets.set(request, ticket);
  }

  /** Gives the request's admission slot back (authentication is over); idempotent. */
  release(request: FastifyRequest): void {
    this.tickets.get(request)?.release();
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

  deps(): ValueDeliveryDeps {
    const { runtime } = this;
    return {
      repo: runtime.engine.deps.repo,
      providers: runtime.resolver,
      authenticator: (name) => runtime.resolver.authenticator(name),
      admit: (subjectKey) => this.perSubject.take(subjectKey),
      audit: (event) => runtime.db.$transaction((tx) => runtime.audit.append(tx, event)),
      log: runtime.log.child({ component: 'delivery' }),
      nextRotation: async (secret) => {
        const schedule = own((await runtime.resolver.config()).secrets, secret)?.schedule;
        return schedule ? CronExpressionParser.parse(schedule.cron, { tz: schedule.timezone }).next().toDate() : undefined;
      },
    };
  }
}

/** The credential of `Authorization: Bearer <credential>`, or undefined. */
export function bearer(request: FastifyRequest): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

/** An RFC 6749/6750-shaped error answer with a fixed description; never an echo of the request. */
export function refuse(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  if (status === 401) reply.header('www-authenticate', `Bearer realm="rekey", error="${error}"`);
  return reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description });
}
