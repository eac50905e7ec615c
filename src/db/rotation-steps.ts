/**
 * A rotation's version writes, each one transaction with its audit events (README,
 * Architecture: what each commit holds): the version created, issued, pending, its
 * delivery rows and the run's step, the promotion. Named statements (src/db/sql.ts).
 */
import { randomUUID } from 'node:crypto';
import { RekeyError, sanitize } from '../core/errors.js';
import { notPending } from '../core/lifecycle.js';
import type { AppliedPromotion, AuditContext, DeliveryStatus, Promotion, PromotionSnapshot, RotationAttempt, StepProgress, VersionChange, VersionRecord } from '../core/model.js';
import type { JsonObject } from '../core/ports.js';
import { type AuditInput, type AuditLog, takeOf } from './audit.js';
import type { Db } from './client.js';
import { LOCK_SECRET_OF_VERSION } from './locks.js';
import { RUN, VERSION } from './reads.js';
import { RUN_COLUMNS, type RunRow, VERSION_COLUMNS, type VersionRow, prefixedVersionColumns, prefixedVersionOf, runOf, versionOf } from './rows.js';
import { OPEN, auditOf, leaseUpdate } from './runs.js';
import { type Batched, NOW, type SqlTx, statement, transaction } from './sql.js';
import { refuseIllegal } from './transitions.js';

/** The secret lock taken through a run: its secret and version. */
const LOCK_RUN_SECRET = statement('lock_run_secret', `SELECT r.secret_id, r.version_id FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE r.id = $1 FOR UPDATE OF s`);
const CREATE_VERSION = statement(
  'create_version',
  `WITH s AS (UPDATE secrets SET version_counter = version_counter + 1 WHERE id = $2 RETURNING id, name, version_counter),
        v AS (INSERT INTO versions (id, secret_id, number, state, created_at, updated_at)
              SELECT $3, s.id, s.version_counter, 'issuing', ${NOW}, ${NOW} FROM s RETURNING *),
        r AS (UPDATE runs SET version_id = $3 WHERE id = $1)
   SELECT ${VERSION_COLUMNS} FROM v JOIN s ON s.id = v.secret_id`,
);
/**
 * Version `$1` issued, while lease owner `$5` holds the run that made it (a driver that stalled past its lease writes nothing).
 * One UPDATE ... FROM secrets (for the version's `secret`), not an UPDATE in a CTE joined again.
 */
const ISSUED = statement(
  'record_issued',
  `UPDATE versions v SET fingerprint = $2, issuer_state = $3::jsonb, public_id = $4 FROM secrets s
   WHERE v.id = $1 AND s.id = v.secret_id AND EXISTS (SELECT 1 FROM runs WHERE version_id = $1 AND lease_owner = $5)
   RETURNING ${VERSION_COLUMNS}`,
);
/** The delivery rows of version `$1` at targets `$2` set to `$3`, counting `$4` attempts (`pending` counts one; the error column is left as it is). */
const DELIVERIES_SET = `INSERT INTO deliveries (version_id, target, status, attempts, updated_at)
   SELECT $1, t, $3::text::"DeliveryStatus", $4::int, ${NOW} FROM unnest($2::text[]) AS t
   ON CONFLICT (version_id, target) DO UPDATE SET status = EXCLUDED.status, attempts = deliveries.attempts + EXCLUDED.attempts, updated_at = ${NOW}`;
/**
 * The open run of version `$1` that lease owner `$n` holds, its row locked (the WHERE checked again on
 * the row as its last writer left it, so no other driver takes the run over until COMMIT): nothing once
 * another driver has, or the run has finished. By the version's run, as {@link ISSUED} checks it.
 */
const leasedRunOfVersion = (owner: number) => `SELECT 1 FROM runs WHERE version_id = $1 AND lease_owner = $${owner} AND ${OPEN} FOR NO KEY UPDATE`;
/**
 * The delivery row of version `$1` at target `$2` set to `$3` (`pending` counts an attempt) with
 * error `$4` (null: the error column is left as it is), only while lease owner `$5` holds the
 * version's open run (null: any writer, a retirement's or a revocation's); returns the version's
 * secret (null: no such version) and whether the lease was held.
 */
