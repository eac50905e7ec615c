/**
 * Checking the audit log and taking anchors of it.
 *
 * A chain alone cannot show that its last rows were deleted. An anchor pins every chain's
 * head at one seq: `<seq>:<digest of the heads>:<HMAC under REKEY_AUDIT_KEY>`. Anchors are
 * taken by `rekey audit verify` and, at least hourly, by the cluster's anchor job
 * (src/audit-anchor.ts), which writes them where the operator keeps them (the log, a
 * webhook); a later `verify --anchor` proves nothing up to one was removed or rewritten.
 * Anchors of earlier versions (`<seq>:<digest>`, unsigned) are still accepted.
 *
 * A walk of the whole log costs what the log holds (~60,000 rows/s here), and the log only
 * grows (every hand-out is a row), so the anchor job walks only what was appended since a
 * signed anchor (verifySince), from the heads that anchor pins, found per chain by index
 * (headsAt), and the whole log once a day.
 */
import type { Logger } from 'pino';
import { humanDuration } from '../core/duration.js';
import { describeError } from '../core/errors.js';
import { notify, type Notifier } from '../core/notify.js';
import { type AuditLog, type AuditRow, digestOf, EPOCH_ACTION, GENESIS, sameHex, settledSeq } from './audit.js';
import type { Db } from './client.js';
import { sql, statement } from './sql.js';

/** A walk that found a row (or the anchor, or its seq) that does not check out. */
export interface VerifyFailure {
  ok: false;
  events: number;
  seq: bigint;
  problem: string;
  /** The anchor given was refused before any row was read (malformed, unsigned where a signature is required, a signature that does not verify): it, not the log, did not check out. */
  anchorRefused: boolean;
}

/** A failure of an anchor refused before any row was read. */
const refusedAnchor = (seq: bigint, problem: string): VerifyFailure => ({ ok: false, events: 0, seq, problem, anchorRefused: true });

/**
 * Raises `audit.verify-failed` for a walk's failure (its id is the seq: a failure found again, by
 * the anchor job or an operator, makes no second notice). Operators' walks leave out the failures
 * of an anchor refused before any row was read (their input); the anchor job's anchor is its own.
 */
export function raiseVerifyFailed(deps: { notifier: Notifier }, failure: VerifyFailure): Promise<void> {
  const seq = failure.seq.toString();
  return notify(deps, 'audit.verify-failed', seq, null, { seq, problem: failure.problem, verifiedEvents: failure.events });
}

/**
 * What an operator's verification (the CLI, the admin API) does with its result: the alarm, when
 * the log itself did not check out. A notice that cannot be written (PostgreSQL away) is logged,
 * and the verification's own answer still says what it found.
 */
export async function alarmOnTampering(deps: { notifier: Notifier; log: Logger }, result: VerifyResult | SinceResult): Promise<void> {
  if (result.ok || result.anchorRefused) return;
  await raiseVerifyFailed(deps, result).catch((error: unknown) =>
    deps.log.error({ component: 'audit', seq: result.seq.toString(), error: describeError(error) }, 'the audit log does not verify, and audit.verify-failed could not be raised'),
  );
}

export type VerifyResult =
  | {
      ok: true;
      events: number;
      /** The log's tip, signed, to keep outside the database. */
      anchor: string;
      /** Rows from before REKEY_AUDIT_KEY (plain SHA-256). */
      unkeyed: number;
      /** Whether an `audit.keyed` event pins those rows. */
      unkeyedPinned: boolean;
    }
  | VerifyFailure;

/** What verifySince found: the rows after the anchor it started from check out, and the log's tip, signed. */
export type SinceResult = { ok: true; events: number; anchor: string } | VerifyFailure;

/** How far a walk has come: `events` rows checked, the last at `seq`, of the rows after `from` up to `upper` (the settled seq when it started). */
export interface WalkProgress {
  events: number;
  seq: bigint;
  from: bigint;
  upper: bigint;
}

/** The share of a walk's seq range behind it (sequence numbers have gaps, so an estimate). */
export function walkShare(walked: WalkProgress): number {
  const span = Number(walked.upper - walked.from);
  return span > 0 ? Math.min(1, Number(walked.seq - walked.from) / span) : 1;
}

