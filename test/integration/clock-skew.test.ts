/**
 * Clock skew between workers. Each worker reads its own clock where core asks "is it
 * time?" (EngineDeps.now): whether a previous version's grace has ended when a retirement
 * job reaches it. Engines sharing this file's database stand in for workers whose clocks
 * are behind or ahead; rotations are driven directly, with no queue workers running, so
 * nothing else retires anything meanwhile.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLOCK_TOLERANCE_MS } from '../../src/core/context.js';
import { Engine } from '../../src/core/engine.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
const JOURNAL = `skew-${randomUUID()}`;

beforeAll(async () => {
  h = await startHarness({ label: 'clock-skew', workers: false });
});
afterAll(() => h.stop());

const sleepUntil = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms - Date.now())));

/** An engine on the same database and queues whose clock is `offsetMs` off. */
const skewed = (offsetMs: number) => new Engine({ ...h.runtime.engine.deps, now: () => new Date(Date.now() + offsetMs) });

async function secretWithTwoVersions(grace: string): Promise<{ name: string; previousId: string; graceEndsAt: Date }> {
  const name = `skew-${randomUUID().slice(0, 8)}`;
  await h.apply(`
providers:
  mem: { type: memory, journal: ${JOURNAL} }
secrets:
  ${name}: { store: { provider: mem }, issuer: { provider: mem }, targets: [mem], grace: ${grace} }
`);
  for (let i = 0; i < 2; i++) {
    const request = await h.runtime.engine.requestRotation({ secret: name, trigger: 'manual' });
    if (request.status === 'stale') throw new Error('stale');
    expect(await h.runtime.engine.driveRotation(request.run.id, { final: true })).toBe('succeeded');
  }
  const previous = (await h.runtime.engine.deps.repo.findVersionByNumber(name, 1))!;
  expect(previous.state).toBe('previous');
  return { name, previousId: previous.id, graceEndsAt: previous.graceEndsAt! };
}

const stateOf = async (id: string) => (await h.runtime.engine.deps.repo.getVersion(id))?.state;

it('a worker whose clock is behind skips a retirement it thinks early; one with the right clock retires the version: grace is never cut short', async () => {
  const { previousId, graceEndsAt } = await secretWithTwoVersions('1s');
  await sleepUntil(graceEndsAt.getTime() + CLOCK_TOLERANCE_MS + 200);
  // The retirement job reaches a worker 10 s behind: for it the grace has about 9 s to go.
  expect(await skewed(-10_000).retire(previousId)).toBe('skipped');
  expect(await stateOf(previousId)).toBe('previous');
  expect(await h.runtime.db.run.count({ where: { versionId: previousId, kind: 'retirement' } })).toBe(0);
  // reconcile() queues it again (its job is gone); a worker with the right clock takes it.
  expect(await h.runtime.engine.retire(previousId)).toBe('succeeded');
  expect(await stateOf(previousId)).toBe('revoked');
});

it('a clock up to 1 s ahead never retires early; a clock further ahead cuts the grace short by its skew beyond that (keep workers on NTP)', async () => {
  const { previousId, graceEndsAt } = await secretWithTwoVersions('20s');
  // Before the grace ends, a clock at most 1 s ahead reads less than graceEndsAt + 1 s. Its
  // extreme reading, pinned (so a slow machine cannot move it): not due yet.
  const extreme = new Engine({ ...h.runtime.engine.deps, now: () => new Date(graceEndsAt.getTime() + CLOCK_TOLERANCE_MS - 1) });
  expect(await extreme.retire(previousId)).toBe('skipped');
  expect(await stateOf(previousId)).toBe('previous');
  // 30 s ahead: the version is retired now, though its grace (20 s) had not ended.
  expect(await skewed(30_000).retire(previousId)).toBe('succeeded');
  expect(await stateOf(previousId)).toBe('revoked');
  expect(graceEndsAt.getTime()).toBeGreaterThan(Date.now());
});

it('the same cron due time from workers whose clocks disagree makes one run: the key is the due time, not a clock reading', async () => {
  const name = `skew-cron-${randomUUID().slice(0, 8)}`;
  await h.apply(`
providers:
  mem: { type: memory, journal: ${JOURNAL} }
secrets:
  ${name}: { store: { provider: mem }, issuer: { provider: mem }, targets: [mem] }
`);
  const due = new Date(Math.floor(Date.now() / 1000) * 1000);
  const engines = [skewed(-30_000), h.runtime.engine, skewed(30_000)];
  const results = await Promise.all(
    engines.flatMap((engine) =>
      [0, 1].map(() => engine.requestRotation({ secret: name, trigger: 'cron', idempotencyKey: `cron:${name}:${due.getTime()}`, requestedAt: due })),
    ),
  );
  const runs = new Set(results.map((r) => (r.status === 'stale' ? 'stale' : r.run.id)));
  expect(runs.size).toBe(1);
  expect(await h.runtime.db.run.count({ where: { secret: { name } } })).toBe(1);
});
