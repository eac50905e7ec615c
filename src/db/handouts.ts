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
 * The transactions are pipelined on a connection of the journal's own, two writes each: BEGIN,
 * the check and the takes in one, the insert and COMMIT in a second once the takes' answers
 * are in. The next batch does not wait for that COMMIT's answer: its first write follows the
 * COMMIT on the same connection at once (PostgreSQL runs them in order, so its check and
 * takes see the batch before committed), and the batch after it gathers meanwhile. So a
 * request waits for at most one commit before its own batch is sent, and PostgreSQL is woken
 * once per batch on a busy server.
 * A request whose versions failed the check gets false and nothing is recorded for it. A
 * failed transaction (a deadlock with a rotation, a lost connection) is retried once, then its
 * requests fail with its error; the connection it ran on takes no further batch. The
 * statements are hand-written (src/db/sql.ts): Prisma's query compiler cost more CPU per
 * batch than everything else a hand-out does but signing.
 */
import pg, { type QueryResultRow } from 'pg';
import type { HandOut } from '../core/delivery.js';
import { type AuditLog, chainsOf, INSERT, insertValues, TAKE, type Taken, takenOf, takeValues } from './audit.js';
import { type Db, poolOf } from './client.js';
import { NOW, statement, type Statement } from './sql.js';

interface Waiting {
  entry: HandOut;
  /** A failed transaction held it once already. */
  retried: boolean;
  resolve(recorded: boolean): void;
  reject(error: unknown): void;
}

interface Checked {
  id: string;
  state: string;
  compromised: boolean;
  in_grace: boolean;
}

/** The journal's connection and the batches on it (first write sent, COMMIT not answered yet). */
interface Connection {
  client: pg.PoolClient;
  open: number;
  /** Set by the first batch that fails on it: no batch is sent on it afterwards, and it is closed, not kept. */
  failed?: Error;
}

export class HandoutJournal {
  private waiting: Waiting[] = [];
  /** A batch's first write is out and its answers are not in: the next batch waits to follow its COMMIT. */
  private sending = false;
  private scheduled = false;
  private connection: Connection | undefined;
  private readonly pool: pg.Pool;
  private readonly settled = new Set<Promise<void>>();
  /** Transactions committed, hand-outs recorded, and the milliseconds the transactions took (for the benchmark). */
  readonly stats = { batches: 0, records: 0, ms: 0 };