/** A walk's pace: its share (walkShare), rows checked per second, and the seconds left at that rate (undefined before any). */
export function walkPace(walked: WalkProgress, elapsedMs: number): { share: number; perSecond: number; secondsLeft: number | undefined } {
  const share = walkShare(walked);
  const perSecond = walked.events / Math.max(0.001, elapsedMs / 1000);
  const seconds = elapsedMs / 1000;
  return { share, perSecond, secondsLeft: share > 0 ? (seconds / share) * (1 - share) : undefined };
}

/** A WalkOptions.progress that hands `write` a line of the walk's figures at most every `everyMs`; a walk done sooner writes none. */
export function walkReporter(write: (line: string) => void, everyMs: number, clock: () => number = Date.now): (walked: WalkProgress) => void {
  const started = clock();
  let written = started;
  return (walked) => {
    const now = clock();
    if (now - written < everyMs) return;
    written = now;
    const { share, perSecond, secondsLeft } = walkPace(walked, now - started);
    const left = secondsLeft === undefined ? '' : `, about ${humanDuration(secondsLeft * 1000)} left`;
    write(`${walked.events.toLocaleString('en')} events checked, up to row ${walked.seq} of ${walked.upper} (${Math.floor(share * 100)}%), ${Math.round(perSecond).toLocaleString('en')}/s${left}`);
  };
}

/**
 * Where a walk stopped between two batches can go on from (WalkOptions.resume): the signed anchor
 * of every chain's head after the last row it checked, and the rows it checked. A whole walk's
 * also carries what it knows of the rows from before REKEY_AUDIT_KEY (their count and heads'
 * digest, whether an `audit.keyed` event pinned them, the first keyed row) and whether the anchor
 * it was given is still ahead; it takes checkpoints only once it has met a keyed row (after one,
 * every row must be keyed, so no unkeyed head is left to carry). JSON as it is (seqs as text).
 */
export interface Checkpoint {
  anchor: string;
  events: number;
  whole?: { keyedSince: string; unkeyed: number; unkeyedHeads: string; unkeyedPinned: boolean; anchorPending: boolean };
}

/** What both walks take besides their anchor. */
export interface WalkOptions {
  /** Rows read at a time. @defaultValue 1000 */
  batch?: number;
  /** Told after every full batch of rows checked (a walk of less than one batch is told nothing); the result says where the walk ended. */
  progress?: (walked: WalkProgress) => void;
  /** Stops the walk between batches: it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Given a Checkpoint after a full batch, at most every `everyMs` (computing one costs a digest of every chain's head). */
  checkpoint?: { everyMs: number; save(checkpoint: Checkpoint): void };
  /**
   * Goes on from a checkpoint an earlier walk of the same request saved, instead of from the
   * start: the rows up to it were checked by that walk; the heads they left must still be what it
   * pinned (else the walk fails there, as when an anchor's chains were rewritten).
   */
  resume?: Checkpoint;
}

const ANCHOR = /^(\d+):([0-9a-f]{64})(?::([0-9a-f]{64}))?$/;

/** The seq a well-formed anchor (or a checkpoint's) pins: its first field. */
export const anchorSeq = (anchor: string): bigint => BigInt(anchor.slice(0, anchor.indexOf(':')));
const MALFORMED = 'is the anchor, and it is malformed (not <seq>:<64 hex digits>[:<64 hex digits>])';

/**
 * Checks a verify request (`rekey audit verify`, the admin API): at most one of `anchor` (check
 * up to it, verifyAudit) and `since` (check after it, verifySince), and that one well formed.
 * @returns undefined when it can be run, else what is wrong.
 */
export function requestProblem(request: { anchor?: string; since?: string }): string | undefined {
  if (request.anchor !== undefined && request.since !== undefined) return '`anchor` and `since` are two ways to check; give one';
  const given = request.anchor ?? request.since;
  if (given === undefined || ANCHOR.test(given)) return undefined;
  return 'an anchor is <seq>:<64 hex digits>[:<64 hex digits>], as `rekey audit verify` and the anchor job print it';
}

