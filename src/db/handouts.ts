/**
 * The hand-out journal (issue 17): each delivery hand-out (a minted token, a value, a 304) is
 * checked and recorded here, with group commit. A request waits for the durable commit of the
 * transaction holding its record, so every hand-out is audited before it is answered, but
 * requests that arrive together share one transaction: while a batch commits, the next gathers.
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
 * The transactions run on a connection of the journal's own, in batches of statements
 * (src/db/batch.ts: one write, one Sync), two per transaction: BEGIN, the check and the takes;
 * then, once their answers are in, the insert and COMMIT. The next batch does not wait for
 * that COMMIT's answer: its BEGIN, check and takes go in the same write, behind a Flush
 * (PostgreSQL runs them in order, so its check and takes see the batch before committed, and
 * answers the COMMIT before running them). So a request waits for at most one commit before
 * its own batch is sent, and PostgreSQL is woken once per batch on a busy server.
 * A request that arrives while a batch's BEGIN, check and takes are under way joins that batch
 * when the check covered its versions and found them current (its FOR SHARE locks keep them so
 * until COMMIT) and its chain's take reserved a sequence number to spare: that batch's COMMIT
 * records it, not the next one's. On a busy server the clients a COMMIT answers come back
 * while the next one flushes; without this they waited for that one, then for the next
 * batch's check and take, then for its COMMIT.
 * A request is answered once the COMMIT of its batch is answered COMMIT. A request whose
 * versions failed the check gets false and nothing is recorded for it. A failed write (a
 * deadlock with a rotation, a lost connection) fails the transactions it carried: an error
 * skips every statement after it up to the Sync, so the next batch's BEGIN, check and takes
 * fail with it and nothing of that batch is recorded. The requests of a failed transaction
 * are run once more, then fail with its error; the connection it ran on is closed. The
 * statements are hand-written (src/db/sql.ts): Prisma's query compiler cost more CPU per
 * batch than everything else a hand-out does but signing.
 */
import pg from 'pg';
import type { HandOut } from '../core/delivery.js';
import { type AuditLog, chainsOf, INSERT, insertValues, TAKE, type Taken, takenOf, takeValues } from './audit.js';
import { type Db, poolOf } from './client.js';
import { BEGIN, batchOf, type Batched, COMMIT, NOW, statement } from './sql.js';

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

/** A batch whose transaction is open: checked, its sequence numbers taken, its insert and COMMIT not sent yet. */
interface Open {
  /** Its requests: those it was opened for, then those that joined it before it closed (see join()). */
  batch: Waiting[];
  /** What the check found, by id (a version not found is absent); each row is locked FOR SHARE until COMMIT. */
  rows: Map<string, Checked>;
  /** The ids the check asked for: a request relying on another cannot join. */
  checked: ReadonlySet<string>;
  /** Each chain's head and the sequence numbers taken for it. */
  taken: Map<string, Taken>;
  /** Per chain, the sequence numbers not yet given to a request (the take reserves some for late joiners). */
  room: Map<string, number>;
  /** Per request, whether it passed the check (set when the insert is built). */
  recorded: boolean[];
  started: number;
}

export class HandoutJournal {
  private waiting: Waiting[] = [];
  /** The loop that sends the batches runs (set and cleared synchronously, so no request is left behind). */
  private active = false;
  private running: Promise<void> = Promise.resolve();
  private client: pg.PoolClient | undefined;
  private readonly pool: pg.Pool;
  /** Per chain, how many requests the last batch that appended to it held: the take reserves as many again for late joiners. */
  private readonly recent = new Map<string, number>();
  /** Transactions committed, hand-outs recorded, and the milliseconds the transactions took (for the benchmark). */
  readonly stats = { batches: 0, records: 0, ms: 0 };

