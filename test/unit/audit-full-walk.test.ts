/**
 * The anchor job walks the whole audit log once a day (src/audit-anchor.ts fullWalkDue): the run
 * that falls in the first interval of a UTC day, whatever the interval (up to an hour) and
 * whenever its runs started; the others check only what was appended since the last anchor.
 */
import { expect, it } from 'vitest';
import { fullWalkDue } from '../../src/audit-anchor.js';

const DAY = 86_400_000;

it('is due for exactly one run a day, for any interval up to an hour and any phase of the runs', () => {
  for (const everyMs of [60_000, 7 * 60_000, 15 * 60_000, 3_600_000]) {
    for (const phase of [0, 1, 59_999, 1_234_567 % everyMs, everyMs - 1]) {
      const due: number[] = [];
      for (let at = phase; at < 3 * DAY; at += everyMs) if (fullWalkDue(Date.UTC(2026, 11, 7) + at, everyMs)) due.push(Math.floor(at / DAY));
      expect({ everyMs, phase, due }).toEqual({ everyMs, phase, due: [0, 1, 2] });
    }
  }
});
