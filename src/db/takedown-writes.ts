/**
 * The writes of leaks, takedowns and decommissions (transitions, leak reports, blocked
 * stamps, grace ends), each one transaction that takes the secret lock (see repository.ts)
 * and appends its audit events. Named statements (src/db/sql.ts), batched as a rotation's
 * steps are: the lock, the write and the audit take leave together, the audit insert with COMMIT.
 */
import { randomUUID } from 'node:crypto';
import { RekeyError } from '../core/errors.js';
import { type AuditContext, type DecommissionSnapshot, type LeakOutcome, type LeakRecord, type LeakReportInput, type VersionChange, type VersionRecord, type VersionState, canTransition } from '../core/model.js';
import type { Notice } from '../core/notify.js';
import { type AuditLog, TAKE, takeOf, takeValues } from './audit.js';
import { writeNotices } from './outbox.js';
import type { Db } from './client.js';
import { OPEN, auditOf } from './runs.js';
import { versionsIn } from './reads.js';
import { LOCK_SECRET, LOCK_SECRET_OF_VERSION } from './locks.js';
import { applyChanges } from './rotation-steps.js';
import { NOW, type SqlTx, sql, statement, transaction } from './sql.js';
import { COMPROMISE, type CompromiseRow, leakedEvent, refuseIllegal } from './transitions.js';

/**
 * Version `$1` to state `$3` from one of the states `$2`, stamping retired_at / revoked_at /
 * compromised_at (an earlier compromised_at is kept); `moved` counts it. The version is read as
 * it was before: run it after the secret lock, in a statement of its own, so that is what the
 * lock's last holder left. With lease owner `$4` (null: any caller), only while it holds the
 * version's open run, whose row it locks after the secret lock (promote's order); `leased` says whether it did.
 */
const TRANSITION = statement(
  'version_transition',
  `WITH l AS (SELECT 1 FROM runs WHERE version_id = $1 AND lease_owner = $4 AND ${OPEN} FOR NO KEY UPDATE),
        u AS (UPDATE versions SET state = $3::text::"VersionState",
       retired_at = CASE WHEN $3::text = 'retired' THEN ${NOW} ELSE retired_at END,
       revoked_at = CASE WHEN $3::text = 'revoked' THEN ${NOW} ELSE revoked_at END,
       compromised_at = CASE WHEN $3::text = 'compromised' THEN coalesce(compromised_at, ${NOW}) ELSE compromised_at END
     WHERE id = $1 AND state::text = ANY($2::text[]) AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM l)) RETURNING id)
   SELECT v.state::text AS state, v.number, s.name AS secret, (SELECT count(*) FROM u)::int AS moved,
     ($4::text IS NULL OR EXISTS (SELECT 1 FROM l)) AS leased
   FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.id = $1`,
);
/**
 * A leak report, once per (source, delivery, fingerprint): nothing on a repeat. Its blocked_at:
 * `$9` for a version already revoked, else the version's own stamp (no earlier than `$8`, when
 * it was received) when its revocation finished first. After the secret lock, as {@link TRANSITION}.
 */
const INSERT_LEAK = statement(
  'leak_report_insert',
  `INSERT INTO leak_reports (id, source, delivery_id, fingerprint, secret_id, version_id, outcome, received_at, blocked_at)
   SELECT $1, $2, $3, $4, $5::uuid, $6::uuid, $7, $8::timestamp,
     coalesce($9::timestamp, (SELECT CASE WHEN blocked_at IS NOT NULL THEN greatest(blocked_at, $8::timestamp) END FROM versions WHERE id = $6::uuid))
   ON CONFLICT (source, delivery_id, fingerprint) DO NOTHING
   RETURNING blocked_at`,
);
const LEAK_BY_DELIVERY = statement(
  'leak_report_by_delivery',
  `SELECT id, outcome, version_id FROM leak_reports WHERE source = $1 AND delivery_id = $2 AND fingerprint = $3`,
);
/** blocked_at on version `$1` (once) and on its open leak reports, whose receipt times it returns. After the secret lock. */
const BLOCK_VERSION = statement('version_block', `UPDATE versions SET blocked_at = coalesce(blocked_at, ${NOW}) WHERE id = $1 RETURNING id`);
const BLOCK_REPORTS = statement('leak_reports_block', `UPDATE leak_reports SET blocked_at = ${NOW} WHERE version_id = $1 AND blocked_at IS NULL RETURNING received_at`);

