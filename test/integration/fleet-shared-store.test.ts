/**
 * A fleet's --per-store and --per-target count every rotation running at the store or target,
 * not only the fleet's own: a scheduled or manual rotation in flight there takes one of the
 * slots (the limits protect the store's write quota, which those rotations use too).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

const J = `fleet-shared-${randomUUID().slice(0, 8)}`;
const j = journal(J);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet-shared-store' });
  await h.apply(memoryConfig(J, { 'nightly-key': '', 'f-1': '', 'f-2': '' }));
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

it('starts no fleet run while another rotation holds the only --per-store slot of its store', async () => {
  const held = j.hold('store.writePending');
  const other = await h.runtime.engine.requestRotation({ secret: 'nightly-key', trigger: 'manual' });
  if (other.status === 'stale') throw new Error('stale');
  await held.reached;

  const lines: string[] = [];
  const fleet = rotateFleet(h.runtime, { selector: 'f-*' }, { dryRun: false, perStore: 1, perTarget: 10, storeRate: 100, out: (l) => lines.push(l), progressEveryMs: 0, quietEveryMs: 0 });
  // The header, then a progress line per pass of its loop: two passes have looked at the store.
  await expect.poll(() => lines.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
  const whileHeld = await h.runtime.db.run.count({ where: { trigger: 'fleet' } });
  held.release();

  expect(await fleet).toMatchObject({ selected: 2, done: 2, failed: 0 });
  expect((await h.waitForRun(other.run.id)).status).toBe('succeeded');
  expect(whileHeld).toBe(0);
});
