/**
 * Schedules for tests that need a secret to have one (its next due time shown, a scheduler in
 * Redis, rotation metadata in a store) but must never see it fire. A fixed daily pattern comes
 * due whenever a run crosses its time of day, and its rotation then joins whatever
 * the test is counting; cron-parser refuses a pattern that never matches (`0 0 31 2 *`), so the
 * pattern is chosen from the clock instead: its first due time lies `hours` ahead, longer than
 * any test file runs. test/unit/test-schedules.test.ts refuses a fixed daily pattern in a test.
 */

// wall-clock schedules: the patterns below are made from the clock, first due hours after they are made (test/unit/test-schedules.test.ts checks it).

/** A schedule's pattern (UTC, minute precision) and the due time it fires at first. */
export interface LaterSchedule {
  cron: string;
  next: Date;
}

/**
 * The pattern that fires first at `hours` ahead of `now` (rounded up to a whole minute), then
 * every day or every week at that time. `clock: 'local'` reads it in this machine's time zone,
 * as node-cron does for housekeeping jobs (`--outbox-interval`); rekey.yaml schedules are UTC
 * unless they name a zone.
 * @defaultValue hours 12, every 'week', clock 'utc', now the current time
 */
export function laterSchedule(options: { hours?: number; every?: 'day' | 'week'; clock?: 'utc' | 'local'; now?: Date } = {}): LaterSchedule {
  const { hours = 12, every = 'week', clock = 'utc', now = new Date() } = options;
  const minute = 60_000;
  const next = new Date(Math.ceil((now.getTime() + hours * 3_600_000) / minute) * minute);
  const [m, h, day] = clock === 'utc' ? [next.getUTCMinutes(), next.getUTCHours(), next.getUTCDay()] : [next.getMinutes(), next.getHours(), next.getDay()];
  return { cron: every === 'day' ? `${m} ${h} * * *` : `${m} ${h} * * ${day}`, next };
}
