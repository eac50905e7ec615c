/**
 * rekey's Redis connections, built in one place from the parsed REDIS_URL (a single node,
 * Sentinel or Cluster) with the options BullMQ needs to live through a failover:
 * - `maxRetriesPerRequest: null` (long-lived processes): a command waits for the new
 *   primary instead of failing; BullMQ refuses blocking connections without it;
 * - reconnect and resend on `READONLY` (the server answering is a demoted primary);
 * - Sentinel: ask the sentinels again on every reconnect, and drop the connection as soon
 *   as they announce a new primary (`failoverDetector`), so nothing keeps talking to the
 *   old one through a partition;
 * - Cluster: follow slot moves and failovers (a long-lived command waits through a
 *   primary's restart, MOVED retried every 100 ms), reads from primaries only;
 * - a reconnect delay capped at {@link FAILOVER_RETRY_MS}, so a worker is back within a
 *   quarter of a second of the sentinels naming the new primary (and BullMQ's workers retry
 *   a fetch or a finish that met a connection error after as long, not its default 15 s);
 * - long-lived Sentinel connections (and their duplicates, which BullMQ's workers use)
 *   connect again when ioredis gives up on its own: a failover announced while it was
 *   asking the sentinels makes its connect fail with "Connection is closed" and leaves the
 *   client ended for good, a worker that never resumes ({@link reviveWhenEnded}).
 * Short-lived commands (the CLI) give up after a few attempts instead of waiting.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { type RedisEndpoint, redisClientPlan } from '../core/redis-endpoint.js';

/** A connection the queues and workers share: one node (maybe found through Sentinel) or a Cluster. */
export type RedisConnection = Redis | Cluster;

export interface ConnectionOptions {
  /** Long-lived processes (workers, server) retry for ever; CLI commands give up quickly. */
  longLived: boolean;
  /** Connect on the first command rather than at once. @defaultValue true */
  lazyConnect?: boolean;
}

/**
 * The longest wait between reconnect attempts of a long-lived connection, and before a
 * worker fetches or finishes a job again after a connection error (BullMQ's `runRetryDelay`,
 * 15 s by default: a worker whose fetch failed once during a failover sat idle that long).
 * Attempts are cheap (one sentinel query and one connect); the sentinels name the new
 * primary about a second after promoting it, and rekey should be there within this much.
 */
export const FAILOVER_RETRY_MS = 250;

/** The `READONLY` reply: a replica (or a demoted primary) refused a write. Reconnect, then resend the command. */
export function reconnectOnReadonly(error: Error): 2 | false {
  return error.message.startsWith('READONLY') ? 2 : false;
}

/** Opens (lazily, by default) a connection to rekey's Redis. */
export function openRedis(endpoint: RedisEndpoint, options: ConnectionOptions): RedisConnection {
  const plan = redisClientPlan(endpoint);
  const retry = (times: number): number | null => {
    if (options.longLived) return Math.min(times * 50, FAILOVER_RETRY_MS);
    return times < 5 ? times * 100 : null; // a CLI command waits about a second, then reports Redis down
  };
  const common: RedisOptions = {
    ...plan.options,
    maxRetriesPerRequest: options.longLived ? null : 2,
    reconnectOnError: reconnectOnReadonly,
    connectTimeout: 5000,
  };
  const lazyConnect = options.lazyConnect ?? true;
  if (plan.cluster) {
    return new Cluster(plan.nodes, {
      redisOptions: common,
      lazyConnect,
      clusterRetryStrategy: (times) => retry(times),
      scaleReads: 'master',
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 300,
      retryDelayOnTryAgain: 200,
      // Every MOVED, failover or CLUSTERDOWN retry of a command counts as one redirection, 16 by
      // default, and a MOVED was resent at once: a primary restarting on its port answered MOVED
      // back and forth until an enqueue failed ("Too many Cluster redirections") while its run
      // had already committed. A long-lived process waits through a failover instead, as it
      // waits for a new primary (maxRetriesPerRequest: null); the CLI still gives up.
      retryDelayOnMoved: 100,
      maxRedirections: options.longLived ? 300 : 16,
      slotsRefreshTimeout: 2000,
      // Nodes announce addresses a TLS certificate names by host: keep the host as given.
      ...(endpoint.tls ? { dnsLookup: (address: string, callback: (error: null, address: string) => void) => callback(null, address) } : {}),
    });
  }
  const client = new Redis({
    ...common,
    lazyConnect,
    retryStrategy: retry,
    ...(endpoint.mode === 'sentinel' ? { failoverDetector: true, sentinelRetryStrategy: (times: number) => retry(times) } : {}),
  });
  return options.longLived && endpoint.mode === 'sentinel' ? reviveWhenEnded(client) : client;
}

