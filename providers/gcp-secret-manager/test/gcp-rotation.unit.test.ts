// Secret Manager's fixed rotation period, derived from cron schedules: exact for regular patterns,
// an honest approximation (flagged) for irregular ones, within Google's bounds.
import { describe, expect, it } from 'vitest';
import { MIN_PERIOD_S, deriveRotation } from '../gcp-rotation.js';

const NOW = new Date('2026-03-20T12:00:00Z'); // a Friday, 9 days before Europe's DST change

describe('deriveRotation', () => {
  it('a weekly schedule is exact: next Monday 03:00, period 7 days', () => {
    const d = deriveRotation('0 3 * * 1', 'UTC', NOW);
    expect(d.next.toISOString()).toBe('2026-03-23T03:00:00.000Z');
    expect(d.periodSeconds).toBe(7 * 86_400);
    expect(d.exact).toBe(true);
  });

  it('every 6 hours is exact', () => {
    const d = deriveRotation('0 */6 * * *', 'UTC', NOW);
    expect(d.next.toISOString()).toBe('2026-03-20T18:00:00.000Z');
    expect(d.periodSeconds).toBe(6 * 3600);
    expect(d.exact).toBe(true);
  });

  it('next is at least 5 minutes away (Google refuses less)', () => {
    const d = deriveRotation('2 12 * * *', 'UTC', NOW); // 12:02 today is too close
    expect(d.next.toISOString()).toBe('2026-03-21T12:02:00.000Z');
  });

  it('weekdays only: the usual day, flagged approximate with the real range', () => {
    const d = deriveRotation('0 3 * * 1-5', 'UTC', NOW);
    expect(d.periodSeconds).toBe(86_400);
    expect(d.exact).toBe(false);
    expect(d.range).toEqual([86_400, 3 * 86_400]);
  });

  it('across a DST change the period stays 24h, not the 23h of that one day', () => {
    const d = deriveRotation('0 3 * * *', 'Europe/Berlin', NOW);
    expect(d.periodSeconds).toBe(86_400);
    expect(d.exact).toBe(false);
    expect(d.range).toEqual([23 * 3600, 86_400]);
  });

  it('more often than hourly is clamped to Google minimum of 1 hour, flagged approximate', () => {
    const d = deriveRotation('*/15 * * * *', 'UTC', NOW);
    expect(d.periodSeconds).toBe(MIN_PERIOD_S);
    expect(d.exact).toBe(false);
  });
});
