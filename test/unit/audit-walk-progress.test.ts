/** How far an audit walk has come, as `rekey audit verify` prints it on stderr and the admin API answers it. */
import { expect, it } from 'vitest';
import { WALK_PROGRESS_EVERY_MS } from '../../src/cli/actions/database.js';
import { walkPace, walkReporter } from '../../src/db/audit-verify.js';

it('walkPace: the share of the seq range behind, the rate, and the time left at that rate', () => {
  expect(walkPace({ events: 250_000, seq: 300_000n, from: 100_000n, upper: 900_000n }, 5000)).toEqual({ share: 0.25, perSecond: 50_000, secondsLeft: 15 });
  // Nothing to walk: done; nothing walked yet: no estimate.
  expect(walkPace({ events: 0, seq: 7n, from: 7n, upper: 7n }, 10)).toMatchObject({ share: 1, secondsLeft: 0 });
  expect(walkPace({ events: 0, seq: 0n, from: 0n, upper: 10n }, 10)).toMatchObject({ share: 0, secondsLeft: undefined });
});

it('rekey audit verify prints a line at most every WALK_PROGRESS_EVERY_MS, none for a walk done sooner', () => {
  let now = 1_000_000;
  const lines: string[] = [];
  const report = walkReporter((line) => lines.push(line), WALK_PROGRESS_EVERY_MS, () => now);
  for (const events of [1000, 2000, 3000]) {
    now += WALK_PROGRESS_EVERY_MS / 4;
    report({ events, seq: BigInt(events), from: 0n, upper: 4_000_000n });
  }
  expect(lines).toEqual([]);
  now += WALK_PROGRESS_EVERY_MS / 4;
  report({ events: 1_000_000, seq: 1_000_000n, from: 0n, upper: 4_000_000n });
  expect(lines).toEqual(['1,000,000 events checked, up to row 1000000 of 4000000 (25%), 200,000/s, about 15s left']);
  now += WALK_PROGRESS_EVERY_MS - 1;
  report({ events: 1_100_000, seq: 1_100_000n, from: 0n, upper: 4_000_000n });
  expect(lines).toHaveLength(1);
  now += 1;
  report({ events: 2_000_000, seq: 2_000_000n, from: 0n, upper: 4_000_000n });
  expect(lines[1]).toBe('2,000,000 events checked, up to row 2000000 of 4000000 (50%), 200,000/s, about 10s left');
});
