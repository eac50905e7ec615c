/**
 * BullMQ's cron strategy, remembered per pattern and zone. BullMQ computes a job scheduler's next
 * time with cron-parser on every upsert and every fired job; that costs about 0.2 ms each (its
 * dates go through luxon), so an apply that upserts 100,000 schedulers spent most of its CPU
 * there while a fleet shares a few thousand distinct patterns at most.
 *
 * The answer for a pattern and zone is kept with the instant it was computed from: the next
 * time after any instant between that one and the answer is the same answer (no occurrence
 * lies between them), so it is reused until the clock reaches it.
 */
import { defaultRepeatStrategy, type RepeatOptions, type RepeatStrategy } from 'bullmq';

/** Distinct patterns and zones remembered; past it the memory starts over (a fleet shares a few thousand). */
const REMEMBERED = 10_000;

const nextTimes = new Map<string, { from: number; next: number }>();

export const rememberedRepeatStrategy: RepeatStrategy = (millis: number, opts: RepeatOptions): number | undefined => {
  // Options that change the answer beyond pattern and zone (rekey sets none of them) are not remembered.
  if (!opts.pattern || opts.startDate || opts.endDate || opts.immediately) return defaultRepeatStrategy(millis, opts);
  const key = `${opts.pattern}\u0000${opts.tz ?? ''}`;
  const known = nextTimes.get(key);
  if (known && known.from <= millis && millis < known.next) return known.next;
  const next = defaultRepeatStrategy(millis, opts);
  if (next === undefined) return next;
  if (nextTimes.size >= REMEMBERED) nextTimes.clear();
  nextTimes.set(key, { from: millis, next });
  return next;
};
