/**
 * Secret changes for delivery clients (GET /v1/events), fanned out to every server replica
 * through Redis pub/sub: whichever process commits a change (a worker promoting a version,
 * `rekey revoke`, a leak receiver) publishes it on one channel under the queue prefix, and
 * each server holds one subscriber connection for all its streams. A message names a secret,
 * an event and a version number; never a value.
 *
 * Pub/sub delivers at most once: a replica whose subscriber is reconnecting misses what is
 * published meanwhile. Clients therefore also re-read a value when it expires (its expiry is
 * never later than the next scheduled rotation), and a new stream starts with the current
 * version of every secret it covers.
 */
import type { Logger } from 'pino';
import type { SecretChange } from '../core/model.js';
import type { RedisEndpoint } from '../core/redis-endpoint.js';
import { openRedis, type RedisConnection } from '../queue/connection.js';
import { describeError } from '../core/errors.js';

type Listener = (change: SecretChange) => void;

export class ChangeFeed {
  readonly channel: string;
  private readonly listeners = new Set<Listener>();
  private subscriber: RedisConnection | undefined;
  private subscribed: Promise<void> | undefined;
  /** Publications not answered yet: close() lets them finish, so `rekey revoke` does not drop its own. */
  private readonly publishing = new Set<Promise<unknown>>();

  /**
   * @param publisher the process's own connection (publishing needs no connection of its own).
   * @param endpoint where a subscriber connects, when this process serves streams.
   */
  constructor(
    private readonly publisher: RedisConnection,
    private readonly endpoint: RedisEndpoint,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.channel = `${prefix}:delivery:changes`;
  }

  /** Publishes a committed change to every replica's streams. */
  async publish(change: SecretChange): Promise<void> {
    const sent = this.publisher.publish(this.channel, JSON.stringify({ secret: change.secret, event: change.event, version: change.version }));
    this.publishing.add(sent);
    try {
      await sent;
    } finally {
      this.publishing.delete(sent);
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
    subscriber.on('error', (error) => this.log.debug({ error: describeError(error) }, 'change feed: redis connection error'));
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const change = parse(message);
      if (!change) return;
      for (const listener of this.listeners) listener(change);
    });
    try {
      await subscriber.subscribe(this.channel);
    } catch (error) {
      this.subscribed = undefined;
      throw error;
    }
  }
}

function parse(message: string): SecretChange | undefined {
  try {
    const { secret, event, version } = JSON.parse(message) as Record<string, unknown>;
    if (typeof secret === 'string' && (event === 'rotated' || event === 'revoked') && typeof version === 'number') return { secret, event, version };
  } catch {
    // not ours
  }
  return undefined;
}
