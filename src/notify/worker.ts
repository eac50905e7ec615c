/**
 * The notifications worker: delivers each queued notice to its destination, one attempt per
 * job try; BullMQ retries with the destination's backoff (`notify`: doubling, at most 5 min)
 * up to its `retry.attempts`, every try with the same `webhook-id` (at least once). A notice
 * whose destination left the config, or stopped subscribing to it, is dropped.
 */
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { describeError, isRetryable } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { FAILOVER_RETRY_MS, type RedisConnection } from '../queue/connection.js';
import { cappedDelay, isCappedBackoff, NOTIFICATIONS_QUEUE } from '../queue/names.js';
import { backoffDelay } from '../queue/workers.js';
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

export function startNotificationWorker(options: NotificationWorkerOptions): Worker {
  const log = options.log.child({ component: 'notifications' });
  const handle = async (job: Job<NoticeJob>): Promise<string> => {
    const { notice, destination: name } = job.data;
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
      throw isRetryable(error) ? new Error(describeError(error)) : new UnrecoverableError(describeError(error));
    }
  };
  const worker = new Worker<NoticeJob>(NOTIFICATIONS_QUEUE, handle, {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: options.concurrency ?? 5,
    drainDelay: 1,
    runRetryDelay: FAILOVER_RETRY_MS,
    settings: { backoffStrategy: (attemptsMade, type, _error, job) => (isCappedBackoff(type) ? cappedDelay(attemptsMade, backoffDelay(job), type) : 0) },
  });
  worker.on('error', (error) => log.error({ error: describeError(error) }, 'worker error'));
  return worker;
}