const SET_DELIVERY = statement(
  'set_delivery',
  `WITH l AS (${leasedRunOfVersion(5)}),
        d AS (INSERT INTO deliveries (version_id, target, status, attempts, last_error, updated_at)
     SELECT v.id, $2, $3::text::"DeliveryStatus", CASE WHEN $3::text = 'pending' THEN 1 ELSE 0 END, $4, ${NOW} FROM versions v
     WHERE v.id = $1 AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM l))
     ON CONFLICT (version_id, target) DO UPDATE SET status = EXCLUDED.status, attempts = deliveries.attempts + EXCLUDED.attempts,
       last_error = coalesce($4, deliveries.last_error), updated_at = ${NOW}
     RETURNING version_id)
   SELECT (SELECT s.name FROM d JOIN versions v ON v.id = d.version_id JOIN secrets s ON s.id = v.secret_id) AS secret,
     ($5::text IS NULL OR EXISTS (SELECT 1 FROM l)) AS leased`,
);
/**
 * Run `$5` while lease owner `$7` holds it open, its row locked as {@link leasedRunOfVersion} locks
 * it; `after`: a CTE that must have a row first (a lock taken before this one).
 */
const leasedRun = (after?: string) => `SELECT id FROM runs WHERE id = $5 AND lease_owner = $7 AND ${OPEN}${after ? ` AND EXISTS (SELECT 1 FROM ${after})` : ''} FOR NO KEY UPDATE`;
/**
 * Under the secret lock (taken before the version row, which the UPDATE re-reads after the
 * wait), then the run's row while lease owner `$7` holds it open: issuing -> pending with store
 * version `$8`, and only then a step's bookkeeping as {@link PROGRESS} does. One row: `leased`
 * (whether the lease was held) and the version's columns, null when it was not issuing or not leased;
 * its `secret` is the name the secret lock read, not another join to secrets.
 */
const PENDING = statement(
  'mark_pending',
  `WITH l AS (SELECT s.name FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.id = $1 FOR UPDATE OF s),
        lr AS (${leasedRun('l')}),
        v AS (UPDATE versions SET state = 'pending', store_version_id = $8 WHERE id = $1 AND state = 'issuing' AND EXISTS (SELECT 1 FROM lr) RETURNING *),
        d AS (${DELIVERIES_SET.replace('FROM unnest', 'FROM v, unnest')}),
        r AS (UPDATE runs SET step = $6 FROM lr WHERE runs.id = lr.id AND $6::text IS NOT NULL AND EXISTS (SELECT 1 FROM v))
   SELECT EXISTS (SELECT 1 FROM lr) AS leased, x.* FROM (SELECT 1) one
   LEFT JOIN (SELECT ${VERSION_COLUMNS} FROM v, l s) x ON true`,
);
/**
 * A step's bookkeeping, only while lease owner `$7` holds run `$5` open (its row locked as
 * {@link leasedRun} locks it): the delivery rows at `$2` set to `$3` (`pending` counts an attempt
 * in `$4`; the error column is left as it is), the run's step `$6` unless null; and the version
 * as this statement reads it, with `leased` (false: nothing written).
 */
const PROGRESS = statement(
  'record_progress',
  `WITH lr AS (${leasedRun()}),
        d AS (${DELIVERIES_SET.replace('FROM unnest', 'FROM lr, unnest')}),
        r AS (UPDATE runs SET step = $6 FROM lr WHERE runs.id = lr.id AND $6::text IS NOT NULL)
   SELECT ${VERSION_COLUMNS}, EXISTS (SELECT 1 FROM lr) AS leased FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.id = $1`,
);
/**
 * The run with its lease taken (an attempt counted); as `sc_*`, the version promoted last (the
 * store's current); and for a rotation at `issue` with no version, as `nv_*`, its new version
 * `$5` (`issuing`, the secret's next number: the counter's UPDATE takes the secret lock, as
 * CREATE_VERSION does). Both versions' `secret` is the run's (`s.name` of the outer join), not a
 * join of their own: each plan node is set up again at every call. Nothing when the lease is not granted.
 */
