/**
 * Runs: created with their `run.started` event, leased to one driver, stepped, finished with
 * their `run.finished` event. A rotation's statements are named (src/db/sql.ts).
 */
import { randomUUID } from 'node:crypto';
import { RekeyError, sanitize } from '../core/errors.js';
import type { AuditContext, RotationStep, RunRecord, RunStatus, SecretRecord, VersionRecord } from '../core/model.js';
import { type AuditLog, TAKE, takeOf, takeValues } from './audit.js';
import { type Db, isUniqueViolation } from './client.js';
import { LOCK_SECRET, LOCK_SECRET_OF_VERSION } from './locks.js';
import type { TakedownWrites } from './takedown-writes.js';
import { COMPROMISE, type CompromiseRow, leakedEvent } from './transitions.js';
import { RUN_COLUMNS, type RunRow, runColumns, runOf } from './rows.js';
import { RUN, type Reads } from './reads.js';
import { type Batched, NOW, type Sql, statement, transaction } from './sql.js';

/**
 * An audited outcome (`trigger.joined`, `trigger.stale`) of trigger key `$n`: a predicate that implies
 * the partial unique index ONE_OUTCOME's, written once so each lookup uses it.
 */
const triggerOutcome = (n: number) => `FROM audit_events WHERE action LIKE 'trigger.%' AND data->>'idempotencyKey' = $${n}`;
/**
 * One outcome per trigger key: a rotation's `run.started` (which carries its key) or a trigger event.
 * A delivery that decided from a snapshot missing another's outcome of the same key is refused at commit.
 */
const ONE_OUTCOME = 'audit_events_trigger_key_key';
/**
 * The run, for a secret by name that is managed and not stale for a request made at `$6` (null: not stale).
 * One flat INSERT ... SELECT: the secret's name is `$2` (the row was found by it), so the run's columns
 * come from RETURNING, with no CTE and no join back to secrets (each node is set up again at every call).
 */
const CREATE_ROTATION = statement(
  'create_rotation_run',
  `INSERT INTO runs AS r (id, secret_id, kind, trigger, status, step, idempotency_key, grace_ms, started_at, updated_at)
   SELECT $1, id, 'rotation', $3, 'running', 'issue', $4, $5, ${NOW}, ${NOW} FROM secrets
   WHERE name = $2 AND removed_at IS NULL AND ($6::timestamp IS NULL OR last_promoted_at IS NULL OR $6::timestamp >= last_promoted_at)
     AND NOT EXISTS (SELECT 1 ${triggerOutcome(4)})
   RETURNING ${runColumns('$2::text')}`,
);
/**
 * The outcome key `$1` was audited with, if any: `trigger.joined` (with the run it joined) or
 * `trigger.stale`. A run made under the key is found by RUN_BY_KEY instead.
 */
const TRIGGER_OUTCOME = statement(
  'trigger_outcome',
  `SELECT action, run_id ${triggerOutcome(1)} ORDER BY seq LIMIT 1`,
);
/** Thrown inside createRotationRun's transaction when a leak's version was replaced meanwhile. */
const REPLACED = new Error('another version replaced the leaked one');
/** A row when version `$1` exists and no other version of its secret is current (nothing replaced it). */
const NOT_REPLACED = statement(
  'version_not_replaced',
  `SELECT 1 FROM versions v WHERE v.id = $1 AND NOT EXISTS (SELECT 1 FROM versions o WHERE o.secret_id = v.secret_id AND o.state = 'current' AND o.id <> v.id)`,
);
const RUN_BY_KEY = statement('run_by_key', `SELECT ${RUN_COLUMNS} FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE r.idempotency_key = $1`);
const RUNNING_ROTATION = statement(
  'running_rotation',
  `SELECT ${RUN_COLUMNS} FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE s.name = $1 AND r.kind = 'rotation' AND r.status = 'running' LIMIT 1`,
);
/**
 * "The run is open", for a statement that finds its run by id: the status compared as text, so
 * that only the primary key can serve the lookup. A generic plan made while the table was small
 * and never analyzed otherwise may take runs_status_idx and walk every open run at each call
 * (300 open runs in the rotation-throughput bench).
 */