/** Thrown inside a transaction that turned out to change nothing: rolls it back (its take included). */
const UNCHANGED = new Error('nothing to change');
/** Thrown inside transition's transaction when its lease owner does not hold the version's open run: rolls it back. */
const NOT_LEASED = new Error("the run is not the lease owner's");

interface Before {
  state: VersionState;
  number: number;
  secret: string;
  moved: number;
  leased: boolean;
}

export class TakedownWrites {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
  ) {}

  /**
   * One batch: the secret lock, the change (reading the version as the lock left it) and the
   * audit take; the event and COMMIT in a second. Rolled back when nothing moved.
   */
  async transition(versionId: string, from: readonly VersionState[], to: VersionState, audit: AuditContext, leaseOwner?: string): Promise<boolean | null> {
    return transaction(this.db, async (tx) => {
      const legal = from.filter((state) => canTransition(state, to));
      const [, changed, taken] = await tx.batch([[LOCK_SECRET_OF_VERSION, [versionId]], [TRANSITION, [versionId, legal, to, leaseOwner ?? null]], takeOf({ version: versionId }, 1)]);
      const version = before(changed as Before[], versionId);
      if (!version.leased) throw NOT_LEASED;
      if (!from.includes(version.state)) throw UNCHANGED;
      refuseIllegal(version, to);
      if (version.moved !== 1) throw new RekeyError('REKEY_ERR_CONFLICT', `version ${version.number} of ${version.secret} changed while it was being moved`);
      await this.audit.appendTaken(tx, [{ ...auditOf(audit), action: `version.${to}`, secret: version.secret, versionId, data: { from: version.state, to, number: version.number } }], taken!);
      return true;
    }).catch((error: unknown) => (error === NOT_LEASED ? null : unchanged(false)(error)));
  }

  /** As {@link transition}: the lock, the stamp and the take in one batch (also the first statements of a leak's run, runs.ts). */
  async markCompromised(versionId: string, audit: AuditContext) {
    await transaction(this.db, async (tx) => {
      const [, changed, taken] = await tx.batch([[LOCK_SECRET_OF_VERSION, [versionId]], [COMPROMISE, [versionId]], takeOf({ version: versionId }, 1)]);
      const leaked = leakedEvent(changed as CompromiseRow[], versionId, auditOf(audit));
      if (!leaked) throw UNCHANGED;
      await this.audit.appendTaken(tx, [leaked], taken!);
    }).catch(unchanged(undefined));
  }
  async decommission(secretId: string, plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[], audit: AuditContext) {
    return transaction(this.db, async (tx) => {
      await tx.rows(LOCK_SECRET, [secretId]);
      const [rotating] = await tx.rows<{ id: string }>(RUNNING_ROTATION_ID, [secretId]);
      if (rotating) throw new RekeyError('REKEY_ERR_CONFLICT', `a rotation is running (run ${rotating.id}); decommission again once it has finished`);
      const ctx = auditOf(audit);
      const events = await applyChanges(tx, plan(await snapshot(tx, secretId)), ctx);
      const left = await versionsIn(tx, secretId, ['previous', 'retired']);
      const [{ name }] = (await tx.rows<{ name: string }>(SECRET_NAME, [secretId])) as [{ name: string }];
      await this.audit.appendAll(tx, [...events, { ...ctx, action: 'secret.decommissioned', secret: name, data: { versions: left.map((v) => v.number) } }]);
      return left;
    });
  }

  async endGrace(secretId: string, plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[], audit: AuditContext, notices?: (changes: readonly VersionChange[]) => readonly Notice[]) {
    return transaction(this.db, async (tx) => {
      await tx.rows(LOCK_SECRET, [secretId]);
      const changes = plan(await snapshot(tx, secretId));
      const events = await applyChanges(tx, changes, auditOf(audit));
      if (changes.length && notices) await writeNotices(tx, notices(changes));
      await this.audit.appendAll(tx, events);
      return versionsIn(tx, secretId, ['previous']);
    });
  }

  /**
   * One batch: the secret lock of a matched version, the insert (which reads the version's
   * blocked stamp as the lock left it) and the audit take of the report's chain; the notices,
   * the event and COMMIT in a second. A repeat inserts nothing and is rolled back.
   */
  async recordLeak(input: LeakReportInput & { version: VersionRecord | null; outcome: LeakOutcome }, audit: AuditContext, notices?: (record: LeakRecord) => readonly Notice[]): Promise<LeakRecord> {
    const secret = input.version?.secret ?? null;
    const versionId = input.version?.id ?? null;
    const id = randomUUID();
    const recorded = await transaction(this.db, async (tx) => {
      const revoked = input.outcome === 'already-revoked' ? input.receivedAt : null;
      const insert = [id, input.source, input.deliveryId, input.fingerprint, input.version?.secretId ?? null, versionId, input.outcome, input.receivedAt, revoked];
      const answers = await tx.batch([
        ...(input.version ? [[LOCK_SECRET, [input.version.secretId]] as const] : []),
        [INSERT_LEAK, insert],
        [TAKE, takeValues(secret ?? '', 1)],
      ]);
      const [row] = answers.at(-2) as Array<{ blocked_at: Date | null }>;
      if (!row) throw UNCHANGED;
      const record = { id, outcome: input.outcome, secret, versionId, duplicate: false, blockedAt: revoked ? null : row.blocked_at };
      await writeNotices(tx, notices?.(record) ?? []);
      await this.audit.appendTaken(tx, [{ ...auditOf(audit), action: 'leak.reported', secret, versionId, data: { source: input.source, deliveryId: input.deliveryId, fingerprint: input.fingerprint, outcome: input.outcome } }], answers.at(-1)!);
      return record;
    }).catch(unchanged(null));
    if (recorded) return recorded;
    const [row] = await sql(this.db).rows<{ id: string; outcome: string; version_id: string | null }>(LEAK_BY_DELIVERY, [input.source, input.deliveryId, input.fingerprint]);
    return { id: row!.id, outcome: row!.outcome as LeakOutcome, secret, versionId: row!.version_id, duplicate: true, blockedAt: null };
  }

  /** One batch: the secret lock and both stamps; the notices and COMMIT in a second. */
  async markBlocked(versionId: string, notices?: (receivedAt: readonly Date[]) => readonly Notice[]) {
    return transaction(this.db, async (tx) => {
      const [locked, , reports] = await tx.batch([[LOCK_SECRET_OF_VERSION, [versionId]], [BLOCK_VERSION, [versionId]], [BLOCK_REPORTS, [versionId]]]);
      if (!locked!.length) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
      const received = (reports as Array<{ received_at: Date }>).map((r) => r.received_at);
      if (received.length) await writeNotices(tx, notices?.(received) ?? []);
      return received;
    });
  }
}

/** The version as a {@link TRANSITION}-like statement read it. @throws RekeyError REKEY_ERR_UNKNOWN for no such version. */
function before(rows: readonly Before[], versionId: string): Before {
  const [row] = rows;
  if (!row) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
  return row;
}

/** `value` for a transaction rolled back by {@link UNCHANGED}; any other error is rethrown. */
function unchanged<T>(value: T): (error: unknown) => T {
  return (error) => {
    if (error === UNCHANGED) return value;
    throw error;
  };
}

const RUNNING_ROTATION_ID = statement('running_rotation_id', `SELECT id FROM runs WHERE secret_id = $1 AND kind = 'rotation' AND status = 'running' LIMIT 1`);
const SECRET_NAME = statement('secret_name', `SELECT name FROM secrets WHERE id = $1`);

/** What planDecommission and planGraceEnd read under the secret lock. */
async function snapshot(tx: SqlTx, secretId: string): Promise<DecommissionSnapshot> {
  const versions = await versionsIn(tx, secretId, ['current', 'previous']);
  return { current: versions.find((v) => v.state === 'current') ?? null, previous: versions.filter((v) => v.state === 'previous'), now: new Date() };
}