  /** @param maxBatch the most requests one transaction holds. @defaultValue 500 */
  constructor(
    db: Db,
    private readonly audit: AuditLog,
    private readonly maxBatch = 500,
  ) {
    // A connection of its own, kept while idle (pg closes an idle one after 10 s): a server's first
    // hand-outs after a pause would otherwise wait for a new connection and its statements to be prepared again.
    this.pool = new pg.Pool({ ...poolOf(db).options, max: 1, idleTimeoutMillis: 0 });
    // An idle connection that dies is dropped by the pool; the next batch opens another. One
    // that dies under a batch fails the batch (and so the transactions it carried): its 'error'
    // event must be heard all its life, or it would end the process.
    this.pool.on('error', () => {});
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  /** Checks and records `entry` (see DeliveryDeps.handOut); resolves once its batch committed. */
  record(entry: HandOut): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ entry, retried: false, resolve, reject });
      // The requests of this turn of the event loop join the first batch.
      this.start(() => new Promise((resolve) => setImmediate(resolve)));
    });
  }

  private start(after: () => Promise<unknown> = () => Promise.resolve()): void {
    if (this.active) return;
    this.active = true;
    this.running = after().then(() => this.loop());
  }

  /** Stops the journal's connection once the batches under way completed. */
  async close(): Promise<void> {
    while (this.active) await this.running;
    this.client?.release();
    this.client = undefined;
    await this.pool.end();
  }

  /**
   * Sends batches until none is open and nobody waits: each write closes the open transaction
   * (insert, COMMIT) and opens the next one for the requests waiting (BEGIN, check, takes).
   * Requests that arrived while the open transaction's check and takes were under way join it
   * when they can (see {@link join}), so they wait for its COMMIT instead of the next one's.
   */
  private async loop(): Promise<void> {
    let open: Open | undefined;
    for (;;) {
      const closing = open;
      if (closing) this.join(closing);
      const next = this.waiting.splice(0, this.maxBatch);
      if (!closing && !next.length) {
        this.active = false;
        return;
      }
      let settling = false;
      const started = performance.now();
      let client: pg.PoolClient | undefined;
      try {
        client = this.client ??= await this.pool.connect();
        const close = closing ? this.closing(closing) : undefined;
        const opening = next.length ? this.opening(next.map((w) => w.entry)) : undefined;
        const batch = batchOf([...(close ? [close] : []), ...(opening ? [opening.statements] : [])]);
        const sent = batch.run(client);
        // Awaited below unless a group's failure comes first (that one is then the batch's).
        sent.catch(() => {});
        settling = !!closing;
        if (closing && close) void this.settle(closing, batch.group(0), () => batch.commands[close.length - 1]);
        open = undefined;
        if (opening) {
          const answers = await batch.group(closing ? 1 : 0);
          open = { batch: next, started, recorded: [], ...opening.opened(answers) };
        }
        await sent;
      } catch (error) {
        const failure = error instanceof Error ? error : new Error('hand-out batch failed');
        // The connection is not kept after a failure: after a failover it may point at a read-only server, or at none.
        if (client && this.client === client) {
          this.client = undefined;
          client.release(failure);
        }
        // The batch opened here (if any) never got its insert: run its requests again; and the
        // one it was to close, if the write failed before it was sent (else settle() sees to it).
        this.again([...(closing && !settling ? closing.batch : []), ...next], failure);
        open = undefined;
      }
    }
  }

  /**
   * Moves into `open` the waiting requests that can share its transaction: every version each
   * hands out or relies on was checked by it and found current and not compromised (its FOR
   * SHARE lock, held until COMMIT, keeps it so: a revocation's update waits for that COMMIT),
   * and its event's chain has a sequence number left. A request relying on a previous version
   * waits for a check of its own, whose transaction time judges the grace.
   */
  private join(open: Open): void {
    if (!this.waiting.length) return;
    const left: Waiting[] = [];
    for (const w of this.waiting) {
      const { entry } = w;
      const chain = entry.event ? entry.event.secret : undefined;
      const room = chain === undefined ? 0 : (open.room.get(chain) ?? 0);
      const fits = open.batch.length < this.maxBatch && (chain === undefined || room > 0);
      if (fits && [...entry.handed, ...entry.relied].every((id) => open.checked.has(id) && handable(open.rows.get(id)))) {
        if (chain !== undefined) open.room.set(chain, room - 1);
        open.batch.push(w);
      } else left.push(w);
    }
    this.waiting = left;
  }

  /** The statements that close `open`: the insert of the events of the requests that passed the check (if any) and COMMIT. */
  private closing(open: Open): Batched[] {
    const entries = open.batch.map((w) => w.entry);
    open.recorded = entries.map((e) => e.handed.every((id) => handable(open.rows.get(id))) && e.relied.every((id) => live(open.rows.get(id))));
    const kept = entries.flatMap((e, i) => (open.recorded[i] && e.event ? [e.event] : []));
    for (const [chain, count] of chainsOf(entries.flatMap((e) => (e.event ? [e.event] : [])))) this.recent.set(chain, count);
    return [...(kept.length ? [[INSERT, insertValues(this.audit.rowsOf(kept, open.taken))] as const] : []), [COMMIT, []]];
  }

  /**
   * Resolves the requests of `closing` once its COMMIT is answered COMMIT (durable), or runs
   * them again when its group failed (the COMMIT of an aborted transaction answers ROLLBACK).
   */
  private async settle(closing: Open, answered: Promise<unknown[][]>, commit: () => string | undefined): Promise<void> {
    try {
      await answered;
      const command = commit();
      if (command !== 'COMMIT') throw new Error(`hand-out batch ended with ${command}`);
    } catch (error) {
      this.again(closing.batch, error instanceof Error ? error : new Error('hand-out batch failed'));
      return;
    }
    this.stats.batches += 1;
    this.stats.records += closing.batch.length;
    this.stats.ms += performance.now() - closing.started;
    closing.batch.forEach((w, i) => w.resolve(closing.recorded[i]!));
  }

  /** Requests of a failed transaction: run once more (first in line), or failed with its error the second time. */
  private again(batch: readonly Waiting[], error: Error): void {
    const again: Waiting[] = [];
    for (const w of batch) {
      if (w.retried) w.reject(error);
      else again.push({ ...w, retried: true });
    }
    this.waiting.unshift(...again);
    if (again.length) this.start();
  }

  /**
   * The statements that open a batch's transaction: BEGIN, the check, each chain's take (the
   * versions locked before the chains, as every writer does); and what their answers say.
   * Sequence numbers are taken for every entry, and as many again as the batch or the chain's
   * last batch held, whichever is more (at most {@link MAX_SPARE}, and maxBatch in all), for
   * requests that join before the insert (see {@link join}); those not used (joiners that did
   * not come, entries that fail the check) are left unused: the log allows gaps, as rollbacks leave.
   */
  private opening(entries: readonly HandOut[]): { statements: Batched[]; opened(answers: unknown[][]): Pick<Open, 'rows' | 'checked' | 'taken' | 'room'> } {
    const ids = [...new Set(entries.flatMap((e) => [...e.handed, ...e.relied]))];
    const events = entries.flatMap((e) => (e.event ? [e.event] : []));
    const spare = (chain: string, count: number) => Math.max(0, Math.min(this.maxBatch - entries.length, MAX_SPARE, Math.max(count, this.recent.get(chain) ?? 1)));
    const chains = [...chainsOf(events)].map(([chain, count]) => [chain, count, spare(chain, count)] as const);
    const statements: Batched[] = [[BEGIN, []], ...(ids.length ? [[CHECK, [ids]] as const] : []), ...chains.map(([chain, count, spare]) => [TAKE, takeValues(chain, count + spare)] as const)];
    return {
      statements,
      opened: (answers) => {
        const rows = (ids.length ? answers[1] : []) as Checked[];
        const takes = answers.slice(ids.length ? 2 : 1) as Array<Array<{ prev: string; seq: string }>>;
        return {
          rows: new Map(rows.map((r) => [r.id, r])),
          checked: new Set(ids),
          taken: new Map<string, Taken>(chains.map(([chain], i) => [chain, takenOf(takes[i]!)])),
          room: new Map(chains.map(([chain, , spare]) => [chain, spare])),
        };
      },
    };
  }
}

/**
 * The most sequence numbers a take reserves for requests that join its batch late: each is a row
 * of the take's answer, so a burst's size is not carried over whole to the batches after it.
 */
const MAX_SPARE = 64;

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
