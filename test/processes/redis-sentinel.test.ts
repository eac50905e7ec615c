/**
 * Redis Sentinel failover under load, on real engines of this file's own: a primary, a
 * replica and three sentinels (test/support/redis-ha.ts). rekey (workers and server in
 * process, memory providers, PostgreSQL the shared one) reaches Redis only through
 * `redis+sentinel://`. Rotations run continuously; the primary is SIGKILLed and a leak is
 * reported at once; the sentinels promote the replica; the same workers carry on by
 * themselves. Every requested rotation completes exactly once and the leaked key leaves
 * the target. Measured gaps are printed; only goals with wide margins are asserted.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Harness, startHarness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { tempDir } from '../support/gateways/process.js';
import { RedisSentinelSet } from '../support/redis-ha.js';
import { RotationLoad } from '../support/rotation-load.js';
import { until } from '../support/poll.js';

const JOURNAL = `sentinel-${randomUUID()}`;
const j = journal(JOURNAL);
const DOWN_AFTER_MS = 1000;
const LOOPED = ['s0', 's1', 's2', 's3'];
let dir: Awaited<ReturnType<typeof tempDir>>;
let redis: RedisSentinelSet;
let h: Harness;

const secret = (name: string, extra = '') => `  ${name}:\n    store: { provider: mem }\n    issuer: { provider: mem }\n    targets: [mem]\n    grace: 1s\n${extra}`;

beforeAll(async () => {
  dir = await tempDir('sentinel');
  redis = await RedisSentinelSet.create(dir.path, DOWN_AFTER_MS);
  h = await startHarness({ label: 'sentinel', redisUrl: redis.url, lockDurationMs: 5000 });
  await h.apply(`providers:\n  mem: { type: memory, journal: ${JOURNAL} }\nsecrets:\n${[...LOOPED, 'leaky'].map((s) => secret(s)).join('')}`);
}, 120_000);

afterAll(async () => {
  await Promise.race([h?.stop(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  await redis?.stop();
  await dir?.remove();
});

it('the primary is killed while rotations run and a leak is reported: Sentinel promotes the replica, the same workers carry on, every rotation completes once, the leaked key is refused', async () => {
  expect((await h.rotate('leaky')).status).toBe('succeeded');
  const leaked = (await h.runtime.engine.deps.repo.versions((await h.runtime.engine.deps.repo.getSecret('leaky'))!.id, ['current']))[0]!;
  const fingerprint = leaked.fingerprint!;
  const accepted = () => j.accepted.get('mem')?.has(fingerprint) ?? false;
  expect(accepted()).toBe(true);

  const load = new RotationLoad(h, LOOPED);
  try {
    await until(() => Promise.resolve(load.completedAfter(0, 2)), 60_000, 'two rotations of each secret before the failover');
    const old = await redis.primary();
    const replica = redis.data.find((n) => n !== old)!;

    const killedAt = performance.now();
    await old.kill('SIGKILL');
    // Reported while Redis has no primary: the version is marked in PostgreSQL at once; its job
    // waits for the new primary, unless ioredis ends the connection under it (a connect that
    // meets the failover announcement), which rejects the report: the sender delivers it again.
    const delivery = { source: 'test', deliveryId: randomUUID(), fingerprint, receivedAt: new Date() } as const;
    const report = h.runtime.engine.reportLeak(delivery);
    report.catch(() => undefined);
    const announced = redis.announced(replica);

    // The sentinels kill the promoted replica's client connections: an error here means not yet.
    await until(async () => ((await replica.command('ROLE').catch(() => [])) as string[])[0] === 'master', 60_000, 'the replica promoted');
    const writableAt = performance.now();
    console.log(`promoted after ${Math.round(writableAt - killedAt)} ms`);
    await until(() => Promise.resolve(!accepted()), 60_000, 'the leaked key gone from the target');
    const blockedAt = performance.now();
    const announcedAt = await announced;
    console.log(`leak blocked ${Math.round(blockedAt - writableAt)} ms after the promotion, ${Math.round(blockedAt - announcedAt)} ms after the sentinels named the new primary`);
    const outcome = await report.then(
      (record) => record.outcome,
      async (error: Error) => {
        console.log(`the report was refused during the failover (${error.message}); delivered again`);
        return (await h.runtime.engine.reportLeak(delivery)).outcome;
      },
    );
    expect(outcome).not.toBe('unknown');
    await until(() => Promise.resolve(load.completedAfter(writableAt, 3)), 90_000, 'three rotations of each secret after the failover');
    await load.stop();

    const firstAfter = Math.min(...load.completions.filter((c) => c.at > killedAt).map((c) => c.at));
    const figures = {
      downAfterMs: DOWN_AFTER_MS,
      killToPromotedMs: Math.round(writableAt - killedAt),
      processingGapMs: Math.round(load.gapMs()),
      promotedToFirstRunMs: Math.round(firstAfter - writableAt),
      // Sentinel's own: the leader confirms the promotion (its INFO poll, once a second) before naming it.
      promotedToAnnouncedMs: Math.round(announcedAt - writableAt),
      promotedToLeakBlockedMs: Math.round(blockedAt - writableAt),
      announcedToLeakBlockedMs: Math.round(blockedAt - announcedAt),
      rotations: load.completions.length,
    };
    console.log(`sentinel failover: ${JSON.stringify(figures)}`);
    // Where the leak's seconds went: its secret's audit events, in ms after the sentinels named the new primary.
    const epochOf = (at: number) => Date.now() - (performance.now() - at);
    const events = await h.runtime.db.auditEvent.findMany({ where: { secret: 'leaky', at: { gte: new Date(epochOf(killedAt)) } }, orderBy: { seq: 'asc' }, select: { at: true, action: true } });
    console.log(`leak timeline: ${events.map((e) => `${e.action}@${Math.round(e.at.getTime() - epochOf(announcedAt))}`).join(' ')} blocked@${Math.round(blockedAt - announcedAt)}`);

    expect(await load.problems()).toEqual([]);
    const versions = await h.runtime.db.version.findMany({ where: { secret: { name: 'leaky' } }, select: { id: true, state: true } });
    expect(versions.find((v) => v.id === leaked.id)?.state).toMatch(/compromised|revoked/);
    expect(versions.filter((v) => v.state === 'current')).toHaveLength(1);
    // Wide goals (the issue's: under 10 s of gap for Redis): detection is down-after-milliseconds,
    // the rest is election, promotion and one reconnect; a loaded machine gets 20 s of slack.
    expect(figures.processingGapMs).toBeLessThan(DOWN_AFTER_MS + 30_000);
    expect(figures.promotedToLeakBlockedMs).toBeLessThan(20_000);
  } catch (error) {
    console.log(`load: ${load.describe()}\nlast warnings:\n${h.logs.filter((l) => /"level":(40|50)/.test(l)).slice(-15).join('\n')}`);
    throw error;
  } finally {
    await load.stop();
  }
}, 240_000);
