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
 * not answers. The lock is a Redis key refreshed with each write, which it guards (a walk writes
 * its record only while the lock is its own); a second request while one runs is refused 409
 * naming it. Closing the server stops its walks between two batches (`stopped`); a walk whose
 * process died is not written any more, and after STALE_MS it is answered `abandoned`. Either
 * way the walk is taken up again where it stopped: every server looks every RESUME_EVERY_MS at
 * the verification started last, and one of them resumes a stopped or abandoned one from the last
 * checkpoint it wrote (src/db/audit-verify.ts: the signed heads after the last row checked; the
 * heads must still be those), at most MAX_RESUMES times, under the same id. A rolling deploy
 * does not cost an operator a 25-minute walk.
 *
 * Redis holds ids, counts, seqs, the actor, the signed anchor and the problem text, never a
 * value, and each record is sealed with an HMAC under REKEY_AUDIT_KEY, its own id included: whoever
 * can write Redis can delete or hide a verification, or show an older one, but cannot make a
 * failed or never-run verification read as passed (a record whose seal does not verify is
 * answered `tampered`, and nothing of it is shown), nor make a resumed walk skip rows (the
 * checkpoint is in the sealed record).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { describeError, RekeyError } from '../core/errors.js';
import { alarmOnTampering, anchorSeq, requestProblem, type SinceResult, type VerifyResult, verifyAudit, verifySince, type WalkOptions, type WalkProgress, walkPace, walkShare } from '../db/audit-verify.js';
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
/** How often each server looks for a stopped or abandoned verification to take up again. */
const RESUME_EVERY_MS = 5000;
/** How often a walk's checkpoint is taken (each costs a digest of every chain's head). */
const CHECKPOINT_EVERY_MS = 10_000;
/** Times one verification is taken up again; a walk that keeps killing its servers then stays stopped. */
export const MAX_RESUMES = 3;

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
  return since === undefined ? (result as Extract<VerifyResult, { ok: true }>) : { ...result, since: anchorSeq(since).toString() };
}

const STATES = ['running', 'passed', 'failed', 'error', 'stopped', 'abandoned', 'tampered', 'unreadable'] as const;

const verification = z
  .object({
    id: z.string(),
    state: z
      .enum(STATES)
      .describe(
        'running; passed or failed (see result); error (the walk could not go on: see error); stopped (its server shut down) and abandoned (its server stopped writing: died), each taken up again within seconds by a server, where it stopped (see resumed); tampered (its record in Redis does not carry a valid seal: nothing of it is shown); unreadable (sealed, but in a shape this release does not read: written by another release of rekey)',
      ),
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
    resumed: z
      .array(z.object({ at: instant, after: z.string().nullable().describe('the last row checked before it stopped; null: taken up from the start') }))
      .describe(`each time a server took the walk up again after its own stopped or died (at most ${MAX_RESUMES})`),
  })
  .meta({ id: 'AuditVerification' });

type VerificationRecord = z.infer<typeof verification>;

/** What Redis keeps of a verification: the answer and where its walk can go on from (never answered: the API shows progress). */
const stored = verification.extend({
  resumed: verification.shape.resumed.default([]),
  checkpoint: z
    .object({
      anchor: z.string(),
      events: z.number().int(),
      whole: z.object({ keyedSince: z.string(), unkeyed: z.number().int(), unkeyedHeads: z.string(), unkeyedPinned: z.boolean(), anchorPending: z.boolean() }).optional(),
    })
    .nullable()
    .default(null),
});

type Stored = z.infer<typeof stored>;

const verifyBody = z.object({ anchor: z.string().max(200).optional(), since: z.string().max(200).optional() }).strict();

/** Keys, under the queue prefix (its hash tag keeps them in one Cluster slot). */
const keys = (prefix: string) => ({
  record: (id: string) => `${prefix}:audit-verification:${id}`,
  lock: `${prefix}:audit-verification:running`,
  list: `${prefix}:audit-verifications`,
  /** The id of the verification started last: the one resume() may take up (the list's order is the starting servers' clocks'). */
  last: `${prefix}:audit-verification:last`,
});

