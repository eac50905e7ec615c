/**
 * The Notifier port on BullMQ: a notice becomes one job per subscribed destination on the
 * `notifications` queue, with a deterministic id (`<notice id>@<destination>`), so raising it
 * again (a retried job, every reconcile pass of a stuck run, a redelivered leak report) adds
 * nothing while the first is queued or kept. Jobs carry the notice (names, numbers, codes:
 * never a value) and the destination's name; the worker reads the destination when it delivers.
 */
import { type JobsOptions, Queue } from 'bullmq';
import { own } from '../config/schema.js';
import type { NotificationsConfig } from '../config/notifications.js';
import type { Notice, Notifier } from '../core/notify.js';
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

export class QueueNotifier implements Notifier {
  readonly queue: Queue;

  /** @param section the applied config's `notifications:` (undefined: none, or no config applied yet) */
  constructor(
    connection: RedisConnection,
    prefix: string,
    private readonly section: () => Promise<NotificationsConfig | undefined>,
  ) {
    this.queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix });
  }

  async notify(notice: Notice): Promise<void> {
    const destinations = (await this.section())?.destinations ?? {};
    for (const [name, destination] of Object.entries(destinations)) {
      if (!destination.events.includes(notice.type)) continue;
      const options: JobsOptions = {
        jobId: jobId.notice(notice.id, name),
        attempts: destination.retry.attempts,
        backoff: { type: NOTIFY_BACKOFF, delay: destination.retry.backoff },
        removeOnComplete: KEEP,
        removeOnFail: KEEP,
      };
      await this.queue.add(notice.type, { notice, destination: name } satisfies NoticeJob, options);
    }
  }

  /** The destination `name` of the applied config, if it is still there. */
  async destination(name: string): Promise<NonNullable<NotificationsConfig['destinations'][string]> | undefined> {
    return own((await this.section())?.destinations ?? {}, name);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
