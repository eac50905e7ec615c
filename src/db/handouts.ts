/**
 * The hand-out journal (issue 17): each delivery hand-out (a minted token, a value, a 304) is
 * checked and recorded here, with group commit. A request waits for the durable commit of the
 * transaction holding its record, so every hand-out is audited before it is answered, but
 * requests that arrive together share one transaction: while a batch commits, the next
 * gathers (a few transactions may be open at once, see maxInFlight).
 *
 * One transaction per batch:
 *   1. `SELECT … FROM versions WHERE id = ANY(…) ORDER BY id FOR SHARE`: every version the
 *      batch's requests hand out (must be current and not compromised) or relied on to
 *      authenticate (must be live: current, or previous within its grace; not compromised).
 *      The share lock makes a revocation's (or promotion's) UPDATE of that row wait for this
 *      commit, and this check wait for theirs, so a version is either revoked after every
 *      hand-out recorded with it or seen revoked here: once `rekey revoke` (a leak report, a
 *      promotion) has committed, no server records, hence answers, a hand-out of it.
 *   2. the audit events of the requests that passed, appended as AuditLog.appendAll does (one
 *      take of each chain's lock, head and sequence numbers, then one insert for the batch).
 * The transaction is pipelined on a connection of the journal's own: BEGIN, the check and the
 * takes go in one write, the insert and COMMIT in a second, so a batch costs PostgreSQL two
 * wake-ups instead of five (on a loaded machine each one waits for a core).
 * A request whose versions failed the check gets false and nothing is recorded for it. A
 * failed transaction (a deadlock with a rotation, a lost connection) is retried once, then its
 * requests fail with its error. The statements are hand-written (src/db/sql.ts): Prisma's
 * query compiler cost more CPU per batch than everything else a hand-out does but signing.
 */
import pg, { type QueryResultRow } from 'pg';
import type { HandOut } from '../core/delivery.js';
import { type AuditLog, chainsOf, INSERT, insertValues, TAKE, takenOf, takeValues } from './audit.js';
import { type Db, poolOf } from './client.js';
import { NOW, statement, type Statement } from './sql.js';

interface Waiting {
  entry: HandOut;
  resolve(recorded: boolean): void;
  reject(error: unknown): void;
}

interface Checked {
  id: string;
  state: string;
  compromised: boolean;
  in_grace: boolean;
}

export class HandoutJournal {
  private waiting: Waiting[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly pool: pg.Pool;
  /** Transactions committed, hand-outs recorded, and the milliseconds the transactions took (for the benchmark). */
  readonly stats = { batches: 0, records: 0, ms: 0 };

  /**
   * @param maxBatch the most requests one transaction holds. @defaultValue 500
   * @param maxInFlight transactions open at once (each on a connection of its own). More than
   *   one overlaps a batch's check with the previous commit, but appends to one chain take turns
   *   anyway and the batches get smaller; on a contended machine 2 ran far slower than 1
   *   (bench/delivery, docs/delivery.md#benchmark). @defaultValue 1
   */
  constructor(
    db: Db,
    private readonly audit: AuditLog,
    private readonly maxBatch = 500,
    private readonly maxInFlight = 1,
  ) {
    // Connections of its own, in pipeline mode (a write holds several statements; Prisma's
    // adapter shares the main pool and does not expect it), as many as batches in flight.
    this.pool = new pg.Pool({ ...poolOf(db).options, max: maxInFlight, pipeline: true });
    // An idle connection that dies is dropped by the pool; the next batch opens another.
    this.pool.on('error', () => {});
  }

  /** Checks and records `entry` (see DeliveryDeps.handOut); resolves once its batch committed. */
  record(entry: HandOut): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ entry, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || !this.waiting.length) return;
    this.scheduled = true;
    // The requests of this turn of the event loop join the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting.splice(0, this.maxBatch);
    if (!batch.length) return;
    this.inFlight += 1;
    this.schedule();
    const entries = batch.map((w) => w.entry);
    const started = performance.now();
    try {
      const recorded = await this.commit(entries).catch(() => this.commit(entries));
      this.stats.batches += 1;
      this.stats.records += entries.length;
      this.stats.ms += performance.now() - started;
      batch.forEach((w, i) => w.resolve(recorded[i]!));
    } catch (error) {
      for (const w of batch) w.reject(error);
    } finally {
      this.inFlight -= 1;
      this.schedule();
    }
  }

  /** Stops the journal's connections (a batch under way still completes). */
  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * The batch's transaction, pipelined in two writes: BEGIN, the check and each chain's take
   * (the versions locked before the chains, as every writer does), then once their answers
   * are in, the insert and COMMIT. Sequence numbers are taken for every entry; those of
   * entries that fail the check are left unused (the log allows gaps, as rollbacks leave).
   */
  private async commit(entries: readonly HandOut[]): Promise<boolean[]> {
    const client = await this.pool.connect();
    let failed: Error | undefined;
    try {
      const run = <R extends QueryResultRow>(s: Statement, values: readonly unknown[]) => client.query<R>({ name: s.name, text: s.text, values: [...values] }).then((r) => r.rows);
      const ids = [...new Set(entries.flatMap((e) => [...e.handed, ...e.relied]))];
      const events = entries.flatMap((e) => (e.event ? [e.event] : []));
      const begun = client.query('BEGIN');
      const checked = ids.length ? run<Checked>(CHECK, [ids]) : Promise.resolve([]);
      const takes = [...chainsOf(events)].map(([chain, count]) => run<{ prev: string; seq: string }>(TAKE, takeValues(chain, count)).then((rows) => [chain, takenOf(rows)] as const));
      // Every answer awaited, so none is left rejected unhandled when one fails.
      const [, rows, taken] = await Promise.all([begun, checked, Promise.all(takes)]);
      const byId = new Map(rows.map((r) => [r.id, r]));
      const recorded = entries.map((e) => e.handed.every((id) => handable(byId.get(id))) && e.relied.every((id) => live(byId.get(id))));
      const kept = entries.flatMap((e, i) => (recorded[i] && e.event ? [e.event] : []));
      const inserted = kept.length ? run(INSERT, insertValues(this.audit.rowsOf(kept, new Map(taken)))) : Promise.resolve([]);
      await Promise.all([inserted, client.query('COMMIT')]);
      return recorded;
    } catch (error) {
      // The connection is not kept: after a failover it may point at a read-only server, or at none.
      failed = error instanceof Error ? error : new Error('hand-out batch failed');
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release(failed);
    }
  }
}

// Locked in id order, so two batches (or a batch and a takedown) never wait on each other in a circle.
const CHECK = statement(
  'handout_check',
  `SELECT id::text AS id, state::text AS state, compromised_at IS NOT NULL AS compromised, coalesce(grace_ends_at > ${NOW}, false) AS in_grace
   FROM versions WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE`,
);

function handable(row: Checked | undefined): boolean {
  return !!row && !row.compromised && row.state === 'current';
}

function live(row: Checked | undefined): boolean {
  return !!row && !row.compromised && (row.state === 'current' || (row.state === 'previous' && row.in_grace));
}
