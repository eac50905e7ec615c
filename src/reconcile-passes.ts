/**
 * Which reconcile pass a process runs (src/core/reconcile.ts). Each process keeps a watermark:
 * the database's clock when its last pass read its work. A periodic pass is incremental: the
 * rows written since the watermark, less an overlap for transactions that committed after a
 * later pass had read (so a crash between a commit and its enqueue is repaired by the next
 * pass), and the retirements that came due since it. A full pass reads everything:
 * - once per `fullEveryMs` in the whole cluster, run by whichever process first takes that
 *   period's Redis key (set if absent, expiring after the period);
 * - in a process with no watermark (just started), whose Redis connection came back (Redis may
 *   have lost its queues), or whose last pass failed (PostgreSQL or Redis was down: jobs that
 *   ran out of attempts meanwhile wrote no row an incremental pass would see).
 * Cron schedules follow the database on a full pass or when a newer config revision was
 * applied; not on every pass (they are one Redis read per secret).
 *
 * A full pass also runs the store check (src/core/store-drift.ts: is the store's current stage on
 * rekey's current version?), which costs one store API call (store.list) per secret, so it is
 * rationed: at most once per FULL_RECONCILE_EVERY_MS in the whole cluster (its own period key in
 * Redis, so processes starting or reconnecting, whose passes are full, do not repeat it), it checks
 * - the secrets whose rotation rolled back or failed within STORE_CHECK_RECENT_MS (the newest
 *   STORE_CHECK_SLICE of them): what a late
 *   promotion (a driver stalled past its lease, landing after its successor's rollback) leaves
 *   behind, found within one full-pass period; rollbacks are rare, so this costs little;
 * - and the next STORE_CHECK_SLICE secrets of the config by name (a cursor in Redis shared by every
 *   process), for changes made outside rekey: at 100,000 secrets a sweep takes 200 passes (about 33
 *   hours at the default period) and costs under one store call per second on average, four at a
 *   time at most: far below a cloud store's API rate limits, and nothing on the rotation path.
 */
import type { Engine } from './core/engine.js';
import type { Db } from './db/client.js';
import { activeSchedules, latestRevisionId } from './db/config-store.js';
import type { Metrics } from './metrics.js';
import type { RedisConnection } from './queue/connection.js';
import type { BullQueues } from './queue/queues.js';
import type { Logger } from './core/logger.js';
import { describeError } from './core/errors.js';

/** Longer than any write transaction lasts (Prisma's longest timeout is 30 s): a row it wrote is read by a later pass. */
export const RECONCILE_OVERLAP_MS = 60_000;
/** How often some process in the cluster runs a full pass. */
export const FULL_RECONCILE_EVERY_MS = 10 * 60_000;
/** A secret whose rotation rolled back or failed this recently has its store checked at every full pass. */
export const STORE_CHECK_RECENT_MS = 24 * 3_600_000;
/** Secrets of the config whose store each full pass checks besides those, the next ones by name each time. */
export const STORE_CHECK_SLICE = 500;

/** The Redis key that gives one full pass per period the store check (set if absent, expiring after the period). */
export function storeCheckKey(prefix: string): string {
  return `${prefix}:store-check`;
}

export interface ReconcileDeps {
  db: Db;
  redis: RedisConnection;
  queues: BullQueues;
  engine: Engine;
  metrics: Metrics;
  log: Logger;
  prefix: string;
  anchorEveryMs: number;
}

export class ReconcilePasses {
  private watermark: Date | undefined;
  /** Set by forgetWatermark(): the next pass to start is full, even if one in flight sets a watermark. */
  private fullNext = false;
  private syncedRevision: number | undefined;
  private readonly stuck = new Set<string>();

  constructor(
    private readonly deps: ReconcileDeps,
    private readonly fullEveryMs = FULL_RECONCILE_EVERY_MS,
  ) {}

  /** The next pass is full (Redis came back and may have lost its queues). */
  forgetWatermark(): void {
    this.fullNext = true;
  }

  /** Runs a pass: full, or with `incremental`, what changed since the last one unless a full pass is due. */
  async run(options: { incremental?: boolean } = {}): Promise<void> {
    const started = performance.now();
    const forced = !options.incremental || !this.watermark || this.fullNext;
    this.fullNext = false;
    let full = forced;
    try {
      full ||= await this.claimFullPass(false);
      // A full pass for any other reason also counts as this period's: the cluster's next is fullEveryMs away.
      if (forced) await this.claimFullPass(true);
      await this.pass(full, started);
    } catch (error) {
      // The next pass is full: whatever failed meanwhile (PostgreSQL or Redis down, jobs that ran out of attempts without a row to write) changed no row.
      this.fullNext = true;
      throw error;
    }
  }