export const BEGIN_ATTEMPT = statement(
  'begin_attempt',
  `WITH r AS (${leaseUpdate(`version_id = CASE WHEN kind = 'rotation' AND step = 'issue' AND version_id IS NULL THEN $5::uuid ELSE version_id END`)} RETURNING *),
        n AS (UPDATE secrets SET version_counter = version_counter + 1 FROM r WHERE secrets.id = r.secret_id AND r.version_id = $5::uuid
              RETURNING secrets.id, secrets.version_counter),
        made AS (INSERT INTO versions (id, secret_id, number, state, created_at, updated_at)
               SELECT $5::uuid, n.id, n.version_counter, 'issuing', ${NOW}, ${NOW} FROM n RETURNING *)
   SELECT ${RUN_COLUMNS}, ${prefixedVersionColumns('sc')}, ${prefixedVersionColumns('nv')} FROM r JOIN secrets s ON s.id = r.secret_id
   LEFT JOIN LATERAL (SELECT ${VERSION_COLUMNS} FROM versions v
     WHERE v.secret_id = r.secret_id AND v.promoted_at IS NOT NULL ORDER BY v.promoted_at DESC LIMIT 1) sc ON true
   LEFT JOIN LATERAL (SELECT ${VERSION_COLUMNS} FROM made v) nv ON true`,
);
/**
 * Under the secret lock, for run `$1` while lease owner `$2` holds it open (the run's row locked,
 * the WHERE checked again on the row as its last writer left it, so no other driver takes it over
 * until COMMIT; nothing returned otherwise): its version, the secret's current, previous and
 * compromised versions, the one promoted last (the store's current), and the run's grace.
 * Each found by index (the ids first, then their rows), so a secret with thousands of past
 * versions costs what one with two does (test/integration/history-cost.test.ts).
 */
export const PROMOTION_SNAPSHOT = statement(
  'promotion_snapshot',
  `WITH r AS (SELECT secret_id, version_id, grace_ms FROM runs WHERE id = $1 AND lease_owner = $2 AND ${OPEN} FOR UPDATE)
   SELECT ${VERSION_COLUMNS}, r.grace_ms AS run_grace_ms
   FROM r, versions v JOIN secrets s ON s.id = v.secret_id
   WHERE v.id IN (
     SELECT id FROM versions WHERE secret_id = (SELECT secret_id FROM r) AND state IN ('current', 'previous', 'compromised')
     UNION ALL SELECT id FROM versions WHERE id = (SELECT version_id FROM r) AND secret_id = (SELECT secret_id FROM r)
     UNION ALL (SELECT id FROM versions WHERE secret_id = (SELECT secret_id FROM r) AND promoted_at IS NOT NULL AND id <> (SELECT version_id FROM r)
       ORDER BY promoted_at DESC LIMIT 1))
   ORDER BY v.number`,
);
/** A version change as {@link CHANGE} makes it, from parameters `$p`–`$p+4` (none when `$p` is null). */
function changeUpdate(p: number): string {
  return `UPDATE versions SET state = $${p + 2}::text::"VersionState", grace_ends_at = coalesce($${p + 3}::timestamp, grace_ends_at), promoted_at = coalesce($${p + 4}::timestamp, promoted_at)
   WHERE id = $${p}::uuid AND state = $${p + 1}::text::"VersionState"`;
}
/** One planned change, only from the state it was planned on. */
const CHANGE = statement('version_change', `${changeUpdate(1)} RETURNING id`);
/**
 * The promotion's first version change `$10`–`$14` (one that makes no version current), then
 * its last `$5`–`$9`, counted in `first_changed` and `changed`; lastPromotedAt (unless `$2` is
 * null) and the run's next step `$4`: `done` finishes it as finishRun does. The last change's
 * WHERE waits for the first's count, so the first has left `current` before the last enters it
 * (the one-current index is checked row by row). The changes between them, if any, were made
 * a statement each before this one.
 */