export const OPEN = `status::text = 'running'`;
/** The lease as takeLease takes it; `$4` attempts counted; `set`: more assignments. */
export function leaseUpdate(set = ''): string {
  return `UPDATE runs SET lease_owner = $2, lease_until = ${NOW} + $3::int * interval '1 millisecond', attempts = attempts + $4::int${set ? `, ${set}` : ''}
   WHERE id = $1 AND ${OPEN} AND (lease_until IS NULL OR lease_until < ${NOW} OR lease_owner = $2)`;
}
const TAKE_LEASE = statement(
  'take_lease',
  `${leaseUpdate()} RETURNING id`,
);
/** Run `$1`'s lease extended to `$3` ms from now, only while owner `$2` holds it open and unexpired: never taken back once lost. */
const RENEW_LEASE = statement(
  'renew_lease',
  `UPDATE runs SET lease_until = ${NOW} + $3::int * interval '1 millisecond'
   WHERE id = $1 AND ${OPEN} AND lease_owner = $2 AND lease_until >= ${NOW} RETURNING id`,
);
/**
 * A retirement's or revocation's run `$1` of version `$6` (key `$5`), its first attempt counted; for
 * one that exists, an attempt counted while it runs (nothing returned once it has finished).
 */
const START_VERSION_RUN = statement(
  'start_version_run',
  `WITH r AS (
     INSERT INTO runs (id, secret_id, kind, trigger, status, step, idempotency_key, version_id, attempts, started_at, updated_at)
     VALUES ($1, $2, $3::text::"RunKind", $4, 'running', $3, $5, $6, 1, ${NOW}, ${NOW})
     ON CONFLICT (idempotency_key) DO UPDATE SET attempts = runs.attempts + 1 WHERE runs.${OPEN}
     RETURNING *)
   SELECT ${RUN_COLUMNS} FROM r JOIN secrets s ON s.id = r.secret_id`,
);
/** Whether trigger key `$1` has an outcome: it made a run, or was audited. */
const TRIGGER_KNOWN = statement(
  'trigger_known',
  `SELECT EXISTS (SELECT 1 FROM runs WHERE idempotency_key = $1)
       OR EXISTS (SELECT 1 ${triggerOutcome(1)}) AS known`,
);
/** The run `$1` with its grace set to `$2` ms. */
const SET_GRACE = statement(
  'set_run_grace',
  `WITH r AS (UPDATE runs SET grace_ms = $2 WHERE id = $1 RETURNING *)
   SELECT ${RUN_COLUMNS} FROM r JOIN secrets s ON s.id = r.secret_id`,
);
/**
 * The open run `$1` back at its first step, with no version, while lease owner `$2` holds it (null: any
 * caller); nothing returned once it has finished or another driver holds it.
 */
const RESTART = statement(
  'restart_run',
  `WITH r AS (UPDATE runs SET step = 'issue', version_id = NULL WHERE id = $1 AND ${OPEN} AND ($2::text IS NULL OR lease_owner = $2) RETURNING *)
   SELECT ${RUN_COLUMNS} FROM r JOIN secrets s ON s.id = r.secret_id`,
);
/** Run `$1`'s error set to `$2`; while lease owner `$3` holds it open, unless `$3` is null. */
const RECORD_ERROR = statement('record_run_error', `UPDATE runs SET error = $2 WHERE id = $1 AND ($3::text IS NULL OR (lease_owner = $3 AND ${OPEN})) RETURNING id`);
const RELEASE_LEASE = statement('release_lease', `UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2`);
const SET_STEP = statement('set_run_step', `UPDATE runs SET step = $2 WHERE id = $1 AND lease_owner = $3 AND ${OPEN} RETURNING id`);
/** Run `$1` closed with status `$2` (error `$3` unless null), while lease owner `$4` holds it open (null: any caller). */
const FINISH = statement(
  'finish_run',
  `WITH r AS (
     UPDATE runs SET status = $2::text::"RunStatus", finished_at = ${NOW}, step = CASE WHEN $2::text = 'succeeded' THEN 'done' ELSE step END,
       lease_owner = NULL, lease_until = NULL, error = coalesce($3, error)
     WHERE id = $1 AND ${OPEN} AND ($4::text IS NULL OR lease_owner = $4) RETURNING *)
   SELECT ${RUN_COLUMNS} FROM r JOIN secrets s ON s.id = r.secret_id`,
);

