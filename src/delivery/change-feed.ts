/**
 * Secret changes for delivery clients (GET /v1/events), fanned out to every server replica
 * through Redis pub/sub: whichever process commits a change (a worker promoting a version,
 * `rekey revoke`, a leak receiver) publishes it on one channel under the queue prefix, and
 * each server holds one subscriber connection for all its streams. A message names a secret,
 * an event and a version number; never a value.
 *
 * Each change is also appended to a capped log (a Redis stream, `<prefix>:delivery:log`, the
 * last LOG_LENGTH changes), in the same script that publishes it with its log id: streams send
 * that id as the SSE `id:`, and a client that reconnects with `Last-Event-ID` is sent what it
 * missed from the log (since()).
 *
 * Pub/sub keeps nothing for a subscriber that is away: once a replica's subscriber is
 * connected and subscribed again (a Redis failover, a cut connection), the feed reads the log
 * from the last change it handed out and hands out what it missed, before what arrived live
 * meanwhile (catchUp()). What the log no longer holds (trimmed, or lost with a primary that had
 * not replicated it) is lost: clients therefore also re-read a value when it expires (its expiry
 * is never later than the next scheduled rotation), and a stream that cannot resume starts with
 * the current version of every secret it covers.
 */
import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { SecretChange } from '../core/model.js';
import type { RedisEndpoint } from '../core/redis-endpoint.js';
import { openRedis, type RedisConnection } from '../queue/connection.js';
import { describeError } from '../core/errors.js';

type Listener = (change: SecretChange) => void;

/** Changes the log keeps (approximately: the stream is trimmed with `~`). */
const LOG_LENGTH = 10_000;
/** Appends the change to the log and publishes it with its id, atomically (one slot: the prefix is hash-tagged). */
const PUBLISH = `local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'change', ARGV[2])
redis.call('PUBLISH', ARGV[3], id .. ' ' .. ARGV[2])
return id`;
/**
 * PUBLISH's SHA-1: every change is sent by it (EVALSHA), so it carries its arguments and not the
 * script, and Redis need not hash the script again; a Redis that has not loaded it yet (a new or
 * restarted one, a failover) answers NOSCRIPT without running anything, and the change is sent with the script.
 */
const PUBLISH_SHA = createHash('sha1').update(PUBLISH).digest('hex');

export class ChangeFeed {
  readonly channel: string;
  private readonly log: string;
  private readonly listeners = new Set<Listener>();
  private subscriber: RedisConnection | undefined;
  private subscribed: Promise<void> | undefined;
  /** The log id of the newest change handed to the listeners (or in the log when subscribing): a reconnection reads the log after it. */
  private last: string | undefined;
  /** Changes arriving live while catchUp() reads the log: handed out after what it read. */
  private held: SecretChange[] | undefined;
  /** A reconnection happened while catchUp() ran: it reads the log once more. */
  private again = false;
  /** Publications not answered yet: close() lets them finish, so `rekey revoke` does not drop its own. */
  private readonly publishing = new Set<Promise<unknown>>();
  /** Cluster: the subscriber connections whose end already starts a catch-up. */
  private readonly watched = new WeakSet<Redis>();

  /**
   * @param publisher the process's own connection (publishing needs no connection of its own).
   * @param endpoint where a subscriber connects, when this process serves streams.
   */
  constructor(
    private readonly publisher: RedisConnection,
    private readonly endpoint: RedisEndpoint,
    prefix: string,
    private readonly logger: Logger,
  ) {
    this.channel = `${prefix}:delivery:changes`;
    this.log = `${prefix}:delivery:log`;
  }

  /** Publishes a committed change to every replica's streams. */
  async publish(change: SecretChange): Promise<void> {
    const sent = this.append(JSON.stringify({ secret: change.secret, event: change.event, version: change.version }));
    this.publishing.add(sent);
    try {
      await sent;
    } finally {
      this.publishing.delete(sent);
    }
  }

  /** Runs PUBLISH by its SHA-1, with its text when Redis does not have it (NOSCRIPT: nothing ran). */
  private async append(change: string): Promise<unknown> {
    const args = [1, this.log, LOG_LENGTH, change, this.channel] as const;
    try {
      return await this.publisher.evalsha(PUBLISH_SHA, ...args);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      return this.publisher.eval(PUBLISH, ...args);
    }
  }

  /**
   * Calls `listener` with every change published from now on (resolves once the subscription
   * is in place); returns the function that stops it.
   */
  async subscribe(listener: Listener): Promise<() => void> {
    this.listeners.add(listener);
    await (this.subscribed ??= this.open());
    return () => this.listeners.delete(listener);
  }

  /**
   * The logged changes after `id` (a change's id), oldest first; undefined when the log no longer
   * reaches back to it (trimmed, or an id of another log), so the caller starts afresh.
   */
  async since(id: string): Promise<SecretChange[] | undefined> {
    if (!/^\d+-\d+$/.test(id)) return undefined;
    const [first] = await this.publisher.xrange(this.log, '-', '+', 'COUNT', 1);
    if (!first || compareIds(first[0], id) > 0) return undefined;
    const entries = await this.publisher.xrange(this.log, `(${id}`, '+');
    return entries.flatMap(([entryId, fields]) => {
      const change = parse(`${entryId} ${fields[1] ?? ''}`);
      return change ? [change] : [];
    });
  }

