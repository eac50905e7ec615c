/**
 * Invariant 5: a worker killed at any point leaves a run that resumes to completion or
 * rolls back. Real worker processes (the local store with a slowed promote, random issuer,
 * a slowed redis-keyset target) are SIGKILLed at each step of a rotation and at random moments; a fresh
 * worker must finish the run with no version lost or duplicated, exactly one current,
 * and the keyset accepting exactly what the database says is live.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Child, kill, type Spare, spareWorker } from '../support/processes.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

const SECRET = 'crashy';
/** The rollback-reach case's secret (its versions stay in grace: only the rolled-back one leaves edge). */
const REACH = 'reach';
const KEYSET = `rekey-crash-${process.pid}-${Date.now()}:`;
let h: Harness;
let redis: Redis;
/** The next worker, loaded ahead (each test starts two or more): see startWorker(). */
let spare: Spare | undefined;

beforeAll(async () => {
  h = await startHarness({ label: 'crash', workers: false });
  redis = new Redis(h.settings.redisUrl);
  await h.apply(`
providers:
  vault: { type: slow-local, delayMs: 250 }
  edge: { type: slow-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}changes", delayMs: 250 }
secrets:
  ${SECRET}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_crash_ }
    targets: [edge]
    grace: 500ms
    retry: { attempts: 4, backoff: 200ms }
    timeout: 5s
  ${REACH}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_reach_ }
    targets: [edge]
    grace: 1h
    retry: { attempts: 2, backoff: 100ms }
    timeout: 5s
`);
  spare = spareWorker(h.childEnv());
}, 60_000);

