/**
 * WorkQueue on BullMQ: four queues on one Redis, under one prefix (hash-tagged by
 * default, `{rekey}`, so each queue's keys stay in one Redis Cluster slot). Jobs carry
 * ids only. Finished jobs are removed: PostgreSQL keeps the history, and a removed id
 * can be queued again by reconcile() when the database says work remains.
 */
import { type JobsOptions, Queue } from 'bullmq';
import { forEachBounded } from '../core/bounded.js';
import type { RedisConnection } from './connection.js';
import type { RunRecord, WorkQueue } from '../core/model.js';
import { DOUBLING_BACKOFF, emergencyRetry, jobId, QUEUES, type QueueName, TAKEDOWN_RETRY } from './names.js';
import { rememberedRepeatStrategy } from './repeat.js';

export interface Schedule {
  secret: string;
  cron: string;
  timezone: string;
}

/** Job scheduler writes in flight at once (pipelined on one connection), and schedulers read per page. */
const SCHEDULER_WRITES = 64;
const SCHEDULER_PAGE = 1000;

/**
 * A fleet rotation's runs (`rekey rotate --all ...`) wait behind every other rotation: BullMQ
 * takes a queue's jobs without a priority before any with one, so scheduled and manual
 * rotations are never queued behind a fleet (leak takedowns have the revocations queue, emergency
 * rotations the emergencies queue).
 */
const FLEET_PRIORITY = 10;

/**
 * A drift repair (a refused key found live, retired again) waits behind the leak takedowns of the
 * revocations queue, whose retries it shares: a check at a restored gateway can queue hundreds of
 * them at once, and a leak reported meanwhile is the next job taken.
 */
const DRIFT_PRIORITY = 10;

const PENDING_STATES = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);

/**
 * When job `id` of `queue` (on `connection`) is due (ms since the epoch), from the queue's delayed set, whose score is
 * the due time times 4096 plus a tie-breaker (BullMQ's getDelayedScore.lua). Not from the job
 * itself: its `timestamp` and `opts.delay` keep what it was added with, and a changeDelay() moves
 * only the score (and the job's `delay`, counted from that change). Undefined when it is not delayed.
 */
async function delayedDue(connection: RedisConnection, queue: Queue, id: string): Promise<number | undefined> {
  const score = await connection.zscore(queue.toKey('delayed'), id);
  return score === null ? undefined : Math.floor(Number(score) / 0x1000);
}

export class BullQueues implements WorkQueue {
  readonly queues: Record<QueueName, Queue>;

  constructor(
    private readonly connection: RedisConnection,
    prefix: string,
  ) {
    this.queues = Object.fromEntries(QUEUES.map((name) => [name, new Queue(name, { connection, prefix, settings: { repeatStrategy: rememberedRepeatStrategy } })])) as Record<QueueName, Queue>;
  }

  async enqueueRun(run: RunRecord, options: { urgent: boolean; attempts: number; backoffMs: number; fresh?: boolean }): Promise<void> {
    const id = jobId.run(run.id);
    // Round trips a leak's replacement would wait for, when the run is new (WorkQueue.enqueueRun). The
    // revocations queue held urgent runs before the emergencies queue did (a release's jobs still queued).
    if (!options.fresh && ((await this.queues.rotations.getJob(id)) || (await this.queues.emergencies.getJob(id)) || (await this.queues.revocations.getJob(id)))) return;
    // Urgent = a leak's replacement: retried until a version is current (names.ts emergencyRetry).
    const retry = options.urgent ? { ...emergencyRetry(options.backoffMs), ...DONE } : retrying(options);
    const fleet = !options.urgent && run.trigger === 'fleet' ? { priority: FLEET_PRIORITY } : {};
    await this.queues[options.urgent ? 'emergencies' : 'rotations'].add('run', { runId: run.id }, { jobId: id, ...retry, ...fleet });
  }

  async expediteRun(run: RunRecord, options: { attempts: number; backoffMs: number }): Promise<void> {
    const job = await this.queues.rotations.getJob(jobId.run(run.id));
    if (job) {
      if (!PENDING_STATES.has(await job.getState())) return; // already running: it reads the new grace at promote
      try {
        await job.remove();
      } catch {
        return; // picked up meanwhile
      }
    }
    await this.enqueueRun(run, { urgent: true, ...options });
  }

  async scheduleRetirement(versionId: string, at: Date, options: { attempts: number; backoffMs: number; fresh?: boolean }): Promise<void> {
    const id = jobId.retire(versionId);
    const delay = Math.max(0, at.getTime() - Date.now());
    // One round trip a promotion's retirement need not wait for (WorkQueue.scheduleRetirement).
    if (!options.fresh) {
      const due = await delayedDue(this.connection, this.queues.retirements, id);
      if (due !== undefined) {
        if (due > at.getTime() + 1000) await (await this.queues.retirements.getJob(id))?.changeDelay(delay).catch(() => undefined);
        return;
      }
    }
    // A job of that id in another state (waiting, running) keeps it: the add collapses into it.
    await this.queues.retirements.add('retire', { versionId }, { jobId: id, delay, ...retrying(options) });
  }