const PROMOTED = statement(
  'promoted',
  `WITH f AS (${changeUpdate(10)} RETURNING id),
        c AS (${changeUpdate(5)} AND (SELECT count(*) FROM f) >= 0 RETURNING id),
        s AS (UPDATE secrets SET last_promoted_at = $2::timestamp WHERE id = $1 AND $2::timestamp IS NOT NULL),
        r AS (UPDATE runs SET step = $4,
          status = CASE WHEN $4 = 'done' THEN 'succeeded'::"RunStatus" ELSE status END,
          finished_at = CASE WHEN $4 = 'done' THEN ${NOW} ELSE finished_at END,
          lease_owner = CASE WHEN $4 = 'done' THEN NULL ELSE lease_owner END,
          lease_until = CASE WHEN $4 = 'done' THEN NULL ELSE lease_until END
        WHERE id = $3 AND ${OPEN})
   SELECT (SELECT count(*) FROM f)::int AS first_changed, (SELECT count(*) FROM c)::int AS changed`,
);

export class RotationSteps {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
  ) {}

  async createVersion(runId: string, audit: AuditContext): Promise<VersionRecord> {
    return transaction(this.db, async (tx) => {
      const [run] = await tx.rows<{ secret_id: string; version_id: string | null }>(LOCK_RUN_SECRET, [runId]);
      if (run!.version_id) return (await readVersion(tx, run!.version_id))!;
      return this.newVersion(tx, runId, run!.secret_id, audit);
    });
  }

  /**
   * The lease and, for a run at `issue` with no version, its version: one commit before the
   * issuer is called. The audit take goes in the same batch and takes nothing unless the version was made.
   */
  async startAttempt(runId: string, owner: string, ms: number, audit: AuditContext): Promise<RotationAttempt> {
    return transaction(this.db, async (tx) => {
      const made = randomUUID();
      const [attempt, taken] = await tx.batch([[BEGIN_ATTEMPT, [runId, owner, ms, 1, made]], takeOf({ version: made }, 1)]);
      const [row] = attempt as Array<RunRow & Record<string, unknown>>;
      if (!row) {
        const [found] = await tx.rows<RunRow>(RUN, [runId]);
        return { granted: false, run: found ? runOf(found) : null };
      }
      const run = runOf(row);
      const storeCurrent = prefixedVersionOf(row, 'sc');
      const created = prefixedVersionOf(row, 'nv');
      if (created) await this.audit.appendTaken(tx, [issuing(created, runId, audit)], taken!);
      else if (run.versionId) return { granted: true, run, version: await readVersion(tx, run.versionId), storeCurrent };
      return { granted: true, run, version: created, storeCurrent };
    });
  }

  private async newVersion(tx: SqlTx, runId: string, secretId: string, audit: AuditContext): Promise<VersionRecord> {
    const [row] = await tx.rows<VersionRow>(CREATE_VERSION, [runId, secretId, randomUUID()]);
    const version = versionOf(row!);
    await this.audit.append(tx, issuing(version, runId, audit));
    return version;
  }

  /** One batch: the write and the audit take; the event and COMMIT in a second. Rolled back (the take with it) when nothing was written. */
  async recordIssued(versionId: string, { fingerprint, issuerState, publicId }: { fingerprint: string; issuerState: JsonObject; publicId: string | undefined }, audit: AuditContext, leaseOwner: string) {
    return transaction(this.db, async (tx) => {
      const [issued, taken] = await tx.batch([[ISSUED, [versionId, fingerprint, JSON.stringify(issuerState), publicId ?? null, leaseOwner]], takeOf({ version: versionId }, 1)]);
      const [row] = issued as VersionRow[];
      if (!row) throw NOT_LEASED;
      const version = versionOf(row);
      await this.audit.appendTaken(tx, [{ ...auditOf(audit), action: 'version.issued', secret: version.secret, versionId, data: { number: version.number, fingerprint } }], taken!);
      return version;
    }).catch((error: unknown) => {
      if (error === NOT_LEASED) return null;
      throw error;
    });
  }

  /**
   * Under the secret lock, so a leak report's transition of the same version is either before
   * (refused here) or after. One batch when the version moves, with the audit take behind it;
   * when it does not (a repeat after a crash), that transaction is rolled back before another
   * takes the secret lock on its own: the chain's lock is never held while waiting for the secret's.
   */
  async markPending(versionId: string, storeVersionId: string, audit: AuditContext, next: StepProgress, leaseOwner: string) {
    const ctx = auditOf(audit);
    const moved = await transaction(this.db, async (tx) => {
      const [pending, taken] = await tx.batch([[PENDING, [versionId, ...progressValues(next), leaseOwner, storeVersionId]], takeOf({ version: versionId }, 1 + progressCount(next))]);
      const [row] = pending as Array<Partial<VersionRow> & { leased: boolean }>;
      if (!row!.leased) throw NOT_LEASED;
      if (!row!.id) throw NOT_MOVED;
      const version = versionOf(row as VersionRow);
      const event: AuditInput = { ...ctx, action: 'version.pending', secret: version.secret, versionId, data: { from: 'issuing', to: 'pending', storeVersionId } };
      await this.audit.appendTaken(tx, [event, ...progressEvents(version, next, ctx)], taken!);
      return version;
    }).catch((error: unknown) => {
      if (error === NOT_MOVED) return 'not issuing' as const;
      if (error === NOT_LEASED) return 'not leased' as const;
      throw error;
    });
    if (moved === 'not leased') return null;
    if (moved !== 'not issuing') return moved;
    return transaction(this.db, async (tx) => {
      // Already pending (a repeat after a crash): its bookkeeping alone, under the secret lock.
      await tx.rows(LOCK_SECRET_OF_VERSION, [versionId]);
      const found = await readVersion(tx, versionId);
      if (!found) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
      if (found.state !== 'pending') throw notPending(found);
      if (!(await progress(tx, this.audit, found, next, ctx, leaseOwner))) throw NOT_LEASED;
      return found;
    }).catch((error: unknown) => {
      if (error === NOT_LEASED) return null;
      throw error;
    });
  }

  async recordProgress(versionId: string, next: StepProgress, audit: AuditContext, leaseOwner: string) {
    return transaction(this.db, async (tx) => {
      const version = await progress(tx, this.audit, { id: versionId }, next, auditOf(audit), leaseOwner);
      if (!version) throw NOT_LEASED;
      return version;
    }).catch((error: unknown) => {
      if (error === NOT_LEASED) return null;
      throw error;
    });
  }

  /** One batch: the upsert and the audit take; the event and COMMIT in a second. Rolled back (the take with it) when the lease was not held. */
  async setDelivery(versionId: string, target: string, status: DeliveryStatus, audit: AuditContext, error?: string, leaseOwner?: string) {
    return transaction(this.db, async (tx) => {
      const [set, taken] = await tx.batch([[SET_DELIVERY, [versionId, target, status, error === undefined ? null : sanitize(error), leaseOwner ?? null]], takeOf({ version: versionId }, 1)]);
      const [row] = set as Array<{ secret: string | null; leased: boolean }>;
      if (!row!.leased) throw NOT_LEASED;
      if (!row!.secret) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
      await this.audit.appendTaken(tx, [{ ...auditOf(audit), action: `delivery.${status}`, secret: row!.secret, versionId, data: { target } }], taken!);
      return true;
    }).catch((error: unknown) => {
      if (error === NOT_LEASED) return false;
      throw error;
    });
  }

  async promote(runId: string, plan: (snapshot: PromotionSnapshot) => Promotion, audit: AuditContext, leaseOwner: string): Promise<AppliedPromotion | null> {
    return transaction(this.db, async (tx) => {
      // The snapshot is a statement of its own after the secret lock: it reads what the lock's last holder
      // committed, and locks the run's row after the secret's, in the order the promotion's own write (PROMOTED) takes them.
      const [locked, snapshot] = await tx.batch([[LOCK_RUN_SECRET, [runId]], [PROMOTION_SNAPSHOT, [runId, leaseOwner]]]);
      const rows = snapshot as Array<VersionRow & { run_grace_ms: number | null }>;
      // No row (a promotion always has its version): a driver that stalled past its lease (in store.promote,
      // say) promotes nothing over its successor, which may be rolling the version back.
      if (!rows.length) throw NOT_LEASED;
      const [run] = locked as Array<{ secret_id: string; version_id: string }>;
      const versions = rows.map(versionOf);
      const version = versions.find((v) => v.id === run!.version_id)!;
      const others = versions.filter((v) => v.id !== version.id && v.promotedAt);
      const promotion = plan({
        version,
        current: versions.find((v) => v.state === 'current') ?? null,
        previous: versions.filter((v) => v.state === 'previous'),
        displaced: others.sort((a, b) => b.promotedAt!.getTime() - a.promotedAt!.getTime())[0] ?? null,
        now: new Date(),
        runGraceMs: rows[0]?.run_grace_ms ?? null,
      });
      const ctx = auditOf(audit, runId);
      // One batch: the changes between the first and the last, then the first and last with the
      // run's step (PROMOTED), then the audit take (the chain's lock last).
      const { changes } = promotion;
      const first = changes.length > 1 && changes[0]!.to !== 'current' ? changes[0] : undefined;
      const last = changes.at(-1);
      const between = changes.slice(first ? 1 : 0, -1);
      const done = promotion.nextStep === 'done';
      const count = changes.length + (done ? 1 : 0);
      const promoted: Batched = [PROMOTED, [run!.secret_id, promotion.promotedAt ?? null, runId, promotion.nextStep, ...changeValues(last), ...changeValues(first)]];
      const answers = await tx.batch([...between.map((c): Batched => [CHANGE, changeValues(c)]), promoted, ...(count ? [takeOf({ run: runId }, count)] : [])]);
      const [counts] = answers[between.length] as Array<{ first_changed: number; changed: number }>;
      const events: AuditInput[] = [];
      if (first) events.push(changed(first, counts!.first_changed, ctx));
      events.push(...between.map((c, i) => changed(c, answers[i]!.length, ctx)));
      if (last) events.push(changed(last, counts!.changed, ctx));
      if (done) events.push({ ...ctx, action: 'run.finished', secret: version.secret, versionId: version.id, data: { status: 'succeeded', kind: 'rotation' } });
      if (count) await this.audit.appendTaken(tx, events, answers.at(-1)!);
      // What the changes left, as the transaction wrote it.
      const after = versions.map((v) => {
        const change = promotion.changes.find((c) => c.version.id === v.id);
        return change ? { ...v, state: change.to, ...change.set } : v;
      });
      return { ...promotion, takedowns: after.filter((v) => v.state === 'previous' || v.state === 'compromised') };
    }).catch((error: unknown) => {
      if (error === NOT_LEASED) return null;
      throw error;
    });
  }
}