export class Runs {
  constructor(
    private readonly db: Db,
    private readonly sql: Sql,
    private readonly audit: AuditLog,
    private readonly reads: Reads,
    private readonly takedowns: Pick<TakedownWrites, 'markCompromised'>,
  ) {}

  /**
   * The secret is looked up by the insert itself: a request commits once, reading nothing
   * before, in one batch with the audit take (which takes nothing when no run was inserted).
   */
  async createRotationRun(input: { secret: string; trigger: string; idempotencyKey: string; graceMs: number | null; requestedAt?: Date; replacing?: string; compromise?: boolean; audit: AuditContext }) {
    // The leaked version stamped compromised in the run's transaction, until a try makes no run: then it
    // is stamped on its own first. The secret lock and the stamp come after the insert, not before it:
    // the insert may wait (its unique index) for a transaction that updates the running rotation's row,
    // such as that run's attempt, which itself waits for the secret's row (its version's foreign key)
    // and would never get it from a transaction that locked it first.
    let compromise = input.compromise && input.replacing ? input.replacing : undefined;
    const stampAlone = async () => {
      if (compromise) await this.takedowns.markCompromised(compromise, input.audit);
      compromise = undefined;
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const created = await transaction(this.db, async (tx) => {
          const id = randomUUID();
          // A leak's rotation checks its version after the insert, in a statement of its own: the insert
          // waited on the running rotation's unique index until that one finished, so a promotion that
          // replaced the version is seen here (a lock on the version instead would invert the lock order).
          const check: Batched[] = input.replacing ? [[NOT_REPLACED, [input.replacing]]] : [];
          const stamp: Batched[] = compromise ? [[LOCK_SECRET_OF_VERSION, [compromise]], [COMPROMISE, [compromise]]] : [];
          const [inserted, ...answers] = await tx.batch([
            [CREATE_ROTATION, [id, input.secret, input.trigger, input.idempotencyKey, input.graceMs, input.requestedAt ?? null]],
            ...stamp,
            ...check,
            // The chain by the version when it is stamped: it is there whether or not a run is inserted.
            compromise ? takeOf({ version: compromise }, 2) : takeOf({ run: id }, 1),
          ]);
          // The leak's actor, as markCompromised's event (no run: it is the version's, not the run's).
          const stamped = compromise ? leakedEvent(answers[1] as CompromiseRow[], compromise, auditOf(input.audit)) : undefined;
          const rest = answers.slice(stamp.length);
          const [row] = inserted as RunRow[];
          if (!row) {
            if (!stamped) return null;
            // No run (a removed secret): the stamp commits alone, as markCompromised's would have.
            await this.audit.appendTaken(tx, [stamped], rest.at(-1)!);
            return null;
          }
          if (input.replacing && !rest[0]!.length) throw REPLACED; // rolls the insert back
          const run = runOf(row);
          const started = { ...auditOf(input.audit, run.id), action: 'run.started', secret: run.secret, data: { kind: 'rotation', trigger: input.trigger, idempotencyKey: input.idempotencyKey } };
          await this.audit.appendTaken(tx, stamped ? [stamped, started] : [started], rest.at(-1)!);
          return { run, created: true };
        });
        compromise = undefined;
        if (created) return created;
        // No run: no such secret, a removed one, a stale request, or a repeat of a request that had its outcome already.
        const secret = await this.reads.getSecret(input.secret);
        if (!secret || secret.removedAt) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${input.secret}`);
        if (input.requestedAt && secret.lastPromotedAt && input.requestedAt < secret.lastPromotedAt) return { stale: secret };
        // A repeat (a cron job BullMQ delivers again after its lock was lost) gets the first delivery's outcome, not a
        // run of its own: the rotation it joined may have finished since without a promotion (rolled back), or its
        // promotion may have committed while this insert waited on the one-running-rotation index, after the insert's
        // snapshot was taken (its staleness check read last_promoted_at from before it).
        const [known] = await this.sql.rows<{ action: string; run_id: string | null }>(TRIGGER_OUTCOME, [input.idempotencyKey]);
        if (known) {
          // A leak's repeat whose version another has replaced since is stale, as a first request would be.
          if (input.replacing && !(await this.sql.rows(NOT_REPLACED, [input.replacing])).length) return { stale: secret };
          const [joined] = known.run_id ? await this.sql.rows<RunRow>(RUN, [known.run_id]) : [];
          return joined ? { run: runOf(joined), created: false } : { stale: secret };
        }
      } catch (error) {
        // Rolled back, the stamp with it: it commits on its own before anything is looked up, as before.
        if (error === REPLACED || isUniqueViolation(error)) await stampAlone();
        if (error === REPLACED) return { stale: (await this.reads.getSecret(input.secret))! };
        if (!isUniqueViolation(error)) throw error;
        // Another delivery of the key recorded its outcome (it joined a run that has ended since) after the
        // insert's snapshot was taken: the insert, tried again, sees it and answers with it.
        if (isUniqueViolation(error, ONE_OUTCOME)) continue;
        const [existing] =
          (await this.sql.rows<RunRow>(RUN_BY_KEY, [input.idempotencyKey])).concat(await this.sql.rows<RunRow>(RUNNING_ROTATION, [input.secret]));
        if (existing) return { run: runOf(existing), created: false };
        // The blocking run finished between our insert and our look-up: insert again.
      }
    }
    throw new RekeyError('REKEY_ERR_CONFLICT', 'could not create or find a rotation run');
  }

  /**
   * One batch: the insert (or, for a run that exists, an attempt counted while it runs) and the
   * audit take, which takes nothing unless the run was inserted; `run.started` and COMMIT in a second.
   */
  async startVersionRun(input: { kind: 'retirement' | 'revocation'; version: VersionRecord; trigger: string; audit: AuditContext }) {
    const idempotencyKey = `${input.kind}:${input.version.id}`;
    return transaction(this.db, async (tx) => {
      const id = randomUUID();
      const [started, taken] = await tx.batch([[START_VERSION_RUN, [id, input.version.secretId, input.kind, input.trigger, idempotencyKey, input.version.id]], takeOf({ run: id }, 1)]);
      const [row] = started as RunRow[];
      if (!row) return runOf((await tx.rows<RunRow>(RUN_BY_KEY, [idempotencyKey]))[0]!); // finished: left as it is
      const run = runOf(row);
      if (run.id === id) await this.audit.appendTaken(tx, [{ ...auditOf(input.audit, id), action: 'run.started', secret: run.secret, versionId: input.version.id, data: { kind: input.kind, trigger: input.trigger } }], taken!);
      return run;
    });
  }

  async openVersionRun(kind: 'retirement' | 'revocation', versionId: string) {
    const [row] = await this.sql.rows<RunRow>(RUN_BY_KEY, [`${kind}:${versionId}`]);
    return row && row.status === 'running' ? runOf(row) : null;
  }

  async takeLease(runId: string, owner: string, ms: number) {
    return (await this.sql.rows(TAKE_LEASE, [runId, owner, ms, 0])).length === 1;
  }

  async renewLease(runId: string, owner: string, ms: number) {
    return (await this.sql.rows(RENEW_LEASE, [runId, owner, ms])).length === 1;
  }

  async releaseLease(runId: string, owner: string) {
    await this.sql.rows(RELEASE_LEASE, [runId, owner]);
  }

  /**
   * One batch: the secret lock, whether the key is known, and the audit take; the event (unless known) and COMMIT in a
   * second. The lock orders it with a run's insert under the key (the insert's foreign key waits for it): one that
   * committed first is known here; one that took its snapshot before this commit is refused at its own (ONE_OUTCOME).
   */
  async recordTrigger(input: { secret: Pick<SecretRecord, 'id' | 'name'>; trigger: string; idempotencyKey: string; outcome: 'stale' | 'joined'; runId?: string }, audit: AuditContext) {
    return transaction(this.db, async (tx) => {
      const [, known, taken] = await tx.batch([[LOCK_SECRET, [input.secret.id]], [TRIGGER_KNOWN, [input.idempotencyKey]], [TAKE, takeValues(input.secret.name, 1)]]);
      if ((known as Array<{ known: boolean }>)[0]!.known) return false;
      await this.audit.appendTaken(tx, [{ ...auditOf(audit, input.runId), action: `trigger.${input.outcome}`, secret: input.secret.name, data: { trigger: input.trigger, idempotencyKey: input.idempotencyKey } }], taken!);
      return true;
    });
  }

  /**
   * Progress bookkeeping, not a lifecycle change: the audit log already holds the version,
   * delivery and run events each step makes, so the step is not audited again.
   */
  async setRunStep(runId: string, step: RotationStep, leaseOwner: string) {
    return (await this.sql.rows(SET_STEP, [runId, step, leaseOwner])).length > 0;
  }

  /** On a leak's path when the leak joins a rotation already asked for (requests.ts). */
  async setRunGrace(runId: string, graceMs: number, audit: AuditContext) {
    await transaction(this.db, async (tx) => {
      const [row] = await tx.rows<RunRow>(SET_GRACE, [runId, graceMs]);
      if (!row) throw new RekeyError('REKEY_ERR_NOT_FOUND', 'no such run');
      await this.audit.append(tx, { ...auditOf(audit, runId), action: 'run.grace', secret: row.secret, data: { graceMs } });
    });
  }

  async restartRun(runId: string, audit: AuditContext, leaseOwner?: string) {
    return transaction(this.db, async (tx) => {
      const [row] = await tx.rows<RunRow>(RESTART, [runId, leaseOwner ?? null]);
      if (!row) return false;
      await this.audit.append(tx, { ...auditOf(audit, runId), action: 'run.restarted', secret: row.secret, data: { kind: row.kind } });
      return true;
    });
  }

  async recordRunError(runId: string, error: string, leaseOwner?: string) {
    return (await this.sql.rows(RECORD_ERROR, [runId, sanitize(error), leaseOwner ?? null])).length > 0;
  }

  /**
   * The close and the audit take in one round trip (the take after the run's row lock, as before),
   * the event and COMMIT in a second. The take finds the run whether or not it was closed here:
   * when it was not (closed already, or another driver holds it), the transaction rolls back, so
   * nothing of the take is kept.
   */
  async finishRun(runId: string, status: Exclude<RunStatus, 'running'>, audit: AuditContext, error?: string, leaseOwner?: string) {
    return transaction(this.db, async (tx) => {
      const [finished, taken] = await tx.batch([[FINISH, [runId, status, error === undefined ? null : sanitize(error), leaseOwner ?? null]], takeOf({ run: runId }, 1)]);
      const [row] = finished as RunRow[];
      if (!row) throw NOT_FINISHED;
      const run: RunRecord = runOf(row);
      await this.audit.appendTaken(tx, [{ ...auditOf(audit, runId), action: 'run.finished', secret: run.secret, versionId: run.versionId, data: { status, kind: run.kind } }], taken!);
      return true;
    }).catch((error: unknown) => {
      if (error === NOT_FINISHED) return false;
      throw error;
    });
  }
}

/** Thrown inside finishRun's transaction when the run was not closed there: rolls it back. */
const NOT_FINISHED = new Error('the run was not closed');

export function auditOf(audit: AuditContext, runId?: string) {
  return { actor: audit.actor, runId: runId ?? audit.runId ?? null };
}
