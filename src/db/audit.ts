/**
 * The audit log: append-only (a trigger refuses UPDATE/DELETE/TRUNCATE) and
 * hash-chained, so `rekey audit verify` also catches edits made around the trigger
 * (a superuser disabling it, a restored dump). There is one chain per secret (and one,
 * named '', for events of no secret), so appends for different secrets never wait on
 * each other. Each row's hash covers its sequence number, its fields and the previous
 * row of its chain; appends take a transaction-scoped advisory lock on their chain so
 * it stays linear across processes.
 *
 * A chain alone cannot show that its last rows were deleted. `verify` therefore prints an
 * anchor, `<seq>:<digest of every chain's head at seq>`; kept outside the database (a log
 * store, a ticket), it lets a later `verify --anchor` prove nothing up to it was removed.
 */
import { createHash } from 'node:crypto';
import type { JsonObject, JsonValue } from '../core/ports.js';
import type { Db, Tx } from './client.js';

export const GENESIS = '0'.repeat(64);

export interface AuditInput {
  actor: string;
  action: string;
  secret?: string | null;
  versionId?: string | null;
  runId?: string | null;
  data?: JsonObject;
}

interface AuditRow {
  seq: bigint;
  chain: string;
  at: Date;
  actor: string;
  action: string;
  secret: string | null;
  versionId: string | null;
  runId: string | null;
  data: JsonValue;
  prevHash: string;
  hash: string;
}

/** Appends one event inside the caller's transaction. Call it last: it serializes appends until commit. */
export async function appendAudit(tx: Tx, input: AuditInput): Promise<void> {
  const chain = input.secret ?? '';
  await tx.$queryRaw`SELECT 1 FROM pg_advisory_xact_lock(hashtextextended(${`audit:${chain}`}, 0))`;
  const [head] = await tx.$queryRaw<Array<{ prev: string | null; seq: bigint }>>`
    SELECT (SELECT hash FROM audit_events WHERE chain = ${chain} ORDER BY seq DESC LIMIT 1) AS prev,
           nextval(pg_get_serial_sequence('audit_events', 'seq')) AS seq`;
  const row = {
    seq: head!.seq,
    chain,
    at: new Date(),
    actor: input.actor,
    action: input.action,
    secret: input.secret ?? null,
    versionId: input.versionId ?? null,
    runId: input.runId ?? null,
    data: input.data ?? {},
    prevHash: head!.prev ?? GENESIS,
  };
  await tx.auditEvent.create({ data: { ...row, hash: hashOf(row) } });
}

export type VerifyResult =
  | { ok: true; events: number; /** The log's tip, to keep outside the database. */ anchor: string }
  | { ok: false; events: number; seq: bigint; problem: string };

/** `<seq>:<sha256>`, as `verify` prints it. */
const ANCHOR = /^(\d+):([0-9a-f]{64})$/;

/** Checks an anchor's shape. @returns undefined when it is well formed, else what is wrong. */
export function anchorProblem(anchor: string): string | undefined {
  return ANCHOR.test(anchor) ? undefined : 'an anchor is <seq>:<64 hex digits>, as `rekey audit verify` prints it';
}

/**
 * Walks every chain in order and reports the first row (by seq) that does not check out.
 * With `anchor`, also checks that every chain's head at the anchor's seq is what it was
 * when the anchor was taken: rows deleted from the end of a chain leave a valid chain but
 * not the same heads.
 */
export async function verifyAudit(db: Db, options: { anchor?: string; batch?: number } = {}): Promise<VerifyResult> {
  const batch = options.batch ?? 1000;
  const [, anchorSeq, anchorDigest] = options.anchor ? (ANCHOR.exec(options.anchor) ?? []) : [];
  const heads = new Map<string, string>();
  let after = -1n;
  let events = 0;
  let pendingAnchor = anchorSeq === undefined ? undefined : BigInt(anchorSeq);
  const anchorBroken = () => ({
    ok: false as const,
    events,
    seq: pendingAnchor!,
    problem: 'is the anchor, and the chains up to it are not what they were when it was taken (events were removed)',
  });
  for (;;) {
    const rows = (await db.auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: 'asc' }, take: batch })) as AuditRow[];
    for (const row of rows) {
      if (pendingAnchor !== undefined && row.seq > pendingAnchor) {
        if (digestOf(heads) !== anchorDigest) return anchorBroken();
        pendingAnchor = undefined;
      }
      if (row.prevHash !== (heads.get(row.chain) ?? GENESIS)) {
        return { ok: false, events, seq: row.seq, problem: 'does not follow the row before it (a row was deleted, inserted or reordered)' };
      }
      if (hashOf(row) !== row.hash) return { ok: false, events, seq: row.seq, problem: 'its content does not match its hash (the row was edited)' };
      heads.set(row.chain, row.hash);
      after = row.seq;
      events += 1;
    }
    if (rows.length < batch) {
      if (pendingAnchor !== undefined && digestOf(heads) !== anchorDigest) return anchorBroken();
      return { ok: true, events, anchor: `${after < 0n ? 0n : after}:${digestOf(heads)}` };
    }
  }
}

/** One hash over every chain's head: what an anchor pins. */
function digestOf(heads: Map<string, string>): string {
  return createHash('sha256')
    .update(JSON.stringify([...heads].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
    .digest('hex');
}

function hashOf(row: Omit<AuditRow, 'hash'>): string {
  // The chain joined the hash with the per-secret chains; rows of the '' chain hash as before.
  const fields = [row.seq.toString(), row.at.toISOString(), row.actor, row.action, row.secret, row.versionId, row.runId, canonical(row.data), row.prevHash];
  if (row.chain !== '') fields.push(row.chain);
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** JSON with object keys sorted, so jsonb's key reordering does not change the hash. */
function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k]!)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
