/**
 * A secret removed from the config while a fleet rotation (src/cli/fleet.ts) is under way (an
 * apply during the incident): the fleet goes on with the others and reports that one as not
 * rotated (its keys are still live: `rekey decommission`), instead of the command dying on it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `fleet-removed-${randomUUID()}`;
const j = journal(JOURNAL);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-removed' });
  await h.apply(memoryConfig(JOURNAL, { 'rm-a': '', 'rm-b': '', 'rm-c': '' }));
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

it('goes on past a secret removed mid-fleet and names it among the failures', async () => {
  const issuing = j.hold('issue'); // rm-a's rotation, the only one --per-store 1 lets start
  const fleet = rotateFleet(h.runtime, { all: true }, { dryRun: false, perStore: 1, perTarget: 10, storeRate: 1000, out: () => undefined, progressEveryMs: 0 });
  await issuing.reached;
  await h.apply(memoryConfig(JOURNAL, { 'rm-a': '', 'rm-c': '' }));
  issuing.release();
  const result = await fleet;
  expect(result).toMatchObject({ selected: 3, done: 2, failed: 1 });
  expect(result.failures).toEqual([{ secret: 'rm-b', runId: null, status: 'removed', code: 'REKEY_ERR_UNKNOWN' }]);
  expect(await h.runtime.db.version.count({ where: { secret: { name: 'rm-c' } } })).toBe(1);
});

it('goes on past a request whose job Redis refused (the run is recorded; a reconcile pass queues it) and follows that run', async () => {
  await h.apply(memoryConfig(JOURNAL, { 'rm-a': '', 'rm-c': '', 'rq-a': '', 'rq-b': '' }));
  const enqueue = vi.spyOn(h.runtime.queues, 'enqueueRun').mockRejectedValueOnce(new Error('Connection is closed.'));
  const fleet = rotateFleet(h.runtime, { selector: 'rq-*' }, { dryRun: false, perStore: 10, perTarget: 10, storeRate: 1000, out: () => undefined });
  // The refused one's run is recorded with no job: a worker's reconcile pass queues it.
  await until(async () => (await h.runtime.db.run.count({ where: { trigger: 'fleet', secret: { name: { startsWith: 'rq-' } } } })) === 2, 20_000, 'both runs recorded');
  enqueue.mockRestore();
  await h.runtime.reconcile();
  expect(await fleet).toMatchObject({ selected: 2, done: 2, failed: 0 });
});