/**
 * The lock holds the token of the walk that runs: `<id>/<times resumed>`, so a walk taken up again
 * holds another token than the one it was taken from (which, alive after all, then writes nothing).
 */
const tokenOf = (id: string, timesResumed: number) => `${id}/${timesResumed}`;
const idOf = (token: string) => token.split('/')[0]!;

// Takes the lock when free, or when held by `expected` (a walk found abandoned); answers the holder otherwise.
const TAKE = `local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[2] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return false end
return held`;
// Writes a walk's record only while the lock is its own, and refreshes the lock (or releases it: ARGV[4] '0') with it.
const WRITE = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1`;
// Releases the lock if it is still this token's.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface VerificationOptions {
  /** Rows read at a time by the walk. @defaultValue 1000 */
  batch?: number;
  clock?: () => number;
  /** Awaited before each walk begins: a test holds walks running with it. */
  gate?: () => Promise<void>;
  /** How often a walk takes a checkpoint. @defaultValue CHECKPOINT_EVERY_MS */
  checkpointEveryMs?: number;
  /** How often resumeEvery() looks for a walk to take up again. @defaultValue RESUME_EVERY_MS */
  resumeEveryMs?: number;
  /** Told after each full batch a walk checked: a test stops a walk part way with it. */
  onProgress?: (walked: WalkProgress) => void;
}

/** Why a walk was aborted: its lock is another walk's now (it was found abandoned and taken up again). */
const LOST = new Error('the lock is another walk\'s');

/** The verifications a server runs, and the records any replica reads. */
export class Verifications {
  private readonly keys: ReturnType<typeof keys>;
  private readonly running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private readonly clock: () => number;
  private resuming: ReturnType<typeof setInterval> | undefined;

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
    const record: Stored = {
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
      resumed: [],
      checkpoint: null,
    };
    await this.write(record);
    await this.runtime.redis.multi().zadd(this.keys.list, this.clock(), id).zremrangebyrank(this.keys.list, 0, -KEEP - 1).set(this.keys.last, id, 'PX', KEEP_MS).exec();
    this.launch(record);
    return shown(record);
  }

  /** The record of `id` as it stands, or undefined when none is kept. */
  async get(id: string): Promise<VerificationRecord | undefined> {
    const found = await this.stored(id);
    return found && shown(found);
  }

  /** The kept records, newest first. */
  async list(): Promise<VerificationRecord[]> {
    const ids = await this.runtime.redis.zrevrange(this.keys.list, 0, KEEP - 1);
    if (!ids.length) return [];
    const kept = await this.runtime.redis.mget(...ids.map((id) => this.keys.record(id)));
    return ids.flatMap((id, i) => {
      const found = this.read(id, kept[i] ?? null);
      return found ? [shown(found)] : [];
    });
  }

  /** Looks for a stopped or abandoned verification to take up again (resume()) every `resumeEveryMs`, from now until close(). */
  resumeEvery(): void {
    this.resuming ??= setInterval(() => {
      this.resume().catch((error: unknown) => this.runtime.log.debug({ error: describeError(error) }, 'audit verification: could not look for one to take up again'));
    }, this.options.resumeEveryMs ?? RESUME_EVERY_MS);
    this.resuming.unref();
  }

  /**
   * Takes up the verification started last again, from its checkpoint, when it was stopped or
   * abandoned and has been taken up fewer than MAX_RESUMES times. One server wins the lock;
   * the others leave it.
   * @returns its id when this server took it up.
   */
  async resume(): Promise<string | undefined> {
    const id = await this.runtime.redis.get(this.keys.last);
    const found = id === null ? undefined : await this.stored(id);
    if (!found || !resumable(found)) return undefined;
    const token = tokenOf(found.id, found.resumed.length + 1);
    const expected = found.state === 'abandoned' ? tokenOf(found.id, found.resumed.length) : '';
    if ((await this.runtime.redis.eval(TAKE, 1, this.keys.lock, token, expected, String(STALE_MS))) !== null) return undefined;
    // Read again under the lock: another server may have taken it up, and finished, meanwhile.
    const record = await this.stored(found.id);
    if (!record || !resumable(record) || record.resumed.length !== found.resumed.length) {
      await this.runtime.redis.eval(RELEASE, 1, this.keys.lock, token);
      return undefined;
    }
    const at = new Date(this.clock()).toISOString();
    Object.assign(record, { state: 'running', updatedAt: at, finishedAt: null, resumed: [...record.resumed, { at, after: record.checkpoint ? anchorSeq(record.checkpoint.anchor).toString() : null }] });
    if (!(await this.write(record))) return undefined;
    this.runtime.log.info({ verification: record.id, after: record.resumed.at(-1)!.after }, 'audit verification: taken up again where it stopped');
    this.launch(record);
    return record.id;
  }

  /** Stops this server's walks between two batches and waits for their records to say so. */
  async close(): Promise<void> {
    clearInterval(this.resuming);
    this.resuming = undefined;
    for (const { abort } of this.running.values()) abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private launch(record: Stored): void {
    const abort = new AbortController();
    const done = this.walk(record, abort).finally(() => this.running.delete(record.id));
    this.running.set(record.id, { abort, done });
  }

  private async walk(record: Stored, abort: AbortController): Promise<void> {
    const { signal } = abort;
    const started = this.clock();
    // A walk taken up again: its pace counts from where it was taken up.
    const base = { events: record.checkpoint?.events ?? 0, seq: record.checkpoint ? anchorSeq(record.checkpoint.anchor) : 0n };
    let walked: WalkProgress | undefined;
    /** The record as of now: its progress and when it was written. */
    const update = () => {
      if (walked) {
        const { events, seq, from, upper } = walked;
        const share = walkShare(walked);
        const { perSecond, secondsLeft } = walkPace({ events: events - base.events, seq, from: base.seq > from ? base.seq : from, upper }, this.clock() - started);
        record.progress = { events, seq: seq.toString(), from: from.toString(), upper: upper.toString(), share, perSecond, secondsLeft: secondsLeft ?? null };
      }
      record.updatedAt = new Date(this.clock()).toISOString();
    };
    const persist = async () => {
      update();
      // Another walk holds the lock: this one was found abandoned and taken up again.
      if (!(await this.write(record))) abort.abort(LOST);
    };
    // A write that fails (Redis away a moment) is retried by the next; the walk goes on.
    const timer = setInterval(() => void persist().catch(() => undefined), PERSIST_EVERY_MS);
    timer.unref();
    const { db, audit } = this.runtime;
    const options: WalkOptions = {
      progress: (p) => {
        walked = p;
        this.options.onProgress?.(p);
      },
      signal,
      checkpoint: { everyMs: this.options.checkpointEveryMs ?? CHECKPOINT_EVERY_MS, save: (c) => (record.checkpoint = c) },
      ...(record.checkpoint ? { resume: record.checkpoint } : {}),
      ...(this.options.batch ? { batch: this.options.batch } : {}),
    };
    const since = record.kind === 'since' ? record.anchor! : undefined;
    try {
      await this.options.gate?.();
      const result = since === undefined ? await verifyAudit(db, audit, { ...options, ...(record.anchor ? { anchor: record.anchor } : {}) }) : await verifySince(db, audit, since, options);
      // Raised before the record says failed (it never throws: a notice it cannot write is logged).
      await alarmOnTampering(this.runtime, result);
      record.result = answerOf(result, since);
      record.state = result.ok ? 'passed' : 'failed';
      // Passed: it checked every row up to its anchor (progress is told full batches only).
      if (result.ok) {
        const upper = anchorSeq(result.anchor);
        walked = { events: result.events, seq: upper, from: walked?.from ?? (since ? anchorSeq(since) : 0n), upper };
      }
    } catch (error) {
      record.state = signal.aborted ? 'stopped' : 'error';
      record.error = signal.aborted ? null : this.failure(error);
    } finally {
      clearInterval(timer);
    }
    if (signal.reason !== LOST) {
      update();
      record.finishedAt = record.updatedAt;
      try {
        // The record and the lock's release in one step: whoever reads this walk finished may start the next at once.
        if (await this.write(record)) return;
      } catch (error) {
        // The lock lapses by itself, and the record says running until it is found abandoned.
        this.runtime.log.warn({ verification: record.id, error: describeError(error) }, 'audit verification: its outcome could not be written to Redis');
        return;
      }
    }
    this.runtime.log.warn({ verification: record.id }, 'audit verification: another walk holds the lock (this one was found abandoned): this one stopped and wrote nothing more');
  }

  /** Takes the lock for a new walk `id`; answers the id of the walk that holds it instead, if one runs. */
  private async take(id: string): Promise<string | undefined> {
    const redis = this.runtime.redis;
    const token = tokenOf(id, 0);
    const held = (await redis.eval(TAKE, 1, this.keys.lock, token, '', String(STALE_MS))) as string | null;
    if (held === null) return undefined;
    // Held by a walk whose server stopped writing (died): take it over, unless it moved meanwhile.
    if ((await this.stored(idOf(held)))?.state !== 'abandoned') return idOf(held);
    const still = (await redis.eval(TAKE, 1, this.keys.lock, token, held, String(STALE_MS))) as string | null;
    return still === null ? undefined : idOf(still);
  }

  /** Writes `record` sealed, while the lock is its walk's: refreshed while it runs, released with its last write. False when the lock is another's. */
  private async write(record: Stored): Promise<boolean> {
    const body = JSON.stringify(record);
    const sealed = JSON.stringify({ body, seal: this.runtime.audit.sealOf(body) });
    const lockMs = record.state === 'running' ? String(STALE_MS) : '0';
    return (await this.runtime.redis.eval(WRITE, 2, this.keys.lock, this.keys.record(record.id), tokenOf(record.id, record.resumed.length), sealed, String(KEEP_MS), lockMs)) === 1;
  }

  private async stored(id: string): Promise<Stored | undefined> {
    return this.read(id, await this.runtime.redis.get(this.keys.record(id)));
  }

  private read(id: string, kept: string | null): Stored | undefined {
    if (kept === null) return undefined;
    let body: unknown;
    try {
      const parsed = JSON.parse(kept) as { body?: unknown; seal?: unknown };
      if (typeof parsed.body !== 'string' || typeof parsed.seal !== 'string' || !this.runtime.audit.sealMatches(parsed.body, parsed.seal)) return blankRecord(id, 'tampered');
      body = JSON.parse(parsed.body);
    } catch {
      return blankRecord(id, 'tampered');
    }
    // Sealed under this key, in a shape this release does not read: another release wrote it (an upgrade under way), not an attacker.
    const read = stored.safeParse(body);
    if (!read.success) return blankRecord(id, 'unreadable');
    const record = read.data;
    // A sealed record moved under another id (an older pass shown for a newer walk) is not this one.
    if (record.id !== id) return blankRecord(id, 'tampered');
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

/** A stopped or abandoned walk that may be taken up again. */
const resumable = (record: Stored) => (record.state === 'stopped' || record.state === 'abandoned') && record.kind !== null && record.resumed.length < MAX_RESUMES;

/** What the API answers of a kept record: all but its checkpoint. */
function shown({ checkpoint: _, ...record }: Stored): VerificationRecord {
  return { ...record, ...(record.progress ? { progress: { ...record.progress } } : {}) };
}

/** What is shown of a record whose seal does not verify (tampered), or that this release cannot read: its id and that, nothing it says. */
function blankRecord(id: string, state: 'tampered' | 'unreadable'): Stored {
  return { id, state, kind: null, anchor: null, startedBy: null, startedAt: null, updatedAt: null, finishedAt: null, progress: null, result: null, error: null, resumed: [], checkpoint: null };
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
