import { defaultRepeatStrategy } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { rememberedRepeatStrategy } from '../../src/queue/repeat.js';

describe('rememberedRepeatStrategy', () => {
  it('gives the next time BullMQ computes, for instants before, at and after each remembered answer', () => {
    const patterns = [
      { pattern: '0 3 * * *', tz: 'UTC' },
      { pattern: '30 2 * * *', tz: 'Europe/Berlin' }, // a DST-gap hour in March
      { pattern: '*/7 * * * * *', tz: 'UTC' },
      { pattern: '0 0 1 6 *', tz: 'America/New_York' },
    ];
    let millis = Date.UTC(2026, 2, 28, 23, 59, 50);
    for (let step = 0; step < 150; step++) {
      for (const opts of patterns) {
        const remembered = rememberedRepeatStrategy(millis, opts);
        expect(remembered).toBe(defaultRepeatStrategy(millis, opts));
        // Exactly at the answer: the one after it.
        expect(rememberedRepeatStrategy(remembered as number, opts)).toBe(defaultRepeatStrategy(remembered as number, opts));
      }
      millis += [1, 999, 4_000, 3_600_000, 17][step % 5]!;
    }
  });

  it('leaves options it does not key on to BullMQ', () => {
    const opts = { pattern: '0 3 * * *', tz: 'UTC', startDate: Date.UTC(2030, 0, 1) };
    const millis = Date.UTC(2026, 0, 1);
    expect(rememberedRepeatStrategy(millis, opts)).toBe(defaultRepeatStrategy(millis, opts));
    expect(rememberedRepeatStrategy(millis, opts)).toBeGreaterThan(Date.UTC(2030, 0, 1));
  });
});
