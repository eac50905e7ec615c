/**
 * Schedules for tests that need a secret to have one (its next due time shown, a scheduler in
 * Redis, rotation metadata in a store) but must never see it fire. A fixed daily pattern comes
 * due whenever a run crosses its time of day, and its rotation then joins whatever
 * the test is counting; cron-parser refuses a pattern that never matches (`0 0 31 2 *`), so the
 * pattern is chosen from the clock instead: its first due time lies `hours` ahead, longer than
 * any test file runs. test/unit/test-schedules.test.ts refuses a fixed daily pattern in a test.
 */

/** A schedule's pattern (UTC, minute precision) and the due time it fires at first. */
export interface LaterSchedule {
  cron: string;
  next: Date;
}

/**
 * The pattern that fires first at `hours` ahead of `now` (rounded up to a whole minute), then
 * every day or every week at that time.
 * @defaultValue hours 12, every 'week', now the current time
 */
export function laterSchedule(options: { hours?: number; every?: 'day' | 'week'; now?: Date } = {}): LaterSchedule {
  const { hours = 12, every = 'week', now = new Date() } = options;
  const minute = 60_000;
  const next = new Date(Math.ceil((now.getTime() + hours * 3_600_000) / minute) * minute);
  const time = `${next.getUTCMinutes()} ${next.getUTCHours()}`;
  return { cron: every === 'day' ? `${time} * * *` : `${time} * * ${next.getUTCDay()}`, next };
}