afterAll(async () => {
  await spare?.discard();
  const keys = await redis.keys(`${KEYSET}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await h.stop();
});

/**
 * A fresh worker process, up: the spare loaded meanwhile (a new process that has read and
 * connected nothing before now), and the next one spawned to load in its turn.
 */
async function startWorker(): Promise<Child> {
  const worker = await (spare ?? spareWorker(h.childEnv())).start();
  spare = spareWorker(h.childEnv());
  return worker;
}

/** Everything that must hold once no run is active. */
async function assertConsistent(expectedVersions: number): Promise<void> {
  const versions = await h.runtime.db.version.findMany({ where: { secret: { name: SECRET } }, orderBy: { number: 'asc' } });
  expect(versions.map((v) => v.number)).toEqual(Array.from({ length: expectedVersions }, (_, i) => i + 1));
  expect(versions.filter((v) => v.state === 'current')).toHaveLength(1);
  expect(versions.filter((v) => v.state === 'issuing' || v.state === 'pending')).toEqual([]);
  const live = versions.filter((v) => v.state === 'current' || v.state === 'previous').map((v) => v.fingerprint);
  const accepted = Object.keys(await redis.hgetall(`${KEYSET}${SECRET}`));
  expect(accepted.sort()).toEqual(live.sort());
  const current = versions.find((v) => v.state === 'current')!;
  const stored = await h.runtime.db.localStoreVersion.findFirst({ where: { secret: SECRET, stages: { has: 'current' } } });
  expect(stored?.versionId).toBe(current.id);
}

async function settle(): Promise<void> {
  // Nothing running, and every previous version retired (its grace is 500 ms: settle() waits that long after each run).
  const deadline = Date.now() + 30_000;
  const busy = async () =>
    (await h.runtime.db.run.count({ where: { status: 'running', secret: { name: SECRET } } })) +
    (await h.runtime.db.version.count({ where: { secret: { name: SECRET }, state: { in: ['previous', 'retired'] } } }));
  while ((await busy()) > 0) {
    if (Date.now() > deadline) throw new Error(`did not settle:\n${await diagnose()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function diagnose(): Promise<string> {
  const versions = await h.runtime.db.version.findMany({ where: { secret: { name: SECRET } }, select: { id: true, number: true, state: true, graceEndsAt: true } });
  const runs = await h.runtime.db.run.findMany({ where: { status: 'running' }, select: { id: true, kind: true, step: true, error: true, versionId: true, attempts: true } });
  const jobs: Record<string, unknown> = {};
  for (const run of runs) jobs[run.id] = await (await h.runtime.queues.queues.rotations.getJob(`run.${run.id}`))?.getState();
  for (const v of versions) jobs[`retire v${v.number}`] = await (await h.runtime.queues.queues.retirements.getJob(`retire.${v.id}`))?.getState();
  return JSON.stringify({ versions, runs, jobs }, null, 1);
}

describe('crash recovery', () => {
  let versions = 0;

  it('first rotation without faults', async () => {
    const worker = await startWorker();
    const run = await h.rotate(SECRET, 30_000);
    expect(run.status).toBe('succeeded');
    await kill(worker);
    versions = 1;
    await assertConsistent(versions);
  }, 60_000);

  const run = (runId: string) => h.runtime.db.run.findUnique({ where: { id: runId } });
  /** The run's version is at the target: deploy answered, verify is under way (nothing recorded in between: README, commit points). */
  const deployed = async (runId: string) => {
    const versionId = (await run(runId))?.versionId;
    const fingerprint = versionId ? (await h.runtime.db.version.findUnique({ where: { id: versionId } }))?.fingerprint : null;
    return !!fingerprint && (await redis.hexists(`${KEYSET}${SECRET}`, fingerprint)) === 1;
  };
  // Each commit point of a rotation (README, Architecture), and the verify between two of them.
  const boundaries: Array<[string, (runId: string) => Promise<boolean>]> = [
    ['issue', async (runId) => (await run(runId))?.versionId !== null],
    ['deploy', async (runId) => (await run(runId))?.step === 'deploy'],
    ['verify', deployed],
    ['promote', async (runId) => (await run(runId))?.step === 'promote'],
    ['promotion', async (runId) => (await run(runId))?.status === 'succeeded'],
  ];

  it.each(boundaries)('SIGKILL at %s, restart: the run completes or rolls back', async (step, reached) => {
    let worker = await startWorker();
    const result = await h.runtime.engine.requestRotation({ secret: SECRET, trigger: 'manual' });
    if (result.status === 'stale') throw new Error('stale');
    const deadline = Date.now() + 20_000;
    while (!(await reached(result.run.id))) {
      if (Date.now() > deadline) throw new Error(`never reached the step; run is ${JSON.stringify(await h.runtime.engine.deps.repo.getRun(result.run.id))}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await kill(worker);
    // The kill landed inside the run (every step up to promote makes a 250 ms provider call;
    // the promotion's commit finishes the run, and the retirement it leaves may not be queued yet).
    if (step !== 'promotion') expect((await h.runtime.engine.deps.repo.getRun(result.run.id))?.status).toBe('running');
    worker = await startWorker();
    const finished = await h.waitForRun(result.run.id, 30_000);
    expect(['succeeded', 'rolled_back']).toContain(finished.status);
    await settle();
    await kill(worker);
    versions += 1;
    await assertConsistent(versions);
  }, 90_000);

  it('SIGKILL at random moments across several rotations', async () => {
    let worker = await startWorker();
    const runs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const result = await h.runtime.engine.requestRotation({ secret: SECRET, trigger: 'manual' });
      if (result.status === 'stale') throw new Error('stale');
      runs.push(result.run.id);
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 900));
      await kill(worker);
      worker = await startWorker();
      await h.waitForRun(result.run.id, 120_000);
    }
    await settle();
    await kill(worker);
    versions += 3;
    await assertConsistent(versions);
    const statuses = await h.runtime.db.run.findMany({ where: { id: { in: runs } }, select: { status: true } });
    expect(statuses.every((r) => r.status === 'succeeded' || r.status === 'rolled_back')).toBe(true);
    // Hang guards, not speed bounds: three kill-and-restart cycles, each as long as one of the tests above (about a minute on a loaded 2-core machine).
  }, 480_000);
});

// Invariant 5, the rollback half: a worker SIGKILLed after a target took the pending version
// (deploy answered, verify under way: nothing recorded in between) leaves a run that rolls back
// there too. The resumed attempt cannot read the value back (the store lost it), so it never
// deploys again and its rollback knows the target only from the delivery rows recorded
// `pending` with the version, before the first deploy call (README, commit 4). Without them the
// target would keep accepting a key the issuer has revoked.
it('SIGKILL after the deploy landed, then the store loses the value: the rollback retires it at the target', async () => {
  let worker = await startWorker();
  expect((await h.rotate(REACH, 30_000)).status).toBe('succeeded');
  const result = await h.runtime.engine.requestRotation({ secret: REACH, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  const runId = result.run.id;
  // The run's version is at the target: deploy answered, verify (250 ms) is under way.
  let fingerprint: string | null | undefined;
  await until(
    async () => {
      const versionId = (await h.runtime.db.run.findUnique({ where: { id: runId } }))?.versionId;
      fingerprint = versionId ? (await h.runtime.db.version.findUnique({ where: { id: versionId } }))?.fingerprint : null;
      return !!fingerprint && (await redis.hexists(`${KEYSET}${REACH}`, fingerprint)) === 1;
    },
    20_000,
    'the pending version deployed at edge',
  );
  await kill(worker);
  const run = await h.runtime.db.run.findUniqueOrThrow({ where: { id: runId } });
  expect([run.status, run.step]).toEqual(['running', 'deploy']);
  // The store loses it: the resumed attempt's read-back fails, so it never reaches a deploy call.
  expect((await h.runtime.db.localStoreVersion.deleteMany({ where: { versionId: run.versionId! } })).count).toBe(1);

  worker = await startWorker();
  try {
    expect((await h.waitForRun(runId, 60_000)).status).toBe('rolled_back');
    const version = await h.runtime.db.version.findUniqueOrThrow({ where: { id: run.versionId! } });
    expect(version.state).toBe('failed');
    expect(await redis.hexists(`${KEYSET}${REACH}`, fingerprint!), 'the rolled-back key is still accepted at edge').toBe(0);
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: REACH }, state: 'current' } });
    expect(await redis.hexists(`${KEYSET}${REACH}`, current.fingerprint!)).toBe(1);
  } finally {
    await kill(worker);
  }
}, 180_000);
