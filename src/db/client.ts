import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { CONNECTION_WAIT_MS, markReadOnly, poolTimeouts, QUERY_TIMEOUT_MS, releaseError, watchConnections } from '../core/kit/sql-pool.js';
import { PrismaClient } from './generated/client.js';

export type Db = InstanceType<typeof PrismaClient>;
/** The client inside an interactive transaction. */
export type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/**
 * A Prisma client on the node-postgres driver adapter (no native query engine), on a pool
 * of ours that survives PostgreSQL ending connections (a restart):
 * - every connection keeps an 'error' listener for its whole life (the adapter listens
 *   only while a transaction holds one; an unheard 'error' event kills the process);
 * - a connection that dies inside an interactive transaction is given back to the pool
 *   (which then discards it) if Prisma has not done so shortly after: Prisma's rollback
 *   fails on the dead connection and never releases it, so every restart would leak a
 *   slot until the pool was exhausted and every query waited for ever;
 * - a connection whose server refused a write as read-only (SQLSTATE 25006: a standby, or
 *   a primary demoted by a failover while the front still routed to it) is dropped when it
 *   is given back, so the next one is opened through the front to the new primary instead
 *   of the pool failing every step on it for ever. The step itself fails retryably and the
 *   engine retries it from the run's row.
 * - a transaction waits for a free connection as long as any query does (the pool's
 *   connection timeout), not Prisma's default 2 s: a burst of rotations or API actions
 *   larger than the pool queues instead of failing with P2028.
 * - a query not answered within `queryTimeoutMs` fails and its connection is destroyed: in a
 *   silent network partition (packets swallowed, no FIN or RST) the kernel keeps a connection
 *   for its retransmission timeout (about 15 min), and every query sent on it, every slot of
 *   the pool it holds (the /readyz probe's too), and the hand-out journal's connection (which
 *   copies these options) would wait that long.
 */
export function createDb(databaseUrl: string, poolSize = 10, onError: (error: Error) => void = () => undefined, { queryTimeoutMs = QUERY_TIMEOUT_MS, idleTimeoutMs = IDLE_TIMEOUT_MS }: DbOptions = {}): Db {
  // Every session in UTC: the schema's timestamps are `timestamp(3)` holding UTC (Prisma's
  // convention), and now(), column defaults and comparisons with them use the session's zone.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, idleTimeoutMillis: idleTimeoutMs, ...poolTimeouts({ queryTimeoutMs }), options: '-c TimeZone=UTC' });
  pool.on('error', onError);
  watchConnections(pool, onError);
  // pg-pool calls connect() itself with a callback (pool.query), Prisma with none.
  type Done = (error: Error | undefined, client: pg.PoolClient | undefined, release: unknown) => void;
  const connect = pool.connect.bind(pool) as (done?: Done) => Promise<pg.PoolClient> | undefined;
  pool.connect = ((done?: Done) =>
    done
      ? connect((error, client, release) => done(error, client && releaseWhenDead(client), release))
      : connect()!.then(releaseWhenDead)) as typeof pool.connect;
  const db = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }), transactionOptions: { maxWait: CONNECTION_WAIT_MS } });
  pools.set(db, pool);
  return db;
}

export interface DbOptions {
  /**
   * How long a query on the pool may go unanswered before it fails and its connection is destroyed.
   * Longer than any statement rekey sends through the pool: they are short or paged (`rekey
   * audit verify` reads in pages), lock waits end sooner (interactive transactions time out
   * after 5 s, the longest after 40 s), and migrations run on a client of their own without it.
   * @defaultValue 60 s
   */
  queryTimeoutMs?: number;
  /**
   * How long a connection may sit idle in the pool before it is closed; 0 keeps it. A new
   * connection is a new PostgreSQL backend: its first executions of each named statement are
   * planned again (custom plans, about 0.3–1.5 ms each for a rotation's statements) on cold
   * catalog caches, so a worker whose connections close between bursts of jobs pays that at every
   * burst (Runtime keeps them in long-lived processes).
   * @defaultValue 10 s (node-postgres's)
   */
  idleTimeoutMs?: number;
}

/** node-postgres's default idle timeout: short-lived processes let go of their connections after it. */
const IDLE_TIMEOUT_MS = 10_000;

const pools = new WeakMap<Db, pg.Pool>();

/**
 * The pool under `db` (createDb's), for the statements written by hand (src/db/sql.ts): they
 * share its connections, its error handling and its read-only check with Prisma's.
 * @throws Error for a client createDb did not make.
 */
export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error('this Prisma client was not made by createDb');
  return pool;
}

const DEAD_CLIENT_GRACE_MS = 1000;

function releaseWhenDead(client: pg.PoolClient): pg.PoolClient {
  const release = client.release.bind(client);
  let released = false;
  let timer: NodeJS.Timeout | undefined;
  const died = (error: Error) => {
    timer = setTimeout(() => client.release(error), DEAD_CLIENT_GRACE_MS);
    timer.unref();
  };
  client.once('error', died);
  client.release = (error?: Error | boolean) => {
    if (released) return;
    released = true;
    clearTimeout(timer);
    client.removeListener('error', died);
    // pg-pool destroys a client given back with an error instead of keeping it.
    release(error ?? releaseError(client));
  };
  return client;
}

/**
 * Whether PostgreSQL answers and takes writes (readiness). A server that does not (a standby, or
 * a primary demoted by a failover while the front still routes to it: `transaction_read_only`
 * is on) has the connection dropped, as a refused write's is, so the next check goes through the
 * front afresh. Needs no privilege beyond connecting.
 * @throws what the query throws (the server unreachable).
 */
export async function writable(db: Db): Promise<boolean> {
  const client = await poolOf(db).connect();
  let readOnly = true;
  try {
    const { rows } = await client.query<{ read_only: string }>(`SELECT current_setting('transaction_read_only') AS read_only`);
    readOnly = rows[0]?.read_only !== 'off';
    return !readOnly;
  } finally {
    if (readOnly) markReadOnly(client);
    client.release();
  }
}

/**
 * Whether an error is a unique-constraint violation (Prisma P2002 or PostgreSQL 23505); with
 * `constraint`, a violation of that index as PostgreSQL names it (a hand-written statement's error).
 */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const e = error as { code?: string; constraint?: string; meta?: { driverAdapterError?: { cause?: { originalCode?: string } } } };
  if (constraint !== undefined) return e?.code === '23505' && e.constraint === constraint;
  return e?.code === 'P2002' || e?.code === '23505' || e?.meta?.driverAdapterError?.cause?.originalCode === '23505';
}
