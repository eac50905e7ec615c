/**
 * The notifications worker: delivers each queued notice to its destination, one attempt per
 * job try; BullMQ retries with the destination's backoff (`notify`: doubling, at most 5 min)
 * up to its `retry.attempts`, every try with the same `webhook-id` (at least once). A notice
 * whose destination left the config, or stopped subscribing to it, is dropped. One destination
 * holds at most half the delivery slots of a worker, so a receiver that times out delays only its own.
 */
import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import { describeError, isRetryable } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { FAILOVER_RETRY_MS, type RedisConnection } from '../queue/connection.js';
import { NOTIFICATIONS_QUEUE, retryDelay } from '../queue/names.js';
import { backoffDelay, retryLater } from '../queue/workers.js';
import type { Metrics } from '../metrics.js';
import { deliver } from './deliver.js';
import type { NoticeJob, NoticeQueue } from './queue.js';

export interface NotificationWorkerOptions {
  connection: RedisConnection;
  prefix: string;
  notices: NoticeQueue;
  log: Logger;
  metrics: Pick<Metrics, 'notificationTried'>;
  /** Deliveries in flight at once. @defaultValue 5 */
  concurrency?: number;
  env?: NodeJS.ProcessEnv;
}

/** How long a notice waits when its destination already has its share of the delivery slots. */
const DEFER_MS = 1000;

export function startNotificationWorker(options: NotificationWorkerOptions): Worker {
  const log = options.log.child({ component: 'notifications' });
  const concurrency = options.concurrency ?? 5;
  // One destination (a receiver that times out, a burst of alerts for it) may take at most this many of
  // the slots at once: the other destinations' notices, on-call's leak alerts among them, keep the rest.
  const share = Math.max(1, Math.floor(concurrency / 2));
  const inFlight = new Map<string, number>();
  const handle = async (job: Job<NoticeJob>, token?: string): Promise<string> => {
    const { notice, destination: name } = job.data;
    const busy = inFlight.get(name) ?? 0;
    if (busy >= share && token) {
      // Put back without using up a try: it comes round again once the destination's deliveries are done.
      await job.moveToDelayed(Date.now() + DEFER_MS, token);
      throw new DelayedError();
    }
    inFlight.set(name, busy + 1);
    try {
      return await deliverOne(job, notice, name);
    } finally {
      const left = (inFlight.get(name) ?? 1) - 1;
      if (left > 0) inFlight.set(name, left);
      else inFlight.delete(name);
    }
  };
  const deliverOne = async (job: Job<NoticeJob>, notice: NoticeJob['notice'], name: string): Promise<string> => {
    const fields = { destination: name, notice: notice.id, type: notice.type, attempt: job.attemptsMade + 1 };
    const destination = await options.notices.destination(name);
    if (!destination?.events.includes(notice.type)) {
      log.info(fields, 'notification dropped: the destination no longer receives it');
      options.metrics.notificationTried(name, notice.type, 'dropped');
      return 'dropped';
    }
    try {
      const status = await deliver(notice, name, destination, options.env);
      log.info({ ...fields, status }, 'notification delivered');
      options.metrics.notificationTried(name, notice.type, 'delivered');
      return 'delivered';
    } catch (error) {
      const final = !isRetryable(error) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log[final ? 'error' : 'warn']({ ...fields, error: describeError(error), final }, final ? 'notification given up' : 'notification failed; retrying');
      options.metrics.notificationTried(name, notice.type, final ? 'given_up' : 'retrying');
      if (!isRetryable(error)) throw new UnrecoverableError(describeError(error));
      // The receiver's Retry-After travels to the backoff strategy with the error BullMQ hands it.
      throw retryLater(error);
    }
  };
  const worker = new Worker<NoticeJob>(NOTIFICATIONS_QUEUE, handle, {
    connection: options.connection,
    prefix: options.prefix,
    concurrency,
    drainDelay: 1,
    runRetryDelay: FAILOVER_RETRY_MS,
    settings: {
      // The destination's backoff, or longer when the receiver's Retry-After asked for longer.
      backoffStrategy: (attemptsMade, type, error, job) => retryDelay(attemptsMade, backoffDelay(job), type, error),
    },
  });
  worker.on('error', (error) => log.error({ error: describeError(error) }, 'worker error'));
  return worker;
}