/** Thrown inside the transactions of the writes made only for the lease's holder when its owner no longer holds the run: rolls it back. */
const NOT_LEASED = new Error("the run is not the lease owner's");

/** Thrown inside markPending's first transaction when the version was not issuing: rolls it back. */
const NOT_MOVED = new Error('the version was not issuing');

/** The audit event of a version created. */
function issuing(version: VersionRecord, runId: string, audit: AuditContext): AuditInput {
  return { ...auditOf(audit, runId), action: 'version.issuing', secret: version.secret, versionId: version.id, data: { number: version.number } };
}

async function readVersion(tx: SqlTx, versionId: string): Promise<VersionRecord | null> {
  const [row] = await tx.rows<VersionRow>(VERSION, [versionId]);
  return row ? versionOf(row) : null;
}

/**
 * Applies core-built version changes in order (one statement each: the one-current index is
 * checked row by row) and returns their audit events, for the caller's one append at the end.
 */
export async function applyChanges(tx: SqlTx, changes: readonly VersionChange[], ctx: ReturnType<typeof auditOf>): Promise<AuditInput[]> {
  const events: AuditInput[] = [];
  for (const change of changes) events.push(changed(change, (await tx.rows(CHANGE, changeValues(change))).length, ctx));
  return events;
}

/** The audit event of a planned change that `moved` one row; stale when it moved none. */
function changed(change: VersionChange, moved: number, ctx: ReturnType<typeof auditOf>): AuditInput {
  return moved === 1 ? changeEvent(change, ctx) : stale(change);
}

