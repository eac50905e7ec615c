/**
 * Secret Manager's rotation metadata from rekey's cron schedule. Google's model is a start time
 * plus a fixed period ("next_rotation_time will be advanced by this period when the service
 * automatically sends rotation notifications"), where a cron pattern can be irregular. The
 * derivation is therefore an approximation, and says so:
 *
 * - `next` = the first cron occurrence at least 6 minutes away (Google refuses a next_rotation_time
 *   less than 300 s in the future; the extra minute covers the request in flight).
 * - `period` = the most frequent interval between the next 64 occurrences (ties: the shorter).
 *   For a regular pattern (`0 3 * * 1`, `0 *\/6 * * *`) every interval is equal and the period is
 *   exact. For `0 3 * * 1-5` it is 24h (Google would also notify on weekends); across a DST change
 *   in the schedule's time zone it is the usual 24h, not the 23h or 25h of that one day.
 * - Google's bounds: at least 1 hour (a `*\/15 * * * *` schedule shows as hourly), at most 100 years.
 *
 * Rotation metadata is for display and for other subscribers: for a secret with a rekey schedule,
 * rekey's cron does the rotating and its own Pub/Sub endpoint acknowledges the SECRET_ROTATE
 * messages without starting a second run (see docs/cloud-stores.md).
 */
import { CronExpressionParser } from 'cron-parser';

/** Google's bounds on rotation_period, in seconds. */
export const MIN_PERIOD_S = 3600;
export const MAX_PERIOD_S = 3_153_600_000;
/** next_rotation_time must be at least 300 s ahead; one more minute for the request in flight. */
const LEAD_MS = 360_000;
const SAMPLES = 64;

export interface DerivedRotation {
  /** The first occurrence Google can accept as next_rotation_time. */
  next: Date;
  /** Whole seconds, within Google's bounds. */
  periodSeconds: number;
  /** Every sampled interval equals the period, and it needed no clamping. */
  exact: boolean;
  /** Shortest and longest sampled intervals, in seconds (equal when exact). */
  range: [number, number];
}

/** Derives Secret Manager's next_rotation_time and rotation_period from a cron schedule. */
export function deriveRotation(cron: string, timezone: string, now: Date = new Date()): DerivedRotation {
  const occurrences = CronExpressionParser.parse(cron, { tz: timezone, currentDate: new Date(now.getTime() + LEAD_MS) });
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) times.push(occurrences.next().getTime());
  const intervals = times.slice(1).map((t, i) => Math.round((t - times[i]!) / 1000));
  const counts = new Map<number, number>();
  for (const s of intervals) counts.set(s, (counts.get(s) ?? 0) + 1);
  const [mode] = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]!;
  const periodSeconds = Math.min(MAX_PERIOD_S, Math.max(MIN_PERIOD_S, mode));
  const range: [number, number] = [Math.min(...intervals), Math.max(...intervals)];
  return { next: new Date(times[0]!), periodSeconds, exact: counts.size === 1 && periodSeconds === mode, range };
}

