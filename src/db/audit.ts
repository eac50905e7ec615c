/**
 * The audit log: append-only (a trigger refuses UPDATE/DELETE/TRUNCATE) and
 * hash-chained, so `rekey audit verify` also catches edits made around the trigger
 * (a superuser disabling it, a restored dump). There is one chain per secret (and one,
 * named '', for events of no secret), so appends for different secrets never wait on
 * each other. Each row's hash covers its sequence number, its fields and the previous
 * row of its chain; appends take a transaction-scoped advisory lock on their chain so
 * it stays linear across processes.
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

export type VerifyResult = { ok: true; events: number } | { ok: false; events: number; seq: bigint; problem: string };

/** Walks every chain in order and reports the first row (by seq) that does not check out. */
export async function verifyAudit(db: Db, batch = 1000): Promise<VerifyResult> {
  const heads = new Map<string, string>();
  let after = -1n;
  let events = 0;
  for (;;) {
    const rows = (await db.auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: 'asc' }, take: batch })) as AuditRow[];
    for (const row of rows) {
      if (row.prevHash !== (heads.get(row.chain) ?? GENESIS)) {
        return { ok: false, events, seq: row.seq, problem: 'does not follow the row before it (a row was deleted, inserted or reordered)' };
      }
      if (hashOf(row) !== row.hash) return { ok: false, events, seq: row.seq, problem: 'its content does not match its hash (the row was edited)' };
      heads.set(row.chain, row.hash);
      after = row.seq;
      events += 1;
    }
    if (rows.length < batch) return { ok: true, events };
  }
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