  /** Waits (up to a second) for publications in flight, then drops the subscriber. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.publishing]), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
    this.listeners.clear();
    this.subscriber?.disconnect();
    this.subscriber = undefined;
    this.subscribed = undefined;
  }

  private async open(): Promise<void> {
    // A connection in subscriber mode may run nothing else: one of its own, kept for the process.
    const subscriber = (this.subscriber = openRedis(this.endpoint, { longLived: true }));
    subscriber.on('error', (error) => this.logger.debug({ error: describeError(error) }, 'change feed: redis connection error'));
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const change = parse(message);
      if (!change) return;
      if (this.held) this.held.push(change);
      else this.dispatch(change);
    });
    try {
      // The newest change before subscribing: one logged after this read and before the subscription
      // is in place is not this subscription's; one logged after it arrives live, with a greater id.
      const [newest] = await this.publisher.xrevrange(this.log, '+', '-', 'COUNT', 1);
      await subscriber.subscribe(this.channel);
      this.last ??= newest?.[0] ?? '0-0';
    } catch (error) {
      this.subscribed = undefined;
      throw error;
    }
    // Registered once subscribed: every 'ready' from now on is a reconnection.
    subscriber.on('ready', () => void this.catchUp(subscriber));
    if (subscriber instanceof Cluster) this.watchClusterSubscriber(subscriber);
  }

  /**
   * A Cluster holds its subscription on a connection of its own to one node. When that connection
   * ends (the node cut it, died, or left the cluster), ioredis picks a node and subscribes there by
   * itself, and the Cluster emits no 'ready': it never stopped being ready. Its end is the
   * reconnection here. ioredis exposes that connection on no public API, hence the narrow read of
   * its `subscriber` (test/processes/change-feed-cluster.test.ts fails if it goes away).
   */
  private watchClusterSubscriber(cluster: Cluster): void {
    const connection = (cluster as unknown as { subscriber?: { getInstance?(): Redis | null } }).subscriber?.getInstance?.();
    if (!connection) {
      this.logger.warn('change feed: cannot watch the Cluster subscriber connection; changes published while it reconnects reach streams only on their next reconnection');
      return;
    }
    if (this.watched.has(connection)) return;
    this.watched.add(connection);
    // ioredis has picked the next connection by the time this runs (its own 'end' listener came first).
    connection.once('end', () => {
      if (this.subscriber === cluster) void this.catchUp(cluster);
    });
  }

  /**
   * Hands `change` to the listeners, unless it was handed out already: the log's ids only grow,
   * and every change up to `last` was handed out (live or replayed), so a live copy arriving after
   * a catch-up replayed it (a publication that crossed a Cluster's bus late) is dropped.
   */
  private dispatch(change: SecretChange): void {
    if (change.id && this.last && compareIds(change.id, this.last) <= 0) return;
    if (change.id) this.last = change.id;
    for (const listener of this.listeners) listener(change);
  }

  /** After a reconnection: the changes the log got since the last one handed out, then those that arrived live meanwhile (each once). */
  private async catchUp(subscriber: RedisConnection): Promise<void> {
    if (this.held) return void (this.again = true);
    this.held = [];
    const replayed = new Set<string>();
    do {
      this.again = false;
      try {
        // ioredis subscribes again on 'ready'; this waits for that, so the log read next holds everything published before.
        await subscriber.subscribe(this.channel);
        if (this.subscriber !== subscriber) break;
        // The connection that subscribed just now: its end is the next reconnection.
        if (subscriber instanceof Cluster) this.watchClusterSubscriber(subscriber);
        for (const [id, fields] of await this.publisher.xrange(this.log, `(${this.last ?? '0-0'}`, '+')) {
          const change = parse(`${id} ${fields[1] ?? ''}`);
          if (!change || replayed.has(id)) continue;
          replayed.add(id);
          this.dispatch(change);
        }
      } catch (error) {
        if (this.subscriber === subscriber) this.logger.warn({ error: describeError(error) }, 'change feed: could not read the changes published while reconnecting');
      }
    } while (this.again);
    const held = this.held;
    this.held = undefined;
    for (const change of held) if (!change.id || !replayed.has(change.id)) this.dispatch(change);
  }
}

/** `<log id> <json>`; a bare JSON message (from a process of an older version) has no id. */
function parse(message: string): SecretChange | undefined {
  const space = message.indexOf(' ');
  const id = space > 0 && /^\d+-\d+$/.test(message.slice(0, space)) ? message.slice(0, space) : undefined;
  try {
    const { secret, event, version } = JSON.parse(id ? message.slice(space + 1) : message) as Record<string, unknown>;
    if (typeof secret === 'string' && (event === 'rotated' || event === 'revoked') && typeof version === 'number') return { secret, event, version, ...(id ? { id } : {}) };
  } catch {
    // not ours
  }
  return undefined;
}

/** Orders two stream ids (`<ms>-<seq>`). */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}
