/**
 * The `notifications` queue: the relay moves each notice from the outbox (src/db/outbox.ts) to
 * one job per subscribed destination, with a deterministic id (`<notice id>@<destination>`), so a
 * notice relayed again (a relay that died after queuing it, before deleting its row; one raised
 * again at every reconcile pass) adds nothing while the first is queued or kept. Jobs carry the
 * notice (names, numbers, codes: never a value) and the destination's name; the worker reads the
 * destination when it delivers.
 */
import { type JobsOptions, Queue } from 'bullmq';
import { own } from '../config/schema.js';
import type { NotificationsConfig } from '../config/notifications.js';
import type { Notice } from '../core/notify.js';
import type { Db } from '../db/client.js';
import { relayOutbox } from '../db/outbox.js';
import type { RedisConnection } from '../queue/connection.js';
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

export class NoticeQueue {
  readonly queue: Queue;

  /** @param section the applied config's `notifications:` (undefined: none, or no config applied yet) */
  constructor(
    connection: RedisConnection,
    prefix: string,
    private readonly section: () => Promise<NotificationsConfig | undefined>,
  ) {
    this.queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix });
  }

  /** Queues each notice for every destination of the applied config subscribed to its type, in one round trip. */
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
    if (jobs.length) await this.queue.addBulk(jobs);
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
  }
}