/** A change's id, from, to, graceEndsAt and promotedAt; an illegal one refused. Nulls for none. */
function changeValues(change: VersionChange | undefined): unknown[] {
  if (!change) return [null, null, null, null, null];
  const { version: v, to } = change;
  if (to !== v.state) refuseIllegal(v, to);
  // Only from the state the plan was built on (the statements' WHERE): anything else means the plan is stale.
  return [v.id, v.state, to, change.set.graceEndsAt ?? null, change.set.promotedAt ?? null];
}

function changeEvent({ version: v, audit }: VersionChange, ctx: ReturnType<typeof auditOf>): AuditInput {
  return { ...ctx, action: audit.action, secret: v.secret, versionId: v.id, data: audit.data };
}

function stale({ version: v }: VersionChange): never {
  throw new RekeyError('REKEY_ERR_CONFLICT', `version ${v.number} of ${v.secret} changed while it was being planned`);
}

/**
 * A rotation step's bookkeeping inside its transaction: the delivery rows of the version at
 * `next.deliveries.targets` set to one status, then the run's next step, in one statement that
 * also reads the version, batched with the audit take of the step's events (`delivery.<status>`
 * per target; the step itself is not audited), only while `leaseOwner` holds the run open.
 * Returns the version; null when the lease was not held (nothing written: the caller rolls the
 * transaction back, the audit take with it).
 */
