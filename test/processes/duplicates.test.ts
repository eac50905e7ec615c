/**
 * Invariant 6: duplicate triggers produce one run. Twenty concurrent rotate requests
 * for one secret make one run; three worker processes sharing a one-second cron make
 * exactly one run per due time, with no due time missed.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime.js';
import { type Child, kill, spareWorker, spawnWorker, waitForOutput } from '../support/processes.js';
import { startHarness, testModules, type Harness } from '../support/harness.js';
import { deleteKeys } from '../support/isolation.js';
import { until } from '../support/poll.js';

// wall-clock schedules: "* * * * * *" is what the cron test is about (one run per due time across three workers).
let h: Harness;
const KEYSET = `rekey-dup-${randomUUID().slice(0, 8)}:`;

beforeAll(async () => {
  h = await startHarness({ label: 'duplicates', workers: false });
});
afterAll(async () => {
  await h.stop();
  await deleteKeys(`${KEYSET}*`);
});

const ticking = (schedule: string) => `
providers:
  vault: { type: local }
  api: { type: redis-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c" }
secrets:
  ticking:
    store: { provider: vault }
    issuer: { type: random }
    targets: [api]
    grace: 500ms
    ${schedule}
`;

describe('duplicate triggers', () => {
  it('20 concurrent rotate requests for one secret make one run', async () => {
    await h.apply(`
providers:
  vault: { type: local }
  api: { type: redis-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c" }
secrets:
  burst:
    store: { provider: vault }
    issuer: { type: random }
    targets: [api]
`);
    // Four runtimes (four connection pools), five requests each, all at once.
    const runtimes = Array.from({ length: 4 }, () => new Runtime({ actor: 'cli', settings: h.settings, modules: testModules, log: h.runtime.log }));
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => runtimes[i % 4]!.engine.requestRotation({ secret: 'burst', trigger: 'manual' })),
      );
      const runIds = new Set(results.map((r) => (r.status === 'stale' ? 'stale' : r.run.id)));
      expect(runIds.size).toBe(1);
      expect(results.filter((r) => r.status === 'queued')).toHaveLength(1);
      expect(await h.runtime.db.run.count({ where: { secret: { name: 'burst' } } })).toBe(1);
      const jobs = await h.runtime.queues.queues.rotations.getJobs(['waiting', 'delayed', 'active', 'prioritized']);
      expect(jobs.filter((j) => j.name === 'run')).toHaveLength(1);
    } finally {
      for (const r of runtimes) await r.close();
    }
  });

  /**
   * The due times after `upAt` that have an outcome, in order. The iteration due before the
   * workers were up fires late and is not back-filled (by design). From then on every due
   * second that fires has exactly one outcome: its own run, or (when a rotation outlasted the period on
   * this loaded machine) an audited join to the running one or a stale skip.
   */
  /** The due time (ms) a scheduled run's idempotency key names. */
  const due = (key: string) => Number(key.split(':').at(-1));

  async function outcomesAfter(upAt: number): Promise<number[]> {
    const runs = await h.runtime.db.run.findMany({ where: { secret: { name: 'ticking' }, kind: 'rotation' }, select: { idempotencyKey: true } });
    const skipped = await h.runtime.db.auditEvent.findMany({ where: { secret: 'ticking', action: { in: ['trigger.joined', 'trigger.stale'] } } });
    return [...runs.map((r) => due(r.idempotencyKey)), ...skipped.map((e) => due(String((e.data as { idempotencyKey: string }).idempotencyKey)))]
      .filter((at) => at > upAt)
      .sort((a, b) => a - b);
  }

  it('three worker processes with a one-second cron make exactly one run per due time', async () => {
    await h.apply(ticking('schedule: { cron: "* * * * * *", timezone: UTC }'));
    const workers = [spawnWorker(h.childEnv()), spawnWorker(h.childEnv()), spawnWorker(h.childEnv())];
    let upAt = 0;
    // The worker that finishes what the three leave (below), loading meanwhile; it runs nothing before then.
    const spare = spareWorker(h.childEnv());
    try {
      await Promise.all(workers.map((w) => waitForOutput(w, /rekey started/)));
      upAt = Date.now();
      // Until six due times after start-up have an outcome (their run, or an audited skip) and
      // one of them made its own run (on a loaded machine one rotation can outlast several due
      // times, which all join it), however slow the machine.
      const ownRuns = async () => (await h.runtime.db.run.findMany({ where: { secret: { name: 'ticking' }, kind: 'rotation' }, select: { idempotencyKey: true } })).filter((r) => due(r.idempotencyKey) > upAt).length;
      await until(async () => (await outcomesAfter(upAt)).length >= 6 && (await ownRuns()) >= 1, 240_000, 'six due times with an outcome, one with its own run');
    } finally {
      await Promise.all(workers.map((w) => kill(w, 'SIGTERM')));
    }
    // A due time that fired during shutdown may have made its run and left its job queued:
    // with the schedule gone, one more worker must finish it.
    await h.apply(ticking(''));
    let finisher: Child | undefined;
    try {
      finisher = await spare.start();
      await until(async () => (await h.runtime.db.run.count({ where: { secret: { name: 'ticking' }, status: 'running' } })) === 0, 60_000, 'in-flight runs finished');
    } finally {
      if (finisher) await kill(finisher, 'SIGTERM');
      else await spare.discard();
    }
    const runs = await h.runtime.db.run.findMany({ where: { secret: { name: 'ticking' }, kind: 'rotation' }, select: { idempotencyKey: true, status: true } });
    const all = runs.map((r) => due(r.idempotencyKey)).sort((a, b) => a - b);
    const outcomes = await outcomesAfter(upAt);
    expect(new Set(outcomes).size).toBe(outcomes.length);
    expect(outcomes.length).toBeGreaterThanOrEqual(5);
    // Due times are whole seconds. A loaded machine may skip one: BullMQ computes the next due
    // time when it takes the job, and does not back-fill the seconds it missed (by design).
    for (let i = 1; i < outcomes.length; i++) expect((outcomes[i]! - outcomes[i - 1]!) % 1000).toBe(0);
    // How many due times made their own run depends on how long a rotation takes on this
    // machine (the rest joined a running one, audited): at least one did.
    expect(all.filter((due) => due > upAt).length).toBeGreaterThanOrEqual(1);
    expect(runs.filter((r) => r.status !== 'succeeded')).toEqual([]);
    // Versions match runs one to one: no duplicate rotation slipped past the run table.
    expect(await h.runtime.db.version.count({ where: { secret: { name: 'ticking' } } })).toBe(runs.length);
  }, 300_000);
});