  async enqueueRevocation(versionId: string): Promise<void> {
    await this.queues.revocations.add('revoke', { versionId }, { jobId: jobId.revoke(versionId), ...TAKEDOWN_RETRY, ...DONE });
  }

  async scheduleBlock(versionId: string, at: Date): Promise<void> {
    const delay = Math.max(0, at.getTime() - Date.now());
    await this.queues.revocations.add('block', { versionId }, { jobId: jobId.block(versionId), delay, ...TAKEDOWN_RETRY, ...DONE });
  }

  async enqueueTargetRetire(versionId: string, target: string): Promise<void> {
    await this.queues.revocations.add('target-retire', { versionId, target }, { jobId: jobId.targetRetire(versionId, target), priority: DRIFT_PRIORITY, ...TAKEDOWN_RETRY, ...DONE });
  }

  /**
   * Makes Redis's job schedulers match the database's schedules, and keeps the audit anchor
   * scheduler firing every `anchorEveryMs` (when given); changes only what differs.
   */
  async syncSchedules(schedules: readonly Schedule[], anchorEveryMs?: number): Promise<{ upserted: string[]; removed: string[] }> {
    const queue = this.queues.rotations;
    const existing = await this.schedulerSettings();
    const upserted: string[] = [];
    if (anchorEveryMs !== undefined && existing.get(jobId.anchorScheduler) !== `every ${anchorEveryMs}`) {
      await queue.upsertJobScheduler(jobId.anchorScheduler, { every: anchorEveryMs }, { name: 'anchor', data: {}, opts: retrying({ attempts: 5, backoffMs: 5000 }) });
      upserted.push(jobId.anchorScheduler);
    }
    const changed = schedules.filter((schedule) => {
      const id = jobId.scheduler(schedule.secret);
      const current = existing.get(id);
      existing.delete(id);
      return current !== `${schedule.cron} ${schedule.timezone}`;
    });
    await forEachBounded(changed, SCHEDULER_WRITES, (schedule) =>
      queue.upsertJobScheduler(
        jobId.scheduler(schedule.secret),
        { pattern: schedule.cron, tz: schedule.timezone },
        { name: 'scheduled', data: { secret: schedule.secret }, opts: retrying({ attempts: 5, backoffMs: 1000 }) },
      ),
    );
    upserted.push(...changed.map((s) => s.secret));
    const removed = [...existing.keys()].filter((id) => id.startsWith('rotate.'));
    await forEachBounded(removed, SCHEDULER_WRITES, (id) => queue.removeJobScheduler(id));
    return { upserted, removed: removed.map((id) => id.slice('rotate.'.length)) };
  }

  /** Every job scheduler's key and its setting (`<pattern> <tz>`, `every <ms>`), read a page at a time. */
  private async schedulerSettings(): Promise<Map<string, string>> {
    const settings = new Map<string, string>();
    for (let start = 0; ; start += SCHEDULER_PAGE) {
      const page = await this.queues.rotations.getJobSchedulers(start, start + SCHEDULER_PAGE - 1);
      for (const s of page) settings.set(s.key, s.pattern ? `${s.pattern} ${s.tz ?? 'UTC'}` : `every ${Number(s.every)}`);
      if (page.length < SCHEDULER_PAGE) return settings;
    }
  }

  /** The next due time of a secret's schedule, for `rekey status`. */
  /**
   * When each secret's schedule next fires (absent from the map: no schedule), in one Redis
   * command for any number of secrets: the scores of the rotations queue's job schedulers, which
   * are their next times (what {@link nextRotation} reads one secret at a time).
   */
  async nextRotations(secrets: readonly string[]): Promise<Map<string, Date>> {
    const next = new Map<string, Date>();
    if (!secrets.length) return next;
    const scores = await this.connection.zmscore(this.queues.rotations.toKey('repeat'), ...secrets.map((s) => jobId.scheduler(s)));
    scores.forEach((score, i) => {
      if (score !== null) next.set(secrets[i]!, new Date(Number(score)));
    });
    return next;
  }

  async nextRotation(secret: string): Promise<Date | undefined> {
    const scheduler = await this.queues.rotations.getJobScheduler(jobId.scheduler(secret));
    return scheduler?.next ? new Date(scheduler.next) : undefined;
  }

  async depth(): Promise<Record<string, Record<string, number>>> {
    const entries = await Promise.all(
      QUEUES.map(async (name) => [name, await this.queues[name].getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')] as const),
    );
    return Object.fromEntries(entries);
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
  }
}

/** Finished jobs leave Redis: the database keeps the outcome. */
const DONE = { removeOnComplete: true, removeOnFail: true } satisfies JobsOptions;

function retrying(options: { attempts: number; backoffMs: number }): JobsOptions {
  return { attempts: options.attempts, backoff: { type: DOUBLING_BACKOFF, delay: options.backoffMs }, ...DONE };
}