async function progress(tx: SqlTx, audit: AuditLog, of: { id: string }, next: StepProgress, ctx: ReturnType<typeof auditOf>, leaseOwner: string): Promise<VersionRecord | null> {
  const count = progressCount(next);
  const [rows, taken] = await tx.batch([[PROGRESS, [of.id, ...progressValues(next), leaseOwner]], ...(count ? [takeOf({ version: of.id }, count)] : [])]);
  const [row] = rows as Array<VersionRow & { leased: boolean }>;
  if (!row) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${of.id}`);
  if (!row.leased) return null;
  const version = versionOf(row);
  if (count) await audit.appendTaken(tx, progressEvents(version, next, ctx), taken!);
  return version;
}

/** `$2`–`$6` of {@link PROGRESS} and {@link PENDING}: targets, status, attempts counted, run, step. */
function progressValues(next: StepProgress): unknown[] {
  const { targets = [], status = 'pending' } = next.deliveries ?? {};
  return [targets, status, status === 'pending' ? 1 : 0, next.runId ?? null, next.step ?? null];
}

/** How many events {@link progressEvents} makes. */
function progressCount(next: Partial<StepProgress>): number {
  const { targets = [], through = [] } = next.deliveries ?? {};
  return targets.length * (through.length + 1);
}

/** `delivery.<status>` per target, for each status the step went through. */
function progressEvents(version: VersionRecord, next: Partial<StepProgress>, ctx: ReturnType<typeof auditOf>): AuditInput[] {
  const { targets = [], status = 'pending', through = [] } = next.deliveries ?? {};
  return [...through, status].flatMap((s) => targets.map((target) => ({ ...ctx, action: `delivery.${s}`, secret: version.secret, versionId: version.id, data: { target } })));
}
