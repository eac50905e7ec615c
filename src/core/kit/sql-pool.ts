/**
 * What every node-postgres pool of rekey's needs (its own in src/db/client.ts, the local store's,
 * postgres-role's managing pool), written once:
 * - a connection whose server refused a write as read-only (SQLSTATE 25006: a standby, or a
 *   primary demoted by a failover while the front still routed to it) is dropped when it is given
 *   back, so the next one is opened through the front to the new primary instead of the pool
 *   failing on it for ever;
 * - a query not answered in time fails and its connection is destroyed: in a silent network
 *   partition (packets swallowed, no FIN or RST) the kernel keeps a connection for its
 *   retransmission timeout (about 15 min), and every query sent on it, and every slot of the
 *   pool it holds, would wait that long.
 * Read by shape, as node-postgres's objects are: src/core/kit does not import pg.
 */

/** How long a checkout waits for a free connection (or a new one's startup). */
export const CONNECTION_WAIT_MS = 30_000;
/** How long a query may go unanswered before it fails and its connection is destroyed. */
export const QUERY_TIMEOUT_MS = 60_000;

export interface PoolTimeouts {
  /**
   * How long a query may go unanswered before it fails and its connection is destroyed: longer
   * than any statement sent through the pool. @defaultValue 60 s
   */
  queryTimeoutMs?: number;
  /** How long a checkout waits for a free connection (or a new one's startup). @defaultValue 30 s */
  connectionWaitMs?: number;
}

/** pg.Pool options for {@link PoolTimeouts}; give the pool to {@link watchConnections} too, or a timed-out connection is kept. */
export function poolTimeouts({ queryTimeoutMs = QUERY_TIMEOUT_MS, connectionWaitMs = CONNECTION_WAIT_MS }: PoolTimeouts = {}): {
  connectionTimeoutMillis: number;
  query_timeout: number;
} {
  return { connectionTimeoutMillis: connectionWaitMs, query_timeout: queryTimeoutMs };
}

/** The part of a node-postgres client read here. */
interface WatchedClient {
  on(event: 'error', listener: (error: Error) => void): unknown;
  query: (...args: unknown[]) => unknown;
}

/** The part of a node-postgres pool client (pg.PoolClient) used by {@link inTransaction}. */
export interface PooledClient {
  query(text: string): Promise<unknown>;
  /** pg-pool destroys a connection given back with an error instead of keeping it. */
  release(error?: Error | boolean): void;
}

const READ_ONLY_SQL_TRANSACTION = '25006';
/** node-postgres's error for a query unanswered within `query_timeout`. */
const QUERY_TIMEOUT_MESSAGE = 'Query read timeout';
const readOnlyServers = new WeakSet<object>();

/**
 * Watches every connection `pool` opens, for its whole life: `onError` hears its 'error' events
 * (unheard, one ends the process: PostgreSQL ending a checked-out connection between two queries);
 * a query on it that fails with 25006 marks it to be dropped ({@link releaseError}); a query on it
 * that times out destroys it: node-postgres fails the query but keeps waiting for its answer, so
 * every later query on the connection (a transaction's ROLLBACK) would wait too.
 */
export function watchConnections(pool: { on(event: 'connect', listener: (client: WatchedClient) => void): unknown }, onError: (error: Error) => void): void {
  pool.on('connect', (client) => {
    client.on('error', onError);
    watchQueries(client);
  });
}

/** Marks `client` once a query on it fails with 25006, destroys it once one times out (callback and promise forms). */
function watchQueries(client: WatchedClient): void {
  const query = client.query.bind(client);
  const note = (error: unknown) => {
    if ((error as { code?: unknown } | null)?.code === READ_ONLY_SQL_TRANSACTION) readOnlyServers.add(client);
    if ((error as Error | null)?.message === QUERY_TIMEOUT_MESSAGE) (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  };
  client.query = (...args: unknown[]) => {
    const callback = args.at(-1);
    if (typeof callback === 'function') {
      args[args.length - 1] = (error: unknown, result: unknown) => {
        note(error);
        (callback as (error: unknown, result: unknown) => void)(error, result);
      };
      return query(...args);
    }
    const result = query(...args);
    // A branch of its own: the caller still gets (and handles) the original rejection.
    if (result instanceof Promise) result.catch(note);
    return result;
  };
}

/** Marks `client` to be dropped when it is given back, as a refused write does (a readiness check that found the server read-only). */
export function markReadOnly(client: object): void {
  readOnlyServers.add(client);
}

/** The error to give `client` back to its pool with, so that the pool drops it: set once its server refused a write as read-only. */
export function releaseError(client: object): Error | undefined {
  return readOnlyServers.has(client) ? new Error('server is read-only') : undefined;
}

/**
 * Runs `work` in a transaction on a connection from `connect`: BEGIN, `work`, COMMIT; on a failure,
 * ROLLBACK (its own failure ignored: the connection may be gone) and the failure rethrown. The
 * connection is given back with {@link releaseError}'s error, so a read-only server's is dropped.
 * @throws what `connect`, `work` or a statement throws.
 */
export async function inTransaction<C extends PooledClient, T>(connect: () => Promise<C>, work: (client: C) => Promise<T>): Promise<T> {
  const client = await connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release(releaseError(client));
  }
}