/** A connection of its own to the same Redis, with the same options (and revival, for Sentinel). */
export function duplicateConnection(connection: RedisConnection): RedisConnection {
  // The same call on each branch: TS cannot call duplicate() on the Redis | Cluster union (their generic signatures differ).
  return connection instanceof Cluster ? connection.duplicate() : connection.duplicate();
}

/**
 * Redis Cluster's slot of `key`: CRC16 (XMODEM) of its hash tag (between the first `{` and the next
 * `}`, when not empty) or else of the whole key, modulo 16384.
 */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  let crc = 0;
  for (const byte of Buffer.from(close > open + 1 ? key.slice(open + 1, close) : key)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * The node connection that carries `client`'s commands on `key`: `client` itself, or on a Cluster
 * its connection to the primary serving the key's slot (undefined while it knows none, or has no
 * connection to it). A Cluster opens a node's connection on its first command.
 */
export function carrierOf(client: RedisConnection, key: string): Redis | undefined {
  if (!(client instanceof Cluster)) return client;
  const primary = client.slots[keySlot(key)]?.[0];
  return primary === undefined ? undefined : client.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === primary);
}

/**
 * Whether a replica holds every write made on `node`'s current connection (see {@link carrierOf}):
 * `WAIT 1 timeoutMs` when the primary it talks to has a replica online (`ROLE`). Sentinel, or the
 * Cluster's failover, promotes a replica that got the stream, so a write one replica acknowledged
 * outlives the primary; one only the primary held dies with it. True at once when the primary has
 * no replica online (nothing is more durable then; a replica that stops acknowledging stays online
 * until the primary drops it, `repl-timeout`, 60 s by default). WAIT vouches only for writes made
 * on the connection it runs on, and blocks it meanwhile: use one of its own, and check the
 * connection did not change. @returns false when no replica acknowledged within `timeoutMs`.
 */
export async function replicated(node: Redis, timeoutMs: number): Promise<boolean> {
  const [role, , replicas] = (await node.call('ROLE')) as [string, unknown, unknown];
  if (role !== 'master' || !Array.isArray(replicas) || !replicas.length) return true;
  return Number(await node.call('WAIT', 1, timeoutMs)) >= 1;
}

/**
 * Connects `client` again (after the reconnect cap) whenever it ends without having been
 * closed by its owner (`disconnect()`, `quit()`); the same for every `duplicate()` of it.
 */
export function reviveWhenEnded(client: Redis): Redis {
  let closing = false;
  const disconnect = client.disconnect.bind(client);
  client.disconnect = (reconnect = false) => {
    if (!reconnect) closing = true;
    disconnect(reconnect);
  };
  const quit = client.quit.bind(client) as (...args: unknown[]) => Promise<'OK'>;
  client.quit = ((...args: unknown[]) => {
    closing = true;
    return quit(...args);
  });
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override) => reviveWhenEnded(duplicate(override));
  client.on('end', () => {
    if (closing) return;
    setTimeout(() => {
      if (!closing && client.status === 'end') client.connect().catch(() => undefined);
    }, FAILOVER_RETRY_MS).unref();
  });
  return client;
}
