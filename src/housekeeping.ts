/**
 * Per-process housekeeping on node-cron: the work every replica does on its own clock,
 * such as re-deriving queued work from PostgreSQL (reconcile), refreshing GitHub's public
 * keys, sampling gauges, or a per-process drift timer. Each process runs its own copy; a
 * run that also happens in another replica must be harmless (idempotent).
 *
 * Not for schedules that must fire once across the cluster (secret rotations, audit
 * anchors): those are BullMQ job schedulers (src/queue/queues.ts), which survive restarts
 * and fire once per due time however many replicas run.
 *
 * Usage: `runtime.housekeeping.schedule({ name: 'reconcile', schedule: '15s', run })`.
 */
import cron, { type ScheduledTask } from 'node-cron';
import { parseDuration } from './core/duration.js';
import { describeError, RekeyError } from './core/errors.js';
import type { Logger } from './core/logger.js';

/** One piece of housekeeping. */
export interface HousekeepingJob {
  /** Names the job in logs and in {@link Housekeeping.runNow}; scheduling a name again replaces the earlier job. */
  name: string;
  /** When it runs: a cron expression or an even duration; see {@link housekeepingCron}. */
  schedule: string;
  /**
   * The work. A rejection is logged as a warning (with the error's code, never a value)
   * and the job runs again at its next time. A tick that comes while the previous run is
   * still going is skipped: runs of one job never overlap.
   */
  run(): Promise<void>;
  /** Also run once right away, without waiting for the first tick. @defaultValue false */
  immediately?: boolean;
}

interface Entry {
  job: HousekeepingJob;
  task: ScheduledTask;
  /** The run in flight. */
  running?: Promise<void>;
  /** A run asked for by runNow() while another was in flight: it starts when that one ends. */
  queued?: Promise<void>;
}

/** The per-process housekeeping scheduler. Jobs start when scheduled; {@link stop} ends them all. */
export class Housekeeping {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly log: Logger) {}

  /**
   * Starts `job` on its schedule (replacing a job of the same name, whose run in flight
   * finishes on its own).
   * @throws RekeyError REKEY_ERR_CONFIG when the schedule is neither a cron expression nor an even duration.
   */
  schedule(job: HousekeepingJob): void {
    const expression = housekeepingCron(job.schedule, `housekeeping job ${job.name}`);
    void this.cancel(job.name);
    const log = this.log.child({ component: 'housekeeping', job: job.name });
    const task = cron.createTask(expression, () => this.tick(entry), {
      name: `rekey:${job.name}`,
      // node-cron's own notices (e.g. a tick missed while the event loop was busy) go to our log.
      logger: {
        info: (message) => log.debug({ message }),
        warn: (message) => log.debug({ message }),
        error: (message) => log.debug({ message: String(message) }),
        debug: (message) => log.debug({ message: String(message) }),
      },
    });
    const entry: Entry = { job, task };
    this.entries.set(job.name, entry);
    void task.start();
    if (job.immediately) void this.tick(entry);
  }

  /**
   * Runs job `name` now, or right after its run in flight (callers that arrive meanwhile
   * share that one extra run). Resolves when a run that started after this call has
   * finished; never rejects (failures are logged). Does nothing for an unknown name.
   */
  runNow(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return Promise.resolve();
    if (!entry.running) return this.tick(entry);
    return (entry.queued ??= entry.running.then(() => {
      entry.queued = undefined;
      return this.tick(entry);
    }));
  }

  /** The scheduled jobs with the next time each will run (for status output and tests). */
  jobs(): Array<{ name: string; cron: string; next: Date | null }> {
    return [...this.entries.values()].map(({ job, task }) => ({ name: job.name, cron: task.getPattern(), next: task.getNextRun() }));
  }

  /** Stops job `name` and waits for its run in flight. Idempotent. */
  async cancel(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return;
    this.entries.delete(name);
    await entry.task.destroy();
    await entry.queued;
    await entry.running;
  }

  /** Stops every job and waits for the runs in flight. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((name) => this.cancel(name)));
  }

  private tick(entry: Entry): Promise<void> {
    if (entry.running) return entry.running; // never two runs of one job at once
    const started = Date.now();
    entry.running = entry.job
      .run()
      .then(
        () => this.log.debug({ component: 'housekeeping', job: entry.job.name, ms: Date.now() - started }, 'housekeeping ran'),
        (error: unknown) =>
          this.log.warn({ component: 'housekeeping', job: entry.job.name, error: describeError(error) }, 'housekeeping failed; will run again at its next time'),
      )
      .finally(() => (entry.running = undefined));
    return entry.running;
  }
}

/**
 * The node-cron expression for a housekeeping schedule, which is either
 * - a cron expression: five fields (minute first) or six (second first), e.g.
 *   `*\/15 * * * * *` for every 15 seconds, `0 *\/5 * * * *` for every five minutes; or
 * - a duration that divides a minute, an hour or a day evenly (`1s`, `15s`, `5m`, `1h`,
 *   `1d`), turned into the cron expression that fires at those wall-clock marks.
 *
 * Durations that do not divide evenly (`7s`, `90m`) are refused: cron fires at clock
 * marks, so they would not run at even intervals.
 * @throws RekeyError REKEY_ERR_CONFIG naming `what` when the text is neither.
 */
export function housekeepingCron(text: string, what: string): string {
  const ms = parseDuration(text);
  if (ms === undefined) {
    const fields = text.trim().split(/\s+/).length;
    if ((fields === 5 || fields === 6) && cron.validate(text.trim())) return text.trim();
    throw new RekeyError('REKEY_ERR_CONFIG', `${what}: "${text}" is neither a cron expression nor a duration (e.g. 15s, 5m, or "*/15 * * * * *")`);
  }
  const even = EVEN.find(([period]) => period === ms);
  if (!even) throw new RekeyError('REKEY_ERR_CONFIG', `${what}: ${text} does not divide a minute, an hour or a day evenly; give a cron expression instead`);
  return even[1];
}

/**
 * The cron expression for the longest even period (as in {@link housekeepingCron}) no
 * longer than `ms`, at least every second: for a period read from rekey.yaml as a plain
 * duration, which must run at least that often (`90m` runs hourly, `7s` every 6 seconds).
 */
export function cronEveryAtMost(ms: number): string {
  return EVEN.findLast(([period]) => period <= ms)?.[1] ?? EVEN[0]![1];
}

const divisors = (whole: number) => Array.from({ length: whole }, (_, i) => i + 1).filter((n) => n < whole && whole % n === 0);
/** The periods cron can keep evenly, shortest first, with their expressions. */
const EVEN: ReadonlyArray<readonly [number, string]> = [
  ...divisors(60).map((s) => [s * 1000, s === 1 ? '* * * * * *' : `*/${s} * * * * *`] as const),
  ...divisors(60).map((m) => [m * 60_000, `0 */${m} * * * *`] as const),
  ...divisors(24).map((h) => [h * 3_600_000, `0 0 */${h} * * *`] as const),
  [86_400_000, '0 0 0 * * *'] as const,
];
