/**
 * Admission to the routes that authenticate their callers (leak receivers, Pub/Sub push).
 * Unauthenticated traffic must never use up an authenticated caller's allowance (DESIGN.md
 * "Runtime"), so nothing here is charged per sender before authentication. What bounds the
 * work anyone can cause before being authenticated is:
 *
 * - a cap on requests in flight between arrival and the end of their authentication, across
 *   every authenticated route of the process (503 when full), with fastify's body limit and
 *   request timeout bounding what each one holds;
 * - failed authentications, counted per source address (an IPv6 one by its /64, {@link sourceOf})
 *   in buckets of their own: a source over
 *   its failure limit still gets its requests authenticated (a genuine sender behind the same
 *   address must get through), but all such sources together hold at most a few of the slots
 *   in flight (429 beyond), so one hostile source cannot fill the cap. A request that ends
 *   before its authentication does (body too slow or too large, client gone) counts as such a
 *   failure, on every route alike: else slow bodies would never put their source over its limit.
 *   A source's requests still awaiting authentication count against its allowance as if they
 *   had failed: else a source whose bucket had refilled by one token (2 s at the default rate)
 *   would get its whole next batch admitted as within its limit.
 *
 * Authenticated requests are limited afterwards, per receiver (src/leaks/routes.ts).
 */
import type { ServerResponse } from 'node:http';
import { RateLimiter, sourceOf } from './rate-limit.js';

export interface AdmissionOptions {
  /** Requests being received or authenticated at once, every authenticated route together. @defaultValue 64 */
  maxInFlight?: number;
  /** Of those, how many may come from sources over their failed-authentication limit. @defaultValue 8 */
  maxInFlightOverLimit?: number;
  /** Failed authentications a source may make at once, and per window, before it is over its limit. @defaultValue 30 */
  failures?: number;
  /** @defaultValue 60000 */
  failuresWindowMs?: number;
  now?: () => number;
}

/** A slot held by an admitted request; released once, when authentication ends or the response does. */
export interface Ticket {
  release: () => void;
}

export type Refusal = { status: 503; reason: 'busy'; retryAfter: number } | { status: 429; reason: 'auth_failures'; retryAfter: number };

export class Admission {
  private inFlight = 0;
  private inFlightOverLimit = 0;
  /** Requests awaiting authentication, by source (sourceOf); a source with none has no entry. */
  private readonly awaiting = new Map<string, number>();
  private readonly failures: RateLimiter;
  private readonly maxInFlight: number;
  private readonly maxInFlightOverLimit: number;

  constructor(options: AdmissionOptions = {}) {
    this.maxInFlight = options.maxInFlight ?? 64;
    this.maxInFlightOverLimit = options.maxInFlightOverLimit ?? 8;
    this.failures = new RateLimiter({ max: options.failures ?? 30, windowMs: options.failuresWindowMs ?? 60_000, ...(options.now ? { now: options.now } : {}) });
  }

  /**
   * Admits a request from `source` before anything of it is read, or says why not. A request
   * whose `response` closes while it still holds its ticket never finished its authentication
   * (a body too slow, too large or of another type; its client gone): its slot goes back and it
   * counts as a failed authentication of its source, else one source holding slow bodies would
   * keep every slot and never be over its limit. Routes release the ticket once authentication
   * is over, or when they answer without one (nothing configured, our own failure).
   */
  enter(source: string, response?: ServerResponse): Ticket | Refusal {
    if (this.inFlight >= this.maxInFlight) return { status: 503, reason: 'busy', retryAfter: 1 };
    const key = sourceOf(source);
    const awaiting = this.awaiting.get(key) ?? 0;
    const overLimit = !this.failures.available(key, awaiting + 1);
    if (overLimit && this.inFlightOverLimit >= this.maxInFlightOverLimit) return { status: 429, reason: 'auth_failures', retryAfter: this.failures.retryAfterSeconds() };
    this.inFlight += 1;
    if (overLimit) this.inFlightOverLimit += 1;
    this.awaiting.set(key, awaiting + 1);
    let held = true;
    const ticket: Ticket = {
      release: () => {
        if (!held) return;
        held = false;
        this.inFlight -= 1;
        if (overLimit) this.inFlightOverLimit -= 1;
        const left = this.awaiting.get(key)! - 1;
        if (left > 0) this.awaiting.set(key, left);
        else this.awaiting.delete(key);
      },
    };
    response?.once('close', () => {
      if (!held) return;
      this.failed(source);
      ticket.release();
    });
    return ticket;
  }

  /** Counts a failed authentication against `source` (never against any sender's allowance). */
  failed(source: string): void {
    this.failures.take(sourceOf(source));
  }
}

export function isRefusal(value: Ticket | Refusal): value is Refusal {
  return 'status' in value;
}
