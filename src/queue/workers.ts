/**
 * The BullMQ workers: each job names a run or a version, and core does the rest.
 * Errors leave here sanitized (describeError): BullMQ stores failure reasons in Redis.
 * Non-retryable ones become UnrecoverableError so BullMQ stops retrying them.
 */
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { FAILOVER_RETRY_MS, type RedisConnection } from './connection.js';
import type { Engine } from '../core/engine.js';
import { describeError, isRetryable, RekeyError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { type QueueName, retryDelay, type RunJob, type ScheduledJob, type TargetJob, type VersionJob } from './names.js';
import { rememberedRepeatStrategy } from './repeat.js';

export interface WorkerOptions {
  concurrency: Record<QueueName, number>;
  /** How long a job's lock lasts without renewal; a killed worker's jobs restart after it. @defaultValue 30000 */
  lockDurationMs: number;
  /** Times a job may stall (its worker died) before it fails; reconcile() requeues after that. @defaultValue 5 */
  maxStalledCount: number;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = {
  concurrency: { rotations: 10, emergencies: 5, revocations: 10, retirements: 5 },
  lockDurationMs: 30_000,
  maxStalledCount: 5,
};

export interface Workers {
  /**
   * Stops taking jobs and waits up to `timeoutMs` for running ones. Jobs still running
   * then are abandoned: the process should exit, their locks expire, and another worker
   * takes them from where their run row says they were.
   */
  close(timeoutMs: number): Promise<void>;
}

/** The `delay` a job's backoff option names (BullMQ hands the strategy the job, not its option). */
export function backoffDelay(job: { opts: { backoff?: number | { delay?: number } } } | undefined): number {
  const backoff = job?.opts.backoff;
  return typeof backoff === 'object' ? (backoff.delay ?? 0) : (backoff ?? 0);
}

/**
 * The retryable failure a job throws (sanitized), carrying the server's Retry-After when the
 * error had one: BullMQ hands this error to the backoffStrategy (retryDelay).
 */
export function retryLater(error: unknown): Error & { retryAfterMs?: number } {
  const failure: Error & { retryAfterMs?: number } = new Error(describeError(error));
  if (error instanceof RekeyError && error.retryAfterMs !== undefined) failure.retryAfterMs = error.retryAfterMs;
  return failure;
}

/** Cluster-wide jobs that are not core's: the audit anchor (src/audit-anchor.ts). */
export interface ClusterJobs {
  anchor(): Promise<unknown>;
}

export function startWorkers(engine: Engine, connection: RedisConnection, prefix: string, log: Logger, options: WorkerOptions, cluster?: ClusterJobs): Workers {
  const attempt = (job: Job) => ({ final: job.attemptsMade + 1 >= (job.opts.attempts ?? 1), number: job.attemptsMade + 1 });
  const handlers: Record<QueueName, (job: Job) => Promise<unknown>> = {
    rotations: async (job) => {
      if (job.name === 'anchor') return cluster?.anchor();
      if (job.name === 'scheduled') {
        const { secret } = job.data as ScheduledJob;
        const due = job.opts.prevMillis ?? job.timestamp;
        return engine.requestRotation({ secret, trigger: 'cron', idempotencyKey: `cron:${secret}:${due}`, requestedAt: new Date(due) });
      }
      return engine.driveRotation((job.data as RunJob).runId, attempt(job));
    },
    emergencies: async (job) => engine.driveRotation((job.data as RunJob).runId, attempt(job)),
    revocations: async (job) => {
      // An urgent run queued here by a release before the emergencies queue.
      if (job.name === 'run') return engine.driveRotation((job.data as RunJob).runId, attempt(job));
      if (job.name === 'block') return engine.block((job.data as VersionJob).versionId);
      // The job's creation time: the same for its retries, new for the next drift check's job (Call.generation).
      if (job.name === 'target-retire') return engine.retireDrifted((job.data as TargetJob).versionId, (job.data as TargetJob).target, `r${job.timestamp}`);
      return engine.revokeNow((job.data as VersionJob).versionId);
    },
    retirements: async (job) => engine.retire((job.data as VersionJob).versionId),
  };

  const workers = (Object.keys(handlers) as QueueName[]).map((name) => {
    const worker = new Worker(
      name,
      async (job: Job) => {
        try {
          const result = await handlers[name](job);
          return typeof result === 'string' ? result : undefined;
        } catch (error) {
          const reason = describeError(error);
          throw isRetryable(error) ? retryLater(error) : new UnrecoverableError(reason);
        }
      },
      {
        connection,
        prefix,
        concurrency: options.concurrency[name],
        lockDuration: options.lockDurationMs,
        stalledInterval: Math.max(1000, Math.floor(options.lockDurationMs / 2)),
        maxStalledCount: options.maxStalledCount,
        // Seconds an idle worker blocks waiting for a job: also how long closing it can take.
        drainDelay: 1,
        // A fetch or finish that met a connection error (a failover) is retried this soon.
        runRetryDelay: FAILOVER_RETRY_MS,
        settings: {
          repeatStrategy: rememberedRepeatStrategy,
          backoffStrategy: (attemptsMade, type, error, job) => retryDelay(attemptsMade, backoffDelay(job), type, error),
        },
      },
    );
    worker.on('failed', (job, error) => log.warn({ queue: name, job: job?.name, jobId: job?.id, attempt: job?.attemptsMade, error: describeError(error) }, 'job failed'));
    worker.on('error', (error) => log.error({ queue: name, error: describeError(error) }, 'worker error'));
    return worker;
  });

  return {
    async close(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const graceful = Promise.all(workers.map((w) => w.close())).then(() => true);
      const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const drained = await Promise.race([graceful, expired]);
      clearTimeout(timer);
      if (!drained) {
        // BullMQ's close(true) would join the graceful close under way, not cut it short:
        // drop the connections instead, so nothing here touches the queues any more.
        log.warn({ timeoutMs }, 'drain timeout: leaving in-flight jobs to be picked up again');
        await Promise.all(workers.map((w) => w.disconnect().catch(() => undefined)));
      }
    },
  };
}
