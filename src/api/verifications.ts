/**
 * Audit verifications that outlast an HTTP request. A walk of the whole log takes what the log
 * holds (~70,000 rows/s here: 25 minutes for 100 M rows); a request that long is closed by any
 * proxy, and the dashboard's Verify would never answer. `POST /audit/verifications` answers 202
 * at once with an id; the process that took it walks in the background and writes how far it has
 * come to Redis every PERSIST_EVERY_MS, so `GET /audit/verifications/{id}` answers from any
 * replica: running with its progress, then passed (with the signed anchor) or failed (the row
 * and the problem), or error (PostgreSQL went away).
 *
 * One at a time per cluster: a walk is a sequential read of the whole table, and two add load,
 * not answers. The lock is a Redis key refreshed with each write; a second request while one
 * runs is refused 409 naming it. A walk whose process died is not refreshed any more: after
 * STALE_MS it is answered `abandoned`, and the next request takes its lock. Closing the server
 * stops its walks between two batches (`stopped`).
 *
 * Redis holds ids, counts, seqs, the actor, the signed anchor and the problem text, never a
 * value, and each record is sealed with an HMAC under REKEY_AUDIT_KEY, its own id included: whoever
 * can write Redis can delete or hide a verification, or show an older one, but cannot make a
 * failed or never-run verification read as passed (a record whose seal does not verify is
 * answered `tampered`, and nothing of it is shown).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { describeError, RekeyError } from '../core/errors.js';
import { alarmOnTampering, requestProblem, type SinceResult, type VerifyResult, verifyAudit, verifySince, type WalkProgress, walkPace } from '../db/audit-verify.js';
import { describeInfraFailure } from '../cli/failures.js';
import type { Runtime } from '../runtime.js';
import { ApiProblem } from './problems.js';
import { instant, route } from './route.js';

/** How often a running walk's record is written (and its lock refreshed). */
const PERSIST_EVERY_MS = 1000;
/** A running record not written for this long belongs to a process that died. */
export const STALE_MS = 15_000;
/** How long a record is kept after it was last written, and how many the list keeps. */
const KEEP_MS = 24 * 3600_000;
const KEEP = 20;

const verifyResult = z.union([
  z.object({ ok: z.literal(true), events: z.number().int(), anchor: z.string(), unkeyed: z.number().int(), unkeyedPinned: z.boolean() }),
  // With `since`: the rows after that anchor verified (the rows before it not walked).
  z.object({ ok: z.literal(true), events: z.number().int(), anchor: z.string(), since: z.string() }),
  z.object({ ok: z.literal(false), events: z.number().int(), seq: z.string(), problem: z.string() }),
]);

type Answer = z.infer<typeof verifyResult>;

/** The API's answer for a walk's result. */
function answerOf(result: VerifyResult | SinceResult, since: string | undefined): Answer {
  if (!result.ok) return { ...result, seq: result.seq.toString() };
  return since === undefined ? (result as Extract<VerifyResult, { ok: true }>) : { ...result, since: since.split(':')[0]! };
}

const STATES = ['running', 'passed', 'failed', 'error', 'stopped', 'abandoned', 'tampered'] as const;

const verification = z
  .object({
    id: z.string(),
    state: z.enum(STATES).describe('running; passed or failed (see result); error (the walk could not go on: see error); stopped (its server shut down); abandoned (its server stopped writing: died); tampered (its record in Redis does not carry a valid seal: nothing of it is shown)'),
    kind: z.enum(['whole', 'since']).nullable().describe('whole: every row (up to `anchor` checked against it when given); since: only the rows after the signed anchor `anchor`'),
    anchor: z.string().nullable(),
    startedBy: z.string().nullable(),
    startedAt: instant,
    updatedAt: instant,
    finishedAt: instant,
    progress: z
      .object({
        events: z.number().int(),
        seq: z.string().describe('the last row checked'),
        from: z.string(),
        upper: z.string().describe('the settled seq when the walk started: it ends there'),
        share: z.number().describe('of the seq range from `from` to `upper` behind it (seqs have gaps: an estimate)'),
        perSecond: z.number(),
        secondsLeft: z.number().nullable(),
      })
      .nullable(),
    result: verifyResult.nullable(),
    error: z.string().nullable(),
  })
  .meta({ id: 'AuditVerification' });