/**
 * Walks every chain in order, up to the settled seq, and reports the first row that does
 * not check out: not following its chain, content not matching its MAC, unkeyed after the
 * keyed epoch began, written under another key. With `anchor`, also checks the anchor's
 * signature and that every chain's head at its seq is what it was when it was taken; with
 * `signed`, an anchor without a signature (of an earlier version) is refused, as an anchor
 * anyone who can read the database could have made. A malformed anchor fails, seq 0.
 * @throws RekeyError REKEY_ERR_CONFIG when REKEY_AUDIT_KEY is not set.
 */
export async function verifyAudit(db: Db, log: AuditLog, options: WalkOptions & { anchor?: string; signed?: boolean } = {}): Promise<VerifyResult> {
  const batch = options.batch ?? 1000;
  const keyId = log.keyId();
  const parsed = options.anchor === undefined ? undefined : ANCHOR.exec(options.anchor);
  // An anchor that is not one is a failure, never a check quietly skipped.
  if (parsed === null) return refusedAnchor(0n, MALFORMED);
  const [, anchorSeq, anchorDigest] = parsed ?? [];
  let pendingAnchor = anchorSeq === undefined ? undefined : BigInt(anchorSeq);
  const refused = pendingAnchor === undefined ? undefined : signatureProblem(log, parsed!, options.signed ?? false);
  if (refused) return refusedAnchor(pendingAnchor!, refused);
  const upper = await settledSeq(db);
  let heads = new Map<string, string>();
  const unkeyedHeads = new Map<string, string>();
  /** A resumed walk's: the digest of the unkeyed rows' heads, which no row after a keyed one changes. */
  let unkeyedDigest: string | undefined;
  let keyedSince: bigint | undefined;
  let unkeyed = 0;
  let unkeyedPinned = false;
  let events = 0;
  let after: bigint | undefined;
  const fail = (seq: bigint, problem: string) => ({ ok: false as const, events, seq, problem, anchorRefused: false });
  const { resume } = options;
  if (resume?.whole) {
    const start = await resumedAt(db, log, resume.anchor);
    events = resume.events;
    if ('problem' in start) return start.refused ? refusedAnchor(start.seq, start.problem) : fail(start.seq, start.problem);
    ({ heads, seq: after } = start);
    keyedSince = BigInt(resume.whole.keyedSince);
    ({ unkeyed, unkeyedPinned } = resume.whole);
    unkeyedDigest = resume.whole.unkeyedHeads;
    if (!resume.whole.anchorPending) pendingAnchor = undefined;
  }
  const checkpoint = (seq: bigint): Checkpoint | undefined =>
    keyedSince === undefined
      ? undefined
      : {
          anchor: signedAnchor(log, seq, heads),
          events,
          whole: { keyedSince: keyedSince.toString(), unkeyed, unkeyedHeads: unkeyedDigest ?? digestOf(unkeyedHeads), unkeyedPinned, anchorPending: pendingAnchor !== undefined },
        };
  for await (const row of rowsBetween(db, after, upper, batch, walked(options, 0n, upper, () => events, checkpoint))) {
    if (pendingAnchor !== undefined && row.seq > pendingAnchor) {
      if (digestOf(heads) !== anchorDigest) return fail(pendingAnchor, ANCHOR_BROKEN);
      pendingAnchor = undefined;
    }
    const problem = rowProblem(log, keyId, heads, row, keyedSince === undefined ? undefined : `is not keyed, yet the log is keyed since row ${keyedSince} (written without REKEY_AUDIT_KEY)`);
    if (problem) return fail(row.seq, problem);
    if (row.keyId === null) {
      unkeyed += 1;
      unkeyedHeads.set(row.chain, row.hash);
    } else keyedSince ??= row.seq;
    if (row.keyId !== null && row.action === EPOCH_ACTION) {
      const pin = row.data as { unkeyed?: number; unkeyedHeads?: string };
      if (pin.unkeyed !== unkeyed || pin.unkeyedHeads !== (unkeyedDigest ?? digestOf(unkeyedHeads))) {
        return fail(row.seq, 'pins the rows from before REKEY_AUDIT_KEY, and they are not what they were (rewritten)');
      }
      unkeyedPinned = true;
    }
    heads.set(row.chain, row.hash);
    events += 1;
  }
  if (pendingAnchor !== undefined && digestOf(heads) !== anchorDigest) return fail(pendingAnchor, ANCHOR_BROKEN);
  return { ok: true, events, anchor: signedAnchor(log, upper, heads), unkeyed, unkeyedPinned };
}

