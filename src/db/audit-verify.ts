/**
 * Checking the audit log and taking anchors of it.
 *
 * A chain alone cannot show that its last rows were deleted. An anchor pins every chain's
 * head at one seq: `<seq>:<digest of the heads>:<HMAC under REKEY_AUDIT_KEY>`. Anchors are
 * taken by `rekey audit verify` and, at least hourly, by the cluster's anchor job
 * (src/audit-anchor.ts), which writes them where the operator keeps them (the log, a
 * webhook); a later `verify --anchor` proves nothing up to one was removed or rewritten.
 * Anchors of earlier versions (`<seq>:<digest>`, unsigned) are still accepted.
 */
import { timingSafeEqual } from 'node:crypto';
import { type AuditLog, type AuditRow, digestOf, EPOCH_ACTION, GENESIS, settledSeq } from './audit.js';
import type { Db } from './client.js';

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
  | { ok: false; events: number; seq: bigint; problem: string };

const ANCHOR = /^(\d+):([0-9a-f]{64})(?::([0-9a-f]{64}))?$/;

/** Checks an anchor's shape. @returns undefined when it is well formed, else what is wrong. */
export function anchorProblem(anchor: string): string | undefined {
  return ANCHOR.test(anchor) ? undefined : 'an anchor is <seq>:<64 hex digits>[:<64 hex digits>], as `rekey audit verify` and the anchor job print it';
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
export async function verifyAudit(db: Db, log: AuditLog, options: { anchor?: string; signed?: boolean; batch?: number } = {}): Promise<VerifyResult> {
  const batch = options.batch ?? 1000;
  const keyId = log.keyId();
  const parsed = options.anchor === undefined ? undefined : ANCHOR.exec(options.anchor);
  // An anchor that is not one is a failure, never a check quietly skipped.
  if (parsed === null) return { ok: false, events: 0, seq: 0n, problem: 'is the anchor, and it is malformed (not <seq>:<64 hex digits>[:<64 hex digits>])' };
  const [, anchorSeq, anchorDigest, anchorMac] = parsed ?? [];
  let pendingAnchor = anchorSeq === undefined ? undefined : BigInt(anchorSeq);
  if (options.signed && pendingAnchor !== undefined && anchorMac === undefined) {
    return { ok: false, events: 0, seq: pendingAnchor, problem: 'is the anchor, and it carries no signature, which every anchor rekey takes now does (replaced by someone without REKEY_AUDIT_KEY)' };
  }
  if (anchorMac !== undefined && !sameHex(anchorMac, log.anchorMac(`${anchorSeq}:${anchorDigest}`))) {
    return { ok: false, events: 0, seq: pendingAnchor!, problem: 'is the anchor, and its signature does not verify under REKEY_AUDIT_KEY (forged, or taken under another key)' };
  }
  const upper = await settledSeq(db);
  const heads = new Map<string, string>();
  const unkeyedHeads = new Map<string, string>();
  let keyedSince: bigint | undefined;
  let unkeyed = 0;
  let unkeyedPinned = false;
  // No lower bound: sequence numbers are written by whoever inserts, so a row below 1 (0, -5) is read and refused too.
  let after: bigint | undefined;
  let events = 0;
  const fail = (seq: bigint, problem: string) => ({ ok: false as const, events, seq, problem });
  const anchorBroken = () => fail(pendingAnchor!, 'is the anchor, and the chains up to it are not what they were when it was taken (events were removed or rewritten)');
  for (;;) {
    const rows = (await db.auditEvent.findMany({ where: { seq: { ...(after === undefined ? {} : { gt: after }), lte: upper } }, orderBy: { seq: 'asc' }, take: batch })) as AuditRow[];
    for (const row of rows) {
      if (pendingAnchor !== undefined && row.seq > pendingAnchor) {
        if (digestOf(heads) !== anchorDigest) return anchorBroken();
        pendingAnchor = undefined;
      }
      // seq is a BIGSERIAL from 1: a row below was written by hand, e.g. an unkeyed one slipped in before the first keyed row.
      if (row.seq < 1n) return fail(row.seq, 'is numbered below 1, where the log starts (inserted by hand)');
      if (row.prevHash !== (heads.get(row.chain) ?? GENESIS)) return fail(row.seq, 'does not follow the row before it (a row was deleted, inserted or reordered)');
      if (row.keyId === null && keyedSince !== undefined) return fail(row.seq, `is not keyed, yet the log is keyed since row ${keyedSince} (written without REKEY_AUDIT_KEY)`);
      if (row.keyId !== null && row.keyId !== keyId) return fail(row.seq, `was written under another REKEY_AUDIT_KEY (key id ${row.keyId}; this one is ${keyId})`);
      if (!sameHex(log.hashOf(row), row.hash)) return fail(row.seq, 'its content does not match its hash (the row was edited or forged)');
      if (row.keyId === null) {
        unkeyed += 1;
        unkeyedHeads.set(row.chain, row.hash);
      } else keyedSince ??= row.seq;
      if (row.keyId !== null && row.action === EPOCH_ACTION) {
        const pin = row.data as { unkeyed?: number; unkeyedHeads?: string };
        if (pin.unkeyed !== unkeyed || pin.unkeyedHeads !== digestOf(unkeyedHeads)) {
          return fail(row.seq, 'pins the rows from before REKEY_AUDIT_KEY, and they are not what they were (rewritten)');
        }
        unkeyedPinned = true;
      }
      heads.set(row.chain, row.hash);
      after = row.seq;
      events += 1;
    }
    if (rows.length < batch) {
      if (pendingAnchor !== undefined && digestOf(heads) !== anchorDigest) return anchorBroken();
      return { ok: true, events, anchor: signedAnchor(log, upper, heads), unkeyed, unkeyedPinned };
    }
  }
}

/**
 * A signed anchor of the log as it is now, from the chains' heads (an index walk, not a
 * verification): what the anchor job exports. Starts the keyed epoch first when rows from
 * before REKEY_AUDIT_KEY are not pinned yet.
 */
export async function takeAnchor(db: Db, log: AuditLog, actor: string): Promise<{ anchor: string; seq: bigint }> {
  await pinUnkeyed(db, log, actor);
  const seq = await settledSeq(db);
  const rows = await db.$queryRaw<Array<{ chain: string; hash: string }>>`
    SELECT DISTINCT ON (chain) chain, hash FROM audit_events WHERE seq <= ${seq} ORDER BY chain, seq DESC`;
  return { anchor: signedAnchor(log, seq, new Map(rows.map((r) => [r.chain, r.hash]))), seq };
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

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