type VerificationRecord = z.infer<typeof verification>;

const verifyBody = z.object({ anchor: z.string().max(200).optional(), since: z.string().max(200).optional() }).strict();

/** Keys, under the queue prefix (its hash tag keeps them in one Cluster slot). */
const keys = (prefix: string) => ({
  record: (id: string) => `${prefix}:audit-verification:${id}`,
  lock: `${prefix}:audit-verification:running`,
  list: `${prefix}:audit-verifications`,
});

// Takes the lock when free, or when held by `expected` (a walk found abandoned); answers the holder otherwise.
const TAKE = `local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[2] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return false end
return held`;
// Refreshes or releases the lock only while it is this walk's.
const KEEP_LOCK = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

export interface VerificationOptions {
  /** Rows read at a time by the walk. @defaultValue 1000 */
  batch?: number;
  clock?: () => number;
  /** Awaited before each walk begins: a test holds walks running with it. */
  gate?: () => Promise<void>;
}

/** The verifications a server runs, and the records any replica reads. */
export class Verifications {
  private readonly keys: ReturnType<typeof keys>;
  private readonly running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private readonly clock: () => number;

  constructor(
    private readonly runtime: Runtime,
    private readonly options: VerificationOptions = {},
  ) {
    this.keys = keys(runtime.settings.queuePrefix);
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Starts a walk (after requestProblem said the request can run) and answers its first record.
   * @throws ApiProblem REKEY_API_CONFLICT while another runs.
   */
  async start(request: z.infer<typeof verifyBody>, actor: string): Promise<VerificationRecord> {
    const id = randomUUID();
    const holder = await this.take(id);
    if (holder) throw new ApiProblem('REKEY_API_CONFLICT', `audit verification ${holder} is running; follow it at GET /api/v1/audit/verifications/${holder}`);
    const since = request.since;
    const at = new Date(this.clock()).toISOString();
    const record: VerificationRecord = {
      id,
      state: 'running',
      kind: since === undefined ? 'whole' : 'since',
      anchor: since ?? request.anchor ?? null,
      startedBy: actor,
      startedAt: at,
      updatedAt: at,
      finishedAt: null,
      progress: null,
      result: null,
      error: null,
    };
    await this.write(record);
    await this.runtime.redis.multi().zadd(this.keys.list, this.clock(), id).zremrangebyrank(this.keys.list, 0, -KEEP - 1).exec();
    const abort = new AbortController();
    const done = this.walk(record, request, abort.signal).finally(() => this.running.delete(id));
    this.running.set(id, { abort, done });
    // A copy: the walk goes on changing its own.
    return { ...record };
  }

  /** The record of `id` as it stands, or undefined when none is kept. */
  async get(id: string): Promise<VerificationRecord | undefined> {
    return this.read(id, await this.runtime.redis.get(this.keys.record(id)));
  }

  /** The kept records, newest first. */
  async list(): Promise<VerificationRecord[]> {
    const ids = await this.runtime.redis.zrevrange(this.keys.list, 0, KEEP - 1);
    if (!ids.length) return [];
    const stored = await this.runtime.redis.mget(...ids.map((id) => this.keys.record(id)));
    return ids.flatMap((id, i) => this.read(id, stored[i] ?? null) ?? []);
  }

  /** Stops this server's walks between two batches and waits for their records to say so. */
  async close(): Promise<void> {
    for (const { abort } of this.running.values()) abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private async walk(record: VerificationRecord, request: z.infer<typeof verifyBody>, signal: AbortSignal): Promise<void> {
    const started = this.clock();
    let walked: WalkProgress | undefined;
    const progress = (p: WalkProgress) => (walked = p);
    const persist = () => {
      if (walked) {
        const { share, perSecond, secondsLeft } = walkPace(walked, this.clock() - started);
        const { events, seq, from, upper } = walked;
        record.progress = { events, seq: seq.toString(), from: from.toString(), upper: upper.toString(), share, perSecond, secondsLeft: secondsLeft ?? null };
      }
      record.updatedAt = new Date(this.clock()).toISOString();
      return this.write(record);
    };
    // A write that fails (Redis away a moment) is retried by the next; the walk goes on.
    const timer = setInterval(() => void persist().catch(() => undefined), PERSIST_EVERY_MS);
    timer.unref();
    const { db, audit } = this.runtime;
    const options = { progress, signal, ...(this.options.batch ? { batch: this.options.batch } : {}) };
    try {
      await this.options.gate?.();
      const result = request.since === undefined ? await verifyAudit(db, audit, { ...options, anchor: request.anchor }) : await verifySince(db, audit, request.since, options);
      // Raised before the record says failed (it never throws: a notice it cannot write is logged).
      await alarmOnTampering(this.runtime, result);
      record.result = answerOf(result, request.since);
      record.state = result.ok ? 'passed' : 'failed';
    } catch (error) {
      record.state = signal.aborted ? 'stopped' : 'error';
      record.error = signal.aborted ? null : this.failure(error);
    } finally {
      clearInterval(timer);
    }
    record.finishedAt = new Date(this.clock()).toISOString();
    try {
      // The lock first: whoever reads this walk finished may start the next at once.
      await this.runtime.redis.eval(KEEP_LOCK, 1, this.keys.lock, record.id, '0');
      await persist();
    } catch (error) {
      // The lock lapses by itself, and the record says running until it is found abandoned.
      this.runtime.log.warn({ verification: record.id, error: describeError(error) }, 'audit verification: its outcome could not be written to Redis');
    }
  }

  /** Takes the lock for `id`; answers the id of the walk that holds it instead, if one runs. */
  private async take(id: string): Promise<string | undefined> {
    const redis = this.runtime.redis;
    const held = (await redis.eval(TAKE, 1, this.keys.lock, id, '', String(STALE_MS))) as string | null;
    if (held === null) return undefined;
    // Held by a walk whose server stopped writing (died): take it over, unless it moved meanwhile.
    if ((await this.get(held))?.state !== 'abandoned') return held;
    return ((await redis.eval(TAKE, 1, this.keys.lock, id, held, String(STALE_MS))) as string | null) ?? undefined;
  }

  private async write(record: VerificationRecord): Promise<void> {
    const body = JSON.stringify(record);
    await this.runtime.redis.set(this.keys.record(record.id), JSON.stringify({ body, seal: this.runtime.audit.sealOf(body) }), 'PX', KEEP_MS);
    if (record.state === 'running') await this.runtime.redis.eval(KEEP_LOCK, 1, this.keys.lock, record.id, String(STALE_MS));
  }

  private read(id: string, stored: string | null): VerificationRecord | undefined {
    if (stored === null) return undefined;
    let record: VerificationRecord;
    try {
      const { body, seal } = JSON.parse(stored) as { body?: unknown; seal?: unknown };
      if (typeof body !== 'string' || typeof seal !== 'string' || !this.runtime.audit.sealMatches(body, seal)) return tamperedRecord(id);
      record = verification.parse(JSON.parse(body));
    } catch {
      return tamperedRecord(id);
    }
    // A sealed record moved under another id (an older pass shown for a newer walk) is not this one.
    if (record.id !== id) return tamperedRecord(id);
    const silent = this.clock() - Date.parse(record.updatedAt ?? '');
    return record.state === 'running' && silent > STALE_MS ? { ...record, state: 'abandoned' } : record;
  }

  private failure(error: unknown): string {
    if (error instanceof RekeyError) return `${error.code}: ${error.message}`;
    if (describeInfraFailure(error, this.runtime.settings)) return 'PostgreSQL or Redis became unavailable';
    this.runtime.log.error({ error: describeError(error) }, 'audit verification failed');
    return 'internal error (see the server log)';
  }
}

/** What is shown of a record whose seal does not verify: its id and that, nothing it says. */
function tamperedRecord(id: string): VerificationRecord {
  return { id, state: 'tampered', kind: null, anchor: null, startedBy: null, startedAt: null, updatedAt: null, finishedAt: null, progress: null, result: null, error: null };
}

/** A server's Verifications, created with its admin API (src/api/routes.ts) and closed with it; `options` count on the first call only (tests make it first). */
const byRuntime = new WeakMap<Runtime, Verifications>();

export function verificationsOf(runtime: Runtime, options?: VerificationOptions): Verifications {
  let found = byRuntime.get(runtime);
  if (!found) byRuntime.set(runtime, (found = new Verifications(runtime, options)));
  return found;
}

const SUMMARY =
  "Check the audit log's HMAC chains (and, with `anchor`, that nothing up to it was removed; with `since` instead, only what was appended after that signed anchor, from the chain heads it pins)";

export const verificationRoutes = [
  route({
    method: 'POST',
    path: '/audit/verify',
    operationId: 'verifyAudit',
    summary: `${SUMMARY}; answers a fresh signed anchor. It walks while the request waits: on a large log send \`since\`, or use POST /audit/verifications`,
    scope: 'admin',
    reach: 'all',
    action: true,
    body: verifyBody,
    response: verifyResult,
    handler: async ({ runtime, body }) => {
      const problem = requestProblem(body);
      if (problem) throw new ApiProblem('REKEY_API_INVALID_REQUEST', problem);
      const result = body.since === undefined ? await verifyAudit(runtime.db, runtime.audit, body.anchor === undefined ? {} : { anchor: body.anchor }) : await verifySince(runtime.db, runtime.audit, body.since);
      await alarmOnTampering(runtime, result);
      return answerOf(result, body.since);
    },
  }),
  route({
    method: 'POST',
    path: '/audit/verifications',
    operationId: 'startAuditVerification',
    summary: `${SUMMARY}, in the background: answers 202 with the verification's id at once; GET /audit/verifications/{id} tells its progress, then its result. One at a time: 409 while another runs`,
    scope: 'admin',
    reach: 'all',
    action: true,
    status: 202,
    body: verifyBody,
    response: verification,
    handler: async ({ runtime, body, caller }) => {
      const problem = requestProblem(body);
      if (problem) throw new ApiProblem('REKEY_API_INVALID_REQUEST', problem);
      return verificationsOf(runtime).start(body, caller.actor);
    },
  }),
  route({
    method: 'GET',
    path: '/audit/verifications',
    operationId: 'listAuditVerifications',
    summary: 'The audit verifications of the last day (at most 20), newest first',
    scope: 'admin',
    reach: 'all',
    response: z.object({ items: z.array(verification) }),
    handler: async ({ runtime }) => ({ items: await verificationsOf(runtime).list() }),
  }),
  route({
    method: 'GET',
    path: '/audit/verifications/:id',
    operationId: 'getAuditVerification',
    summary: 'One audit verification: its progress while it runs, then its result',
    scope: 'admin',
    reach: 'all',
    params: z.object({ id: z.uuid() }),
    response: verification,
    handler: async ({ runtime, params }) => {
      const found = await verificationsOf(runtime).get(params.id);
      if (!found) throw new ApiProblem('REKEY_API_NOT_FOUND', 'no audit verification with this id was kept (records are kept a day)');
      return found;
    },
  }),
];
