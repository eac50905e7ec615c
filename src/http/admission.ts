/**
 * Admission to the routes that authenticate their callers (delivery, the admin API and the
 * dashboard's sign-in, leak receivers, Pub/Sub push). Unauthenticated traffic must never use up
 * an authenticated caller's allowance (DESIGN.md "Runtime"), so nothing here is charged per
 * sender before authentication. What bounds the work anyone can cause before being authenticated is:
 *
 * - a cap on requests in flight between arrival and the end of their authentication, across
 *   every authenticated route of the process (503 when full), with fastify's body limit and
 *   request timeout bounding what each one holds;
 * - a share of that cap for *unproven* sources (503 when it is full): a source (by its address,
 *   an IPv6 one by its /64, {@link sourceOf}) is *proven* for a while after one of its requests
 *   authenticated ({@link Admission.succeeded}), and the rest of the cap is kept for proven ones.
 *   So addresses that never authenticated (a flood of them: any IPv6 /48 holds 65,536 sources)
 *   cannot take the slots of callers that authenticated from their address before. Proven
 *   sources are remembered in bounded memory (the most recent, for a while), and a source stops
 *   being proven when it goes over its failure limit;
 * - a cap per source, proven or not (429 beyond), so that one address cannot take the unproven
 *   share, or the whole cap, alone;
 * - failed authentications, counted per source in buckets of their own: a source over
 *   its failure limit still gets its requests authenticated (a genuine sender behind the same
 *   address must get through), but all such sources together hold at most a few of the slots
 *   in flight (429 beyond). A request that ends before its authentication does (body too slow or
 *   too large, client gone) counts as such a failure, on every route alike: else slow bodies
 *   would never put their source over its limit.
 *   A source's requests still awaiting authentication count against its allowance as if they
 *   had failed: else a source whose bucket had refilled by one token (2 s at the default rate)
 *   would get its whole next batch admitted as within its limit.
 *
 * A source that never authenticated before is refused (503) while unproven sources hold their
 * whole share: what this buys is that callers proven before keep working through such a flood.
 * Authenticated requests are limited afterwards, per receiver (src/leaks/routes.ts) and per
 * subject (src/delivery/context.ts).
 */
import type { ServerResponse } from 'node:http';
import { RateLimiter, sourceOf } from './rate-limit.js';

export interface AdmissionOptions {
  /** Requests being received or authenticated at once, every authenticated route together. @defaultValue 64 */
  maxInFlight?: number;
  /** Of those, how many may come from sources that are not proven (none of their requests authenticated lately). @defaultValue 32 */
  maxInFlightUnproven?: number;
  /** Of those, how many may come from sources over their failed-authentication limit. @defaultValue 8 */
  maxInFlightOverLimit?: number;
  /** Requests one unproven source may have awaiting authentication at once (429 beyond). @defaultValue 16 */
  maxPerSource?: number;
  /** Requests one proven source may have awaiting authentication at once (429 beyond). @defaultValue 32 */
  maxPerProvenSource?: number;
  /** How long a source stays proven after its last request that authenticated. @defaultValue 600000 (10 minutes) */
  provenForMs?: number;
  /** Proven sources remembered at most; the one that authenticated least recently is forgotten first. @defaultValue 10000 */
  maxProvenSources?: number;
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

/**
 * Why a request was not admitted: `busy`, the process (or the share of unproven sources) has
 * its cap of requests awaiting authentication; `source_busy`, this source has its own cap of
 * them; `auth_failures`, it is over its failed-authentication limit and such sources hold their share.
 */
export type Refusal = { status: 503; reason: 'busy'; retryAfter: number } | { status: 429; reason: 'source_busy' | 'auth_failures'; retryAfter: number };

/** Requests holding a slot now, for tests and gauges. */
export interface AdmissionCounts {
  inFlight: number;
  unproven: number;
  overLimit: number;
}

export class Admission {
  private inFlight = 0;
  private inFlightUnproven = 0;
  private inFlightOverLimit = 0;
  /** Requests awaiting authentication, by source (sourceOf); a source with none has no entry. */
  private readonly awaiting = new Map<string, number>();
  /** Proven sources (sourceOf) and until when (now() scale), the one that authenticated least recently first. */
  private readonly proven = new Map<string, number>();
  private readonly failures: RateLimiter;
  private readonly maxInFlight: number;
  private readonly maxInFlightUnproven: number;
  private readonly maxInFlightOverLimit: number;
  private readonly maxPerSource: number;
  private readonly maxPerProvenSource: number;
  private readonly provenForMs: number;
  private readonly maxProvenSources: number;
  private readonly now: () => number;

  constructor(options: AdmissionOptions = {}) {
    this.maxInFlight = options.maxInFlight ?? 64;
    this.maxInFlightUnproven = options.maxInFlightUnproven ?? 32;
    this.maxInFlightOverLimit = options.maxInFlightOverLimit ?? 8;
    this.maxPerSource = options.maxPerSource ?? 16;
    this.maxPerProvenSource = options.maxPerProvenSource ?? 32;
    this.provenForMs = options.provenForMs ?? 600_000;
    this.maxProvenSources = options.maxProvenSources ?? 10_000;
    this.now = options.now ?? Date.now;
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
    const key = sourceOf(source);
    const proven = this.isProven(key);
    const awaiting = this.awaiting.get(key) ?? 0;
    if (awaiting >= (proven ? this.maxPerProvenSource : this.maxPerSource)) return { status: 429, reason: 'source_busy', retryAfter: 1 };
    if (this.inFlight >= this.maxInFlight || (!proven && this.inFlightUnproven >= this.maxInFlightUnproven)) return { status: 503, reason: 'busy', retryAfter: 1 };
    const overLimit = !this.failures.available(key, awaiting + 1);
    if (overLimit && this.inFlightOverLimit >= this.maxInFlightOverLimit) return { status: 429, reason: 'auth_failures', retryAfter: this.failures.retryAfterSeconds() };
    this.inFlight += 1;
    if (!proven) this.inFlightUnproven += 1;
    if (overLimit) this.inFlightOverLimit += 1;
    this.awaiting.set(key, awaiting + 1);
    let held = true;
    const ticket: Ticket = {
      release: () => {
        if (!held) return;
        held = false;
        this.inFlight -= 1;
        if (!proven) this.inFlightUnproven -= 1;
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

  /**
   * Counts a failed authentication against `source` (never against any sender's allowance); a
   * source it puts over its limit is no longer proven.
   */
  failed(source: string): void {
    const key = sourceOf(source);
    this.failures.take(key);
    if (!this.failures.available(key)) this.proven.delete(key);
  }

  /**
   * Records that a request of `source` authenticated: the source is proven for `provenForMs`
   * from now. Every route calls it once its caller is authenticated, and only then.
   */
  succeeded(source: string): void {
    const key = sourceOf(source);
    this.proven.delete(key);
    this.proven.set(key, this.now() + this.provenForMs);
    if (this.proven.size > this.maxProvenSources) this.proven.delete(this.proven.keys().next().value!);
  }

  /** Requests holding a slot now. */
  counts(): AdmissionCounts {
    return { inFlight: this.inFlight, unproven: this.inFlightUnproven, overLimit: this.inFlightOverLimit };
  }

  private isProven(key: string): boolean {
    const until = this.proven.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.proven.delete(key);
    return false;
  }
}

export function isRefusal(value: Ticket | Refusal): value is Refusal {
  return 'status' in value;
}
