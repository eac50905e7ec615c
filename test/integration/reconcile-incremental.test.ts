/**
 * Incremental reconcile (src/reconcile-passes.ts): a periodic pass reads only the rows written
 * since its watermark and the retirements that came due since it; a full pass reads everything.
 * No workers run here: each pass is called by the test and its effect read from Redis.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

let h: Harness;
const JOURNAL = `incremental-${randomUUID()}`;
journal(JOURNAL);

beforeAll(async () => {
  h = await startHarness({ label: 'reconcile-incremental', workers: false });
});
afterAll(() => h.stop());

/** Rotates in this process (no workers run): the run's job is left queued, never taken. */
async function rotate(secret: string) {
  const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  expect(await h.runtime.engine.driveRotation(result.run.id, { final: true })).toBe('succeeded');
}

const retirementJob = (versionId: string) => h.runtime.queues.queues.retirements.getJob(`retire.${versionId}`);
const passes = () => h.logs.filter((line) => line.includes('"reconcile pass"')).map((line) => JSON.parse(line) as { pass: string; work: { retirements: number } });

/** Moves a row's updated_at back, as if it had been written an hour ago (the trigger stamps every write). */
async function age(versionId: string) {
  await h.runtime.db.$transaction([
    h.runtime.db.$executeRawUnsafe('SET LOCAL session_replication_role = replica'),
    h.runtime.db.$executeRaw`UPDATE versions SET updated_at = now() - interval '1 hour' WHERE id = ${versionId}::uuid`,
  ]);
}

it('an incremental pass repairs a change made after its watermark and leaves older rows to the full pass, which repairs them', async () => {
  const [lost, crashed, due] = ['lost', 'crashed', 'due'].map((s) => `${s}-${randomUUID().slice(0, 6)}`) as [string, string, string];
  await h.apply(memoryConfig(JOURNAL, { [lost]: 'grace: 1h', [crashed]: 'grace: 1h', [due]: 'grace: 1h' }));
  for (const secret of [lost, crashed, due]) for (let i = 0; i < 2; i++) await rotate(secret);
  const repo = h.runtime.engine.deps.repo;
  const v1 = async (secret: string) => (await repo.findVersionByNumber(secret, 1))!;
  const [lostV1, crashedV1, dueV1] = [await v1(lost), await v1(crashed), await v1(due)];
  for (const v of [lostV1, crashedV1, dueV1]) expect(await retirementJob(v.id)).toBeDefined(); // promote scheduled them
  for (const v of [lostV1, crashedV1, dueV1]) await age(v.id);
  await h.runtime.reconcile(); // full: sets this process's watermark

  // lost: its retirement job is gone with no row change (what a Redis that lost its data does).
  await (await retirementJob(lostV1.id))!.remove();
  // crashed: written after the watermark by a worker that died before queueing its retirement.
  await repo.transition(crashedV1.id, ['previous'], 'retired', { actor: 'test' });
  await (await retirementJob(crashedV1.id))?.remove();
  // due: unchanged for an hour, but its grace ends now, and its job was lost too.
  await h.runtime.db.$transaction([
    h.runtime.db.$executeRawUnsafe('SET LOCAL session_replication_role = replica'),
    h.runtime.db.$executeRaw`UPDATE versions SET grace_ends_at = now() WHERE id = ${dueV1.id}::uuid`,
  ]);
  await (await retirementJob(dueV1.id))!.remove();

  await h.runtime.reconcile({ incremental: true });
  expect(passes().at(-1)).toMatchObject({ pass: 'incremental', work: { retirements: 2 } });
  expect(await retirementJob(crashedV1.id)).toBeDefined();
  expect(await retirementJob(dueV1.id)).toBeDefined();
  expect(await retirementJob(lostV1.id)).toBeUndefined(); // nothing in the database changed: not this pass's work

  await h.runtime.reconcile();
  expect(passes().at(-1)).toMatchObject({ pass: 'full' });
  expect(await retirementJob(lostV1.id)).toBeDefined();
});

it('one process in the cluster runs the periodic full pass, once per period', async () => {
  await h.runtime.reconcile(); // full: takes this period
  await h.runtime.reconcile({ incremental: true });
  expect(passes().at(-1)?.pass).toBe('incremental');
  // The period ran out (its Redis key expired): the next periodic pass, here or anywhere, is full.
  await h.runtime.redis.del(`${h.settings.queuePrefix}:reconcile-full`);
  await h.runtime.reconcile({ incremental: true });
  expect(passes().at(-1)?.pass).toBe('full');
  await h.runtime.reconcile({ incremental: true });
  expect(passes().at(-1)?.pass).toBe('incremental');
});

it("a run's step and lease bookkeeping leave its watermark (so those updates can be HOT); its attempt and its end move it, and the pass finds it ended", async () => {
  const secret = `bookkeeping-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h' }));
  const requested = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (requested.status === 'stale') throw new Error('stale');
  const runId = requested.run.id;
  const repo = h.runtime.engine.deps.repo;
  const stamp = async () => (await h.runtime.db.$queryRaw<Array<{ at: Date }>>`SELECT updated_at AS at FROM runs WHERE id = ${runId}::uuid`)[0]!.at.getTime();
  // As age() does for a version: an hour back, so a write that stamps the row is seen to.
  const aged = async () => {
    await h.runtime.db.$transaction([
      h.runtime.db.$executeRawUnsafe('SET LOCAL session_replication_role = replica'),
      h.runtime.db.$executeRaw`UPDATE runs SET updated_at = now() - interval '1 hour' WHERE id = ${runId}::uuid`,
    ]);
    return stamp();
  };

  let before = await aged();
  expect(await repo.takeLease(runId, 'driver', 60_000)).toBe(true);
  expect(await stamp()).toBeGreaterThan(before); // it counts an attempt (+0): the pass reads attempts for the retry budget
  before = await aged();
  expect(await repo.setRunStep(runId, 'deploy', 'driver')).toBe(true);
  expect(await repo.renewLease(runId, 'driver', 60_000)).toBe(true);
  await repo.releaseLease(runId, 'driver');
  expect(await stamp()).toBe(before);

  expect(await repo.finishRun(runId, 'rolled_back', { actor: 'test' })).toBe(true);
  expect(await stamp()).toBeGreaterThan(before);
  expect((await repo.pendingWork(new Date(before + 1))).endedRuns).toContain(runId);
});
