/**
 * Invariant 5, the rollback half: a worker SIGKILLed after a target took the pending version
 * (deploy answered, verify under way: nothing recorded in between) leaves a run that rolls back
 * there too. The resumed attempt cannot read the value back (the store lost it), so it never
 * deploys again and its rollback knows the target only from the delivery rows recorded
 * `pending` with the version, before the first deploy call (README, commit 4). Without them the
 * target would keep accepting a key the issuer has revoked.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Child, kill, spawnWorker, waitForOutput } from '../support/processes.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

const SECRET = 'reach';
const KEYSET = `rekey-reach-${process.pid}-${Date.now()}:`;
let h: Harness;
let redis: Redis;

beforeAll(async () => {
  h = await startHarness({ label: 'crash-reach', workers: false });
  redis = new Redis(h.settings.redisUrl);
  await h.apply(`
providers:
  vault: { type: slow-local, delayMs: 0 }
  edge: { type: slow-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}changes", delayMs: 250 }
secrets:
  ${SECRET}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_reach_ }
    targets: [edge]
    grace: 1h
    retry: { attempts: 2, backoff: 100ms }
    timeout: 5s
`);
}, 60_000);

afterAll(async () => {
  const keys = await redis.keys(`${KEYSET}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await h.stop();
});

async function startWorker(): Promise<Child> {
  const worker = spawnWorker(h.childEnv());
  await waitForOutput(worker, /rekey started/);
  return worker;
}

it('SIGKILL after the deploy landed, then the store loses the value: the rollback retires it at the target', async () => {
  let worker = await startWorker();
  expect((await h.rotate(SECRET, 30_000)).status).toBe('succeeded');
  const result = await h.runtime.engine.requestRotation({ secret: SECRET, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  const runId = result.run.id;
  // The run's version is at the target: deploy answered, verify (250 ms) is under way.
  let fingerprint: string | null | undefined;
  await until(
    async () => {
      const versionId = (await h.runtime.db.run.findUnique({ where: { id: runId } }))?.versionId;
      fingerprint = versionId ? (await h.runtime.db.version.findUnique({ where: { id: versionId } }))?.fingerprint : null;
      return !!fingerprint && (await redis.hexists(`${KEYSET}${SECRET}`, fingerprint)) === 1;
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
    expect(await redis.hexists(`${KEYSET}${SECRET}`, fingerprint!), 'the rolled-back key is still accepted at edge').toBe(0);
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: SECRET }, state: 'current' } });
    expect(await redis.hexists(`${KEYSET}${SECRET}`, current.fingerprint!)).toBe(1);
  } finally {
    await kill(worker);
  }
}, 180_000);
