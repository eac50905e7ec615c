/**
 * Hand-written SQL for the hot path (a rotation's steps and their audit appends), on the
 * pool Prisma's adapter uses. Every statement is named, so PostgreSQL parses and plans it
 * once per connection instead of once per call, and node-postgres sends only its
 * parameters; Prisma's query compiler is skipped entirely. Prisma stays for everything else.
 */
import pg from 'pg';
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

/** Statements on one pooled connection inside BEGIN ... COMMIT. */
export interface SqlTx extends Sql {
  /** Marks this as the hand-written kind (the audit log takes either kind of transaction). */
  readonly kind: 'sql';
}

class Runner implements SqlTx {
  readonly kind = 'sql';
  constructor(private readonly client: pg.Pool | pg.PoolClient) {}

  async rows<R>(s: Statement, values: readonly unknown[]): Promise<R[]> {
    const params = values.map((v) => (v instanceof Date ? v.toISOString() : v));
    return (await this.client.query({ name: s.name, text: s.text, values: params, types })).rows as R[];
  }
}

/** Statements each in its own implicit transaction. */
export function sql(db: Db): Sql {
  return new Runner(poolOf(db));
}

/**
 * Runs `fn` in one transaction on one connection: committed when it returns, rolled back
 * when it throws (the error is rethrown). A connection whose rollback fails is discarded.
 */
export async function transaction<T>(db: Db, fn: (tx: SqlTx) => Promise<T>): Promise<T> {
  const client = await poolOf(db).connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(new Runner(client));
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error('rollback failed')));
    throw error;
  } finally {
    client.release(broken);
  }
}