/**
 * Checks what was appended after a signed anchor: its signature, that every chain's head at
 * its seq (headsAt: an index probe per chain, not a walk) is what it pinned, and every row
 * after it as verifyAudit checks them, each chain from that head. Rows at or before the anchor
 * are not read: a row removed from the middle of a chain there, or one slipped in below the
 * anchor's seq, is found only by a walk of the whole log (verifyAudit). Every row after a
 * signed anchor must be keyed (the anchor job pins the unkeyed rows before it takes its first).
 * A malformed anchor, one without a signature or with a signature that does not verify fails,
 * with the anchor's seq (0 when malformed).
 * @throws RekeyError REKEY_ERR_CONFIG when REKEY_AUDIT_KEY is not set.
 */
export async function verifySince(db: Db, log: AuditLog, anchor: string, options: WalkOptions = {}): Promise<SinceResult> {
  const keyId = log.keyId();
  const parsed = ANCHOR.exec(anchor);
  if (!parsed) return refusedAnchor(0n, MALFORMED);
  const since = BigInt(parsed[1]!);
  const refused = signatureProblem(log, parsed, true);
  if (refused) return refusedAnchor(since, refused);
  const upper = await settledSeq(db);
  let events = options.resume?.events ?? 0;
  const start = options.resume ? await resumedAt(db, log, options.resume.anchor) : await pinnedBy(db, since, parsed[2]!);
  if ('problem' in start) return { ok: false, events, seq: start.seq, problem: start.problem, anchorRefused: start.refused };
  const { heads } = start;
  const checkpoint = (seq: bigint): Checkpoint => ({ anchor: signedAnchor(log, seq, heads), events });
  for await (const row of rowsBetween(db, start.seq, upper, options.batch ?? 1000, walked(options, since, upper, () => events, checkpoint))) {
    const problem = rowProblem(log, keyId, heads, row, `is not keyed, yet it comes after a signed anchor (row ${since}), which only a keyed log has (written without REKEY_AUDIT_KEY)`);
    if (problem) return { ok: false, events, seq: row.seq, problem, anchorRefused: false };
    heads.set(row.chain, row.hash);
    events += 1;
  }
  return { ok: true, events, anchor: signedAnchor(log, upper, heads) };
}

const ANCHOR_BROKEN = 'is the anchor, and the chains up to it are not what they were when it was taken (events were removed or rewritten)';

/** Each chain's head at `seq` when they are what `digest` pins, or the failure at `seq`. */
async function pinnedBy(db: Db, seq: bigint, digest: string, problem = ANCHOR_BROKEN): Promise<{ seq: bigint; heads: Map<string, string> } | { seq: bigint; problem: string; refused: false }> {
  const heads = await headsAt(db, seq);
  return digestOf(heads) === digest ? { seq, heads } : { seq, problem, refused: false };
}

/** Where a resumed walk starts: the heads at its checkpoint's seq, which must be what the checkpoint pinned. */
async function resumedAt(db: Db, log: AuditLog, anchor: string): Promise<{ seq: bigint; heads: Map<string, string> } | { seq: bigint; problem: string; refused: boolean }> {
  const parsed = ANCHOR.exec(anchor);
  const seq = BigInt(parsed?.[1] ?? 0);
  // Kept by this walk's own sealed record: never a caller's input, so a bad one is a refusal, not a finding about the log.
  if (!parsed?.[3] || !sameHex(parsed[3], log.anchorMac(`${parsed[1]}:${parsed[2]}`))) return { seq, problem: 'is where this walk stopped, and its checkpoint does not verify under REKEY_AUDIT_KEY', refused: true };
  return pinnedBy(db, seq, parsed[2]!, 'is where this walk stopped, and the chains up to it are not what they were when it got there (events were removed or rewritten since)');
}

