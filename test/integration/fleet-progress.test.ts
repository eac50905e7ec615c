/**
 * A fleet rotation's progress lines (src/cli/fleet.ts) while nothing moves (a run held by a slow
 * provider, a queue with no worker): a line when a figure changes, and while none does only one
 * per quiet interval, so a CI log or a file is not filled with the same line every 2 s.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `fleet-progress-${randomUUID()}`;
const j = journal(JOURNAL);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-progress' });
  await h.apply(memoryConfig(JOURNAL, { 'pg-a': '' }));
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

it('prints no line while no figure changes, then the final one', async () => {
  const issuing = j.hold('issue');
  const polls = vi.spyOn(h.runtime.db.run, 'findMany'); // each pass of the command's loop reads its open runs once
  const lines: string[] = [];
  const fleet = rotateFleet(h.runtime, { all: true }, { dryRun: false, perStore: 10, perTarget: 10, storeRate: 1000, progressEveryMs: 0, out: (line) => lines.push(line) });
  await issuing.reached;
  const seen = polls.mock.calls.length;
  await until(() => Promise.resolve(polls.mock.calls.length >= seen + 6), 30_000, 'six passes of the loop while the run is held');
  const held = lines.length;
  issuing.release();
  expect(await fleet).toMatchObject({ done: 1, failed: 0 });
  polls.mockRestore();
  // The header and the first figures (1 running); nothing more while the run was held.
  expect(held).toBe(2);
  expect(lines.at(-1)).toMatch(/^ {2}1 done, 0 failed, 0 remaining \(0 running\)/);
});
