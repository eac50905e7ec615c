/**
 * The `notifications` queue: the relay moves each notice from the outbox (src/db/outbox.ts) to
 * one job per subscribed destination, with a deterministic id (`<notice id>@<destination>`), so a
 * notice relayed again (a relay that died after queuing it, before deleting its row; one raised
 * again at every reconcile pass) adds nothing while the first is queued or kept. Jobs carry the
 * notice (names, numbers, codes: never a value) and the destination's name; the worker reads the
 * destination when it delivers.
 *
 * The outbox row is the only record of a one-off notice (leak.received, rotation.failed): no
 * reconcile raises it again. So a relay deletes rows only once a replica holds their jobs too
 * (when the primary has replicas; on a Cluster, the primary serving the queue's hash tag): jobs
 * only the primary held die with it when Sentinel or the Cluster promotes a replica
 * (test/processes/outbox-failover.test.ts, outbox-cluster-failover.test.ts).
 */
import { type JobsOptions, Queue } from 'bullmq';
import { own } from '../config/schema.js';
import type { NotificationsConfig } from '../config/notifications.js';
import type { Notice } from '../core/notify.js';
import type { Db } from '../db/client.js';
import { relayOutbox } from '../db/outbox.js';
import { RekeyError } from '../core/errors.js';
import { carrierOf, duplicateConnection, type RedisConnection, replicated } from '../queue/connection.js';
import { jobId, NOTIFICATIONS_QUEUE, NOTIFY_BACKOFF } from '../queue/names.js';

export interface NoticeJob {
  notice: Notice;
  destination: string;
}

/**
 * Delivered and given-up jobs stay this long (seconds): the window in which raising the same
 * notice again is dropped here. After it, a receiver still sees the same webhook-id.
 */
const KEEP = { age: 7 * 24 * 3600, count: 10_000 };

/** How long an enqueue waits for a replica to acknowledge its jobs (a healthy one takes a millisecond). */
export const REPLICA_WAIT_MS = 1000;

export class NoticeQueue {
  readonly queue: Queue;
  /** The queue's own connection: WAIT holds it until a replica answers, and must not hold the process's shared one (the leak path's). */
  private readonly connection: RedisConnection;

  /** @param section the applied config's `notifications:` (undefined: none, or no config applied yet) */
  constructor(
    connection: RedisConnection,
    prefix: string,
    private readonly section: () => Promise<NotificationsConfig | undefined>,
  ) {
    this.connection = duplicateConnection(connection);
    this.queue = new Queue(NOTIFICATIONS_QUEUE, { connection: this.connection, prefix });
  }

  /**
   * Queues each notice for every destination of the applied config subscribed to its type, in one
   * round trip, and resolves once a replica holds the jobs too (see {@link replicated}).
   * @throws RekeyError REKEY_ERR_UNAVAILABLE when no replica acknowledged them in time, or the
   *   connection that carried them is not known or changed meanwhile (a reconnection, a Cluster
   *   slot served by another node): the jobs may be on the primary only; the caller keeps its rows
   *   and queues them again (same ids: nothing is added twice).
   */
  async enqueue(notices: readonly Notice[]): Promise<void> {
    const destinations = Object.entries((await this.section())?.destinations ?? {});
    const jobs = notices.flatMap((notice) =>
      destinations
        .filter(([, destination]) => destination.events.includes(notice.type))
        .map(([name, destination]) => {
          const opts: JobsOptions = {
            jobId: jobId.notice(notice.id, name),
            attempts: destination.retry.attempts,
            backoff: { type: NOTIFY_BACKOFF, delay: destination.retry.backoff },
            removeOnComplete: KEEP,
            removeOnFail: KEEP,
          };
          return { name: notice.type, data: { notice, destination: name } satisfies NoticeJob, opts };
        }),
    );
    if (!jobs.length) return;
    // WAIT vouches only for writes made on the connection it runs on: the one to the node serving
    // the queue's keys (on a Cluster, its prefix's hash tag), connected before the jobs go (a
    // Cluster connects to a node on its first command) and the same socket from then until WAIT
    // answers. A slot moved meanwhile (MOVED: another node took the jobs) shows as another carrier.
    await this.queue.waitUntilReady();
    const key = this.queue.qualifiedName;
    const node = carrierOf(this.connection, key);
    if (node?.status === 'wait') await node.connect().catch(() => undefined);
    const stream = node?.stream;
    const unchanged = () => node !== undefined && carrierOf(this.connection, key) === node && node.stream === stream;
    await this.queue.addBulk(jobs);
    const acknowledged = node !== undefined && unchanged() && (await replicated(node, REPLICA_WAIT_MS));
    if (!acknowledged || !unchanged()) {
      const why = unchanged() ? `no Redis replica acknowledged them within ${REPLICA_WAIT_MS} ms` : 'the Redis connection that carried them is not known or changed before a replica could acknowledge them';
      throw new RekeyError('REKEY_ERR_UNAVAILABLE', `${jobs.length} notification jobs queued, but ${why}; their notices stay in the outbox`);
    }
  }

  /** One relay pass over the outbox (see {@link relayOutbox}); returns how many notices it queued. */
  relay(db: Db): Promise<number> {
    return relayOutbox(db, (notices) => this.enqueue(notices));
  }

  /** The destination `name` of the applied config, if it is still there. */
  async destination(name: string): Promise<NonNullable<NotificationsConfig['destinations'][string]> | undefined> {
    return own((await this.section())?.destinations ?? {}, name);
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.connection.disconnect();
  }
}