/** Why a well-formed anchor is refused before any row is read (no signature where one is required, a signature that does not verify), or undefined. */
function signatureProblem(log: AuditLog, [, seq, digest, mac]: RegExpExecArray, signed: boolean): string | undefined {
  if (mac === undefined) return signed ? 'is the anchor, and it carries no signature, which every anchor rekey takes now does (replaced by someone without REKEY_AUDIT_KEY)' : undefined;
  if (!sameHex(mac, log.anchorMac(`${seq}:${digest}`))) return 'is the anchor, and its signature does not verify under REKEY_AUDIT_KEY (forged, or taken under another key)';
  return undefined;
}

/** What is wrong with `row` given each chain's head before it, or undefined; `unkeyed` is what is wrong with an unkeyed row here, if anything. */
function rowProblem(log: AuditLog, keyId: string, heads: ReadonlyMap<string, string>, row: AuditRow, unkeyed: string | undefined): string | undefined {
  // seq is a BIGSERIAL from 1: a row below was written by hand, e.g. an unkeyed one slipped in before the first keyed row.
  if (row.seq < 1n) return 'is numbered below 1, where the log starts (inserted by hand)';
  if (row.prevHash !== (heads.get(row.chain) ?? GENESIS)) return 'does not follow the row before it (a row was deleted, inserted or reordered)';
  if (row.keyId === null && unkeyed) return unkeyed;
  if (row.keyId !== null && row.keyId !== keyId) return `was written under another REKEY_AUDIT_KEY (key id ${row.keyId}; this one is ${keyId})`;
  if (!sameHex(log.hashOf(row), row.hash)) return 'its content does not match its hash (the row was edited or forged)';
  return undefined;
}

// seq comes as text (node-postgres reads int8 so) and is made a BigInt below.
const COLUMNS = `seq, chain, at, actor, action, secret, version_id AS "versionId", run_id AS "runId", data, prev_hash AS "prevHash", hash, key_id AS "keyId"`;
const WALK_FROM_START = statement('audit_walk_from_start', `SELECT ${COLUMNS} FROM audit_events WHERE seq <= $1 ORDER BY seq LIMIT $2`);
const WALK_AFTER = statement('audit_walk_after', `SELECT ${COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`);

/**
 * The rows after `after` up to `upper`, in order, `batch` at a time; from the first when `after`
 * is undefined, with no lower bound: sequence numbers are written by whoever inserts, so a row
 * numbered below 1 (0, -5) is read and refused too. Named statements on the pool (src/db/sql.ts:
 * Prisma's row mapping took twice the read's time), and the next batch is read while the caller
 * checks this one, so a walk costs about the larger of the reads and the MACs, not their sum.
 * `between` is called after each full batch has been checked, with its last seq.
 */
async function* rowsBetween(db: Db, after: bigint | undefined, upper: bigint, batch: number, between: (seq: bigint) => void): AsyncGenerator<AuditRow> {
  const runner = sql(db);
  const read = (from: bigint | undefined) => {
    const rows = from === undefined ? runner.rows<WalkedRow>(WALK_FROM_START, [upper.toString(), batch]) : runner.rows<WalkedRow>(WALK_AFTER, [from.toString(), upper.toString(), batch]);
    const mapped = rows.then((found) => found.map((row): AuditRow => ({ ...row, seq: BigInt(row.seq) })));
    // A caller that stops at a bad row leaves the read ahead unawaited: its failure is not unhandled.
    mapped.catch(() => undefined);
    return mapped;
  };
  let next = read(after);
  for (;;) {
    const rows = await next;
    if (rows.length === batch) next = read(rows.at(-1)!.seq);
    yield* rows;
    if (rows.length < batch) return;
    between(rows.at(-1)!.seq);
  }
}