  /** @param maxBatch the most requests one transaction holds. @defaultValue 500 */
  constructor(
    db: Db,
    private readonly audit: AuditLog,
    private readonly maxBatch = 500,
  ) {
    // A connection of its own, in pipeline mode (a write holds several statements; Prisma's
    // adapter shares the main pool and does not expect it).
    // Kept while idle (pg closes an idle one after 10 s): a server's first hand-outs after a
    // pause would otherwise wait for a new connection and its statements to be prepared again.
    this.pool = new pg.Pool({ ...poolOf(db).options, max: 1, pipeline: true, idleTimeoutMillis: 0 });
    // An idle connection that dies is dropped by the pool; the next batch opens another. One
    // that dies under a batch fails the batch's queries (and so the batch): its 'error' event
    // must be heard all its life, or it would end the process.
    this.pool.on('error', () => {});
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  /** Checks and records `entry` (see DeliveryDeps.handOut); resolves once its batch committed. */
  record(entry: HandOut): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ entry, retried: false, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.sending || !this.waiting.length) return;
    this.scheduled = true;
    // The requests of this turn of the event loop join the batch.
    setImmediate(() => {
      this.scheduled = false;
      const done = this.flush();
      this.settled.add(done);
      void done.finally(() => this.settled.delete(done));
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting.splice(0, this.maxBatch);
    if (!batch.length) return;
    this.sending = true;
    const started = performance.now();
    let connection: Connection | undefined;
    try {
      connection = await this.connect();
      const { committed } = await this.send(connection.client, batch.map((w) => w.entry));
      // The COMMIT is on the wire: the next batch may follow it.
      this.sending = false;
      this.schedule();
      const recorded = await committed;
      this.stats.batches += 1;
      this.stats.records += batch.length;
      this.stats.ms += performance.now() - started;
      this.release(connection);
      batch.forEach((w, i) => w.resolve(recorded[i]!));
    } catch (error) {
      this.sending = false;
      if (connection) this.release(connection, error instanceof Error ? error : new Error('hand-out batch failed'));
      const again: Waiting[] = [];
      for (const w of batch) {
        if (w.retried) w.reject(error);
        else again.push({ ...w, retried: true });
      }
      this.waiting.unshift(...again);
      this.schedule();
    }
  }

  /** Stops the journal's connection once the batches under way completed. */
  async close(): Promise<void> {
    while (this.settled.size) await Promise.all([...this.settled]);
    await this.pool.end();
  }

  private async connect(): Promise<Connection> {
    this.connection ??= { client: await this.pool.connect(), open: 0 };
    this.connection.open += 1;
    return this.connection;
  }

  /** A batch is over on `connection`; the last one gives it back (closed if a batch failed on it). */
  private release(connection: Connection, failed?: Error): void {
    if (failed) connection.failed ??= failed;
    if (this.connection === connection && connection.failed) this.connection = undefined;
    connection.open -= 1;
    if (connection.open > 0) return;
    if (this.connection === connection) this.connection = undefined;
    // The connection is not kept after a failure: after a failover it may point at a read-only server, or at none.
    connection.client.release(connection.failed);
  }

  /**
   * Sends the batch's transaction in two writes: BEGIN, the check and each chain's take (the
   * versions locked before the chains, as every writer does), then once their answers are in,
   * the insert and COMMIT. Resolves once the COMMIT is sent, with the promise of its outcome. Sequence
   * numbers are taken for every entry; those of entries that fail the check are left unused
   * (the log allows gaps, as rollbacks leave).
   */
  private async send(client: pg.PoolClient, entries: readonly HandOut[]): Promise<{ committed: Promise<boolean[]> }> {
    const run = <R extends QueryResultRow>(s: Statement, values: readonly unknown[]) => client.query<R>({ name: s.name, text: s.text, values: [...values] }).then((r) => r.rows);
    const ids = [...new Set(entries.flatMap((e) => [...e.handed, ...e.relied]))];
    const events = entries.flatMap((e) => (e.event ? [e.event] : []));
    const [begun, checked, takes] = oneWrite(client, () => [
      client.query('BEGIN'),
      ids.length ? run<Checked>(CHECK, [ids]) : Promise.resolve([]),
      [...chainsOf(events)].map(([chain, count]) => run<{ prev: string; seq: string }>(TAKE, takeValues(chain, count)).then((rows) => [chain, takenOf(rows)] as const)),
    ] as const);
    let rows: Checked[];
    let taken: (readonly [string, Taken])[];
    try {
      // Every answer awaited, so none is left rejected unhandled when one fails.
      [, rows, taken] = await Promise.all([begun, checked, Promise.all(takes)]);
    } catch (error) {
      // Nothing follows on this connection before this ROLLBACK: the next batch waits for this one's second write.
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
    const byId = new Map(rows.map((r) => [r.id, r]));
    const recorded = entries.map((e) => e.handed.every((id) => handable(byId.get(id))) && e.relied.every((id) => live(byId.get(id))));
    const kept = entries.flatMap((e, i) => (recorded[i] && e.event ? [e.event] : []));
    const [inserted, commit] = oneWrite(client, () => [kept.length ? run(INSERT, insertValues(this.audit.rowsOf(kept, new Map(taken)))) : Promise.resolve([]), client.query('COMMIT')] as const);
    const committed = Promise.all([inserted, commit]).then(([, result]) => {
      // COMMIT of a transaction a statement aborted answers ROLLBACK, not an error.
      if (result.command !== 'COMMIT') throw new Error(`hand-out batch ended with ${result.command}`);
      return recorded;
    });
    return { committed };
  }
}

/** Runs `queue` (statements queued on `client`'s pipelined connection) with the socket corked, so they leave in one write. */
function oneWrite<T>(client: pg.PoolClient, queue: () => T): T {
  const socket = (client as unknown as pg.Client).connection.stream;
  socket.cork();
  try {
    return queue();
  } finally {
    socket.uncork();
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
