/**
 * Hand-written SQL for the hot path (a rotation's steps and their audit appends), on the
 * pool Prisma's adapter uses. Every statement is named, so PostgreSQL parses and plans it
 * once per connection instead of once per call, and node-postgres sends only its
 * parameters; Prisma's query compiler is skipped entirely. Prisma stays for everything else.
 */
import pg from 'pg';
import { Batch } from './batch.js';
import { type Db, poolOf } from './client.js';

/**
 * The schema's timestamps are `timestamp(3)` holding UTC (Prisma's convention): read them as
 * UTC whatever this process's time zone, and write Dates as UTC ISO strings (a `timestamp`
 * column ignores the zone). In SQL, write {@link NOW} rather than now().
 */
const TIMESTAMP = 1114;
const utc = (text: string) => new Date(`${text.replace(' ', 'T')}Z`);
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === TIMESTAMP ? utc : (pg.types.getTypeParser(oid, format) as unknown))) as typeof pg.types.getTypeParser,
};

/** A Date as a `timestamp` parameter (UTC ISO text), anything else as it is. */
const param = (v: unknown) => (v instanceof Date ? v.toISOString() : v);

/** The transaction's time as a UTC `timestamp`, whatever the session's time zone. */
export const NOW = "(now() AT TIME ZONE 'UTC')";

/** A named statement: one text per name (node-postgres prepares it once per connection). */
export interface Statement {
  name: string;
  text: string;
}

/** Declares a named statement; whitespace is collapsed so the text reads well in the source. */
export function statement(name: string, text: string): Statement {
  return { name: `rekey_${name}`, text: text.replace(/\s+/g, ' ').trim() };
}

/** Runs statements, outside a transaction (each its own) or inside one (see {@link transaction}). */
export interface Sql {
  rows<R>(statement: Statement, values: readonly unknown[]): Promise<R[]>;
}

/** One statement of a {@link SqlTx.batch}, with its values. */
export type Batched = readonly [Statement, readonly unknown[]];

/**
 * Statements on one pooled connection inside BEGIN ... COMMIT. Every batch is one write and
 * one answer (src/db/batch.ts): BEGIN goes out with the first, COMMIT with the deferred
 * statements; the statements of a batch run in order, each seeing what the ones before it wrote.
 */
export interface SqlTx extends Sql {
  /** Marks this as the hand-written kind (the audit log takes either kind of transaction). */
  readonly kind: 'sql';
  /**
   * Sends `statements` in one round trip and returns each one's rows, in order. When one
   * fails, PostgreSQL skips the ones after it (the transaction is aborted) and its error is thrown.
   */
  batch(statements: readonly Batched[]): Promise<unknown[][]>;
  /**
   * Queues a statement whose rows nobody reads: it goes out in front of the next batch, or
   * with COMMIT, and its failure fails that batch or the commit (so the transaction rolls back).
   */
  defer(statement: Statement, values: readonly unknown[]): void;
}

class Runner implements Sql {
  constructor(private readonly pool: pg.Pool) {}

  async rows<R>(s: Statement, values: readonly unknown[]): Promise<R[]> {
    return (await this.pool.query({ name: s.name, text: s.text, values: values.map(param), types })).rows as R[];
  }
}

/** Statements each in its own implicit transaction. */
export function sql(db: Db): Sql {
  return new Runner(poolOf(db));
}

/** BEGIN and COMMIT as named statements, so they go in a batch like any other. */
export const BEGIN = statement('begin', 'BEGIN');
export const COMMIT = statement('commit', 'COMMIT');

/** A batch (src/db/batch.ts) of `groups` of statements, with this file's parameter and result conventions. */
export function batchOf(groups: readonly (readonly Batched[])[]): Batch {
  return new Batch(
    groups.map((group) => group.map(([s, values]) => ({ name: s.name, text: s.text, values: values.map(param) }))),
    types,
  );
}

class TxRunner implements SqlTx {
  readonly kind = 'sql';
  private begun = false;
  private deferred: Batched[] = [];
  /** A batch that failed after preparing a statement on this connection: the connection is not reused. */
  spoiled = false;

  constructor(private readonly client: pg.PoolClient) {}

  async rows<R>(s: Statement, values: readonly unknown[]): Promise<R[]> {
    return (await this.batch([[s, values]]))[0] as R[];
  }

  async batch(statements: readonly Batched[]): Promise<unknown[][]> {
    const results = await this.send(statements);
    return results.slice(results.length - statements.length);
  }

  defer(s: Statement, values: readonly unknown[]): void {
    this.deferred.push([s, values]);
  }

  /** COMMIT with what is deferred; nothing when nothing was sent. */
  async commit(): Promise<void> {
    if (this.begun || this.deferred.length) await this.send([[COMMIT, []]]);
  }

  /** Whether ROLLBACK is needed: something was sent. */
  get open(): boolean {
    return this.begun;
  }

  /** BEGIN (the first time), the deferred statements, then `statements`: one batch. Returns the rows of all but BEGIN. */
  private async send(statements: readonly Batched[]): Promise<unknown[][]> {
    const all: Batched[] = [...(this.begun ? [] : [[BEGIN, []] as const]), ...this.deferred.splice(0), ...statements];
    const begin = this.begun ? 0 : 1;
    this.begun = true;
    const batch = batchOf([all]);
    try {
      return (await batch.run(this.client)).slice(begin);
    } catch (error) {
      this.spoiled ||= batch.prepared;
      throw error;
    }
  }
}

/**
 * Runs `fn` in one transaction on one connection: committed when it returns, rolled back
 * when it throws (the error is rethrown). A connection whose rollback fails is discarded.
 * BEGIN leaves with the first statement and COMMIT with the deferred ones (SqlTx), so a
 * transaction of one batch and a deferred insert is two round trips.
 */
export async function transaction<T>(db: Db, fn: (tx: SqlTx) => Promise<T>): Promise<T> {
  const client = await poolOf(db).connect();
  const tx = new TxRunner(client);
  let broken: Error | undefined;
  try {
    const result = await fn(tx);
    await tx.commit();
    return result;
  } catch (error) {
    // After a failed COMMIT the transaction is over already: ROLLBACK then only warns.
    if (tx.open) await client.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error('rollback failed')));
    // A statement prepared by the failed batch may or may not exist on the server: start afresh.
    if (tx.spoiled) broken ??= new Error('a batch failed while preparing statements');
    throw error;
  } finally {
    client.release(broken);
  }
}