/** What rowsBetween calls between two batches: stop when the walk's signal says so, else tell its progress and save a checkpoint when one is due. */
function walked(options: WalkOptions, from: bigint, upper: bigint, events: () => number, checkpoint: (seq: bigint) => Checkpoint | undefined): (seq: bigint) => void {
  let saved: number | undefined;
  return (seq) => {
    options.signal?.throwIfAborted();
    options.progress?.({ events: events(), seq, from, upper });
    const every = options.checkpoint;
    if (!every || (saved !== undefined && performance.now() - saved < every.everyMs)) return;
    const taken = checkpoint(seq);
    if (taken === undefined) return;
    every.save(taken);
    saved = performance.now();
  };
}

type WalkedRow = Omit<AuditRow, 'seq'> & { seq: string };

/**
 * Each chain's head at `seq`: its last row at or below it. The chains come from audit_events
 * itself (a skip over the (chain, seq) index, one probe per chain), not from audit_heads, and
 * each head is one backward probe of the same index: the cost follows the number of chains, not
 * of rows (a DISTINCT ON over the table reads every row of it).
 */
export async function headsAt(db: Db, seq: bigint): Promise<Map<string, string>> {
  const rows = await db.$queryRaw<Array<{ chain: string; hash: string }>>`
    WITH RECURSIVE chains(chain) AS (
      (SELECT chain FROM audit_events ORDER BY chain LIMIT 1)
      UNION ALL
      SELECT (SELECT e.chain FROM audit_events e WHERE e.chain > c.chain ORDER BY e.chain LIMIT 1) FROM chains c WHERE c.chain IS NOT NULL
    )
    SELECT c.chain, h.hash FROM chains c
      CROSS JOIN LATERAL (SELECT e.hash FROM audit_events e WHERE e.chain = c.chain AND e.seq <= ${seq} ORDER BY e.seq DESC LIMIT 1) h
     WHERE c.chain IS NOT NULL`;
  return new Map(rows.map((r) => [r.chain, r.hash]));
}

/**
 * A signed anchor of the log as it is now, from the chains' heads (headsAt, not a
 * verification): what the anchor job exports. Starts the keyed epoch first when rows from
 * before REKEY_AUDIT_KEY are not pinned yet.
 */
export async function takeAnchor(db: Db, log: AuditLog, actor: string): Promise<{ anchor: string; seq: bigint }> {
  await pinUnkeyed(db, log, actor);
  const seq = await settledSeq(db);
  return { anchor: signedAnchor(log, seq, await headsAt(db, seq)), seq };
}

/** Databases whose unkeyed rows this process has seen pinned (or found none): the check is not repeated. */
const pinned = new WeakSet<Db>();

/** Records the `audit.keyed` event over the unkeyed rows (frozen since the migration, so all before any keyed row), once. */
async function pinUnkeyed(db: Db, log: AuditLog, actor: string): Promise<void> {
  if (pinned.has(db)) return;
  const first = await db.auditEvent.findFirst({ orderBy: { seq: 'asc' }, select: { keyId: true } });
  if (first && first.keyId === null) await pin(db, log, actor);
  if (first) pinned.add(db);
}

async function pin(db: Db, log: AuditLog, actor: string): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT 1 FROM pg_advisory_xact_lock(hashtextextended('audit-pin', 0))`;
    if (await tx.auditEvent.findFirst({ where: { action: EPOCH_ACTION, keyId: { not: null } }, select: { seq: true } })) return;
    const rows = await tx.$queryRaw<Array<{ chain: string; hash: string; n: bigint }>>`
      SELECT DISTINCT ON (chain) chain, hash, count(*) OVER (PARTITION BY chain) AS n
        FROM audit_events WHERE key_id IS NULL ORDER BY chain, seq DESC`;
    const unkeyed = rows.reduce((sum, r) => sum + Number(r.n), 0);
    await log.append(tx, { actor, action: EPOCH_ACTION, data: { unkeyed, unkeyedHeads: digestOf(new Map(rows.map((r) => [r.chain, r.hash]))) } });
  });
}

function signedAnchor(log: AuditLog, seq: bigint, heads: Map<string, string>): string {
  const body = `${seq}:${digestOf(heads)}`;
  return `${body}:${log.anchorMac(body)}`;
}
