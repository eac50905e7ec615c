/**
 * `rekey rotate --wait` tells the truth while it waits (issue 14, item 5): a run nobody picked
 * up is shown as queued, with what the workers' heartbeats say (none ever, none lately, alive
 * and busy), a line at least every 5 s, and a final message naming the cause. Real `rekey`
 * processes: the CLI and, where one is needed, a worker.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEARTBEAT_STALE_MS } from '../../src/queue/heartbeats.js';
import { type Child, kill, runRekey, spawnWorker, waitForOutput } from '../support/processes.js';
import { ONE_LOCAL_SECRET, startHarness, type Harness } from '../support/harness.js';

const KEYSET = `rekey-wait-${process.pid}-${Date.now()}:`;
let h: Harness;
/** A database and queue prefix no worker ever runs against (the first test), beside h's, so that test runs while the second does. */
let none: Harness;
let worker: Child | undefined;

beforeAll(async () => {
  [h, none] = await Promise.all([startHarness({ label: 'wait-queued', workers: false }), startHarness({ label: 'wait-none', workers: false })]);
  await none.apply(ONE_LOCAL_SECRET);
  await h.apply(`
providers:
  vault: { type: local }
  slow: { type: slow-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c", delayMs: 60000 }
secrets:
  k:
    store: { provider: vault }
    issuer: { type: random }
  busy:
    store: { provider: vault }
    issuer: { type: random }
    targets: [slow]
    timeout: 2m
`);
}, 60_000);

afterAll(async () => {
  if (worker) await kill(worker);
  const redis = new Redis(h.settings.redisUrl);
  const keys = await redis.keys(`${KEYSET}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await Promise.all([h.stop(), none.stop()]);
});

const queuedLines = (stdout: string) => stdout.split('\n').filter((line) => line.includes('queued: no worker has picked it up yet'));

// The first two tests wait out their --timeout (12 s and 8 s) side by side, each on its own database and queue prefix.
describe.concurrent('rotate --wait on a run nobody picks up', () => {
  it('no worker ever seen: queued (not "running at issue"), a line at least every 5 s, and the final message says no worker has sent a heartbeat', async () => {
    const result = await runRekey(['rotate', 'k', '--wait', '--timeout', '12s'], none.childEnv());
    expect(result.code).toBe(1);
    const progress = queuedLines(result.stdout);
    // 12 s of waiting: the first line at once, then one at least every 5 s.
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (const line of progress) expect(line).toContain('(no worker has sent a heartbeat to this REDIS_URL and REKEY_QUEUE_PREFIX: is `rekey worker` running against them?)');
    expect(result.stdout).not.toMatch(/^ +\S+ +issue$/m);
    expect(result.stderr).toMatch(/still queued after 12s: no worker picked it up; no worker has sent a heartbeat to this REDIS_URL and REKEY_QUEUE_PREFIX/);
  });

  it('a worker busy with another rotation: queued, naming the live worker (its heartbeat) as busy', async () => {
    worker = spawnWorker(h.childEnv(), ['--concurrency', '1']);
    await waitForOutput(worker, /rekey started/);
    // The one rotation slot is taken by a run whose target answers after a minute.
    const busy = await h.runtime.engine.requestRotation({ secret: 'busy', trigger: 'manual' });
    if (busy.status === 'stale') throw new Error('a manual rotation is never stale');
    await expect.poll(async () => (await h.runtime.engine.deps.repo.getRun(busy.run.id))?.attempts, { timeout: 60_000, interval: 100 }).toBeGreaterThan(0);
    const result = await runRekey(['rotate', 'k', '--wait', '--timeout', '8s'], h.childEnv());
    expect(result.code).toBe(1);
    const progress = queuedLines(result.stdout);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (const line of progress) expect(line).toMatch(/\(a worker is alive: \S+:\d+ seen \d+m?s ago\)$/);
    expect(result.stderr).toMatch(/still queued after 8s: no worker picked it up; a worker is alive: \S+:\d+ seen \d+m?s ago, so the workers are busy or cannot run it/);
  }, 120_000);
});

describe('rotate --wait after the last worker went', () => {
  it('the worker gone: after three missed heartbeats (15 s) the line says no worker was seen since, naming the last one', async () => {
    await kill(worker!);
    worker = undefined;
    // Three missed beats without sitting through them: the dead worker's last beat (Redis' clock,
    // `<prefix>:heartbeats`) is moved back by the time they take, as if it had died 15 s earlier.
    const redis = new Redis(h.settings.redisUrl);
    try {
      const key = `${h.settings.queuePrefix}:heartbeats`;
      const [last] = await redis.zrevrange(key, 0, 0);
      await redis.zincrby(key, -HEARTBEAT_STALE_MS, last!);
    } finally {
      redis.disconnect();
    }
    expect((await h.runtime.heartbeats.last())?.ageMs).toBeGreaterThan(HEARTBEAT_STALE_MS);
    const result = await runRekey(['rotate', 'k', '--wait', '--timeout', '3s'], h.childEnv());
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/queued: no worker has picked it up yet \(no worker seen for [^()]+ \(the last was \S+:\d+\): is `rekey worker` running\?\)$/m);
    expect(result.stderr).toMatch(/still queued after 3s: no worker picked it up; no worker seen for [^()]+ \(the last was \S+:\d+\)/);
  }, 120_000);
});