  private async pass(full: boolean, started: number): Promise<void> {
    const { db, queues, engine, metrics, log } = this.deps;
    // A named statement, not Prisma: a pass runs every 15 s on every worker's event loop, beside the leak path.
    const revision = await latestRevisionId(db);
    const schedules = full || revision !== this.syncedRevision ? await queues.syncSchedules(await activeSchedules(db), this.deps.anchorEveryMs) : undefined;
    this.syncedRevision = revision;
    const since = full ? undefined : new Date(this.watermark!.getTime() - RECONCILE_OVERLAP_MS);
    const work = await engine.reconcile({ since });
    this.watermark = work.asOf;
    if (full) this.stuck.clear();
    for (const id of work.endedRuns) this.stuck.delete(id);
    for (const id of work.stuckRuns) this.stuck.add(id);
    metrics.runsStuck(this.stuck.size);
    const counts = { runs: work.runs, retirements: work.retirements, revocations: work.revocations, blocks: work.blocks, stuck: this.stuck.size };
    log.debug({ pass: full ? 'full' : 'incremental', ms: Math.round(performance.now() - started), work: counts }, 'reconcile pass');
    // Counts, and the first few names: an apply of 100,000 secrets upserts as many schedulers.
    const some = (names: string[]) => ({ count: names.length, names: names.slice(0, 10) });
    if (schedules && (schedules.upserted.length || schedules.removed.length)) log.info({ schedules: { upserted: some(schedules.upserted), removed: some(schedules.removed) }, work: counts }, 'reconciled');
    // After the pass's own work, which it must not delay; a failure here fails no pass (it is logged, and the next full pass checks again).
    if (full) await this.checkStores().catch((error: unknown) => log.warn({ error: describeError(error) }, 'store check failed; trying again at the next full pass'));
  }

  /** The store check of a full pass: secrets with a recent rollback, and the next slice of the config (see the file's comment). */
  private async checkStores(): Promise<void> {
    const { db, redis, engine, log, prefix } = this.deps;
    if ((await redis.set(storeCheckKey(prefix), String(process.pid), 'PX', this.fullEveryMs, 'NX')) !== 'OK') return;
    const cursorKey = `${prefix}:store-check-cursor`;
    const after = (await redis.get(cursorKey)) ?? '';
    const slice = await db.$queryRaw<Array<{ name: string }>>`
      SELECT name FROM secrets WHERE removed_at IS NULL AND name > ${after} ORDER BY name LIMIT ${STORE_CHECK_SLICE}`;
    // Back to the start once a slice comes up short: the sweep has reached the last name.
    await redis.set(cursorKey, slice.length < STORE_CHECK_SLICE ? '' : slice.at(-1)!.name);
    // Through the runs' updated_at index: the runs written in the window, not every rollback ever; the
    // newest STORE_CHECK_SLICE of them, so an outage that rolled back thousands does not stall the pass.
    const recent = await db.$queryRaw<Array<{ name: string }>>`
      SELECT s.name FROM runs r JOIN secrets s ON s.id = r.secret_id
      WHERE r.updated_at >= (now() AT TIME ZONE 'UTC') - make_interval(secs => ${STORE_CHECK_RECENT_MS / 1000})
        AND r.kind = 'rotation' AND r.status IN ('rolled_back', 'failed')
      GROUP BY s.name ORDER BY max(r.updated_at) DESC LIMIT ${STORE_CHECK_SLICE}`;
    const names = [...new Set([...recent.map((r) => r.name), ...slice.map((r) => r.name)])];
    const report = await engine.checkStores(names, { repair: true });
    const drifted = report.results.filter((r) => r.found && r.found !== 'in-sync').length;
    log.debug({ checked: report.results.length, skipped: report.skipped.length, recent: recent.length, drifted }, 'store check');
  }

  /** True for the one process that gets to run this period's full pass (`anyway`: takes the period even if another had it). */
  private async claimFullPass(anyway: boolean): Promise<boolean> {
    const key = `${this.deps.prefix}:reconcile-full`;
    const set = anyway ? this.deps.redis.set(key, String(process.pid), 'PX', this.fullEveryMs) : this.deps.redis.set(key, String(process.pid), 'PX', this.fullEveryMs, 'NX');
    return (await set) === 'OK';
  }
}
