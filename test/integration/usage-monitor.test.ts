/**
 * The usage check (src/core/usage.ts) driven one read at a time against the redis-keyset
 * provider on the real Redis: the test records traffic with the middleware's own recorder and
 * calls UsageMonitor.check itself (no `usage:` schedule on the providers), so each window is a
 * call it makes, not a timer it waits for.
 * - a secret on two throttling targets, throttled at both, is released at both once its
 *   cool-down has passed and the rule no longer fires;
 * - a new config revision (new provider instances) is no window of its own: steady traffic
 *   under a ceiling stays under it across an apply;
 * - a throttle outlives the process that set it: another monitor (a restarted worker, another
 *   replica) lifts it once its cool-down has passed;
 * - a check that fails after its read (PostgreSQL away a moment) loses no use: the next check
 *   records it, and usage-aware retirement does not cut the grace of a version used meanwhile;
 * - clients moving to a new key during the overlap teach its baseline: once the old key is
 *   retired, the new key's normal traffic is no spike that revokes it;
 * - a new config revision's first read counts nothing (a source starts its counts there): the
 *   time before it is not taken as observed unused, so no grace is cut over a use it missed;
 * - a revoke rule held back inside an overlap did not act, so its cool-down does not hold it
 *   back once the overlap is over: abuse that goes on is revoked two windows later.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageMonitor } from '../../src/core/usage.js';
import { PrismaUsageRepository } from '../../src/db/usage.js';
import { UsageRecorder } from '../../providers/redis-keyset/usage-recorder.js';
import { deleteKeys } from '../support/isolation.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';
import { REDIS_URL } from '../support/services.js';

const P = `rekey-usage-monitor-${randomUUID().slice(0, 8)}:`;
const USAGE = { prefix: `${P}usage:`, bucketMs: 500 };
const WINDOW_MS = 1000;
const twice = `ut-${randomUUID().slice(0, 8)}`;
const steady = `us-${randomUUID().slice(0, 8)}`;
const retiring = `uq-${randomUUID().slice(0, 8)}`;
const moving = `um-${randomUUID().slice(0, 8)}`;
const applied = `ua-${randomUUID().slice(0, 8)}`;
const abused = `ub-${randomUUID().slice(0, 8)}`;

let h: Harness;
let redis: Redis;
let recorder: UsageRecorder;
let monitor: UsageMonitor;

const provider = (name: string) => JSON.stringify({ type: 'redis-keyset', keyPrefix: `${P}${name}:`, channel: `${P}c`, usageCounters: USAGE, drift: { interval: '1h' } });
const config = (extra = '') => `
providers:
  vault: { type: local }
  api-a: ${provider('a')}
  api-b: ${provider('b')}
  api-r: ${JSON.stringify({ ...JSON.parse(provider('r')), usage: { interval: '1s' } })}
secrets:
  ${twice}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ut_ }
    targets: [{ provider: api-a, set: s }, { provider: api-b, set: s }]
    usage: { rules: [{ name: ceiling, metric: rate, above: 50, action: throttle, cooldown: 1s }] }
  ${steady}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_us_ }
    targets: [{ provider: api-a, set: s }]
    usage: { rules: [{ name: ceiling, metric: rate, above: 35, action: throttle, cooldown: 1s }] }
  ${retiring}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_uq_ }
    targets: [{ provider: api-r, set: s }]
    grace: 1h
    retire: { whenUnusedFor: 3s, maxGrace: 1h }
  ${moving}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_um_ }
    targets: [{ provider: api-a, set: m }]
    grace: 8s
    usage: { baseline: { halfLife: 1s }, rules: [{ name: spike, metric: rate, factor: 5, minRate: 1, action: revoke, cooldown: 1s }] }
  ${applied}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ua_ }
    targets: [{ provider: api-r, set: a }]
    grace: 1h
    retire: { whenUnusedFor: 3s, maxGrace: 1h }
  ${abused}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ub_ }
    targets: [{ provider: api-a, set: b }]
    grace: 6s
    usage: { rules: [{ name: abuse, metric: rate, above: 20, action: revoke, cooldown: 1h }] }
${extra}`;

const fingerprintOf = async (secret: string) => (await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } })).fingerprint!;
/** The keyset value of the secret's key at a target: `throttled:<consumer>` while throttled. */
const valueAt = async (target: 'a' | 'b', secret: string) => redis.hget(`${P}${target}:s`, await fingerprintOf(secret));
const anomalies = async (secret: string) => h.runtime.db.auditEvent.findMany({ where: { chain: secret, action: 'usage.anomaly' } });
const pace = () => new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
/** One read of `twice` at both targets by `m`. */
const checkBoth = async (m = monitor) => {
  await m.check('api-a', [twice], WINDOW_MS);
  await m.check('api-b', [twice], WINDOW_MS);
};
/** Whether `twice` is no longer throttled at `target`. */
const released = async (target: 'a' | 'b') => !(await valueAt(target, twice))!.startsWith('throttled:');
/** A spike of `twice` well over both ceilings, read at both targets: it is then throttled at both. */
async function throttleAtBoth(): Promise<void> {
  await checkBoth();
  const fp = await fingerprintOf(twice);
  for (let i = 0; i < 300; i++) recorder.record(fp, '127.0.0.0/24', false);
  await recorder.flush();
  await checkBoth();
  expect([await valueAt('a', twice), await valueAt('b', twice)].map((v) => v?.startsWith('throttled:'))).toEqual([true, true]);
}
/** A monitor of its own, as a new worker has: no reads, baselines or cool-downs yet. */
const newMonitor = (repo = new PrismaUsageRepository(h.runtime.db, h.runtime.audit)) => new UsageMonitor(h.runtime.engine.deps, repo);
/** Versions 1 and 2 of `secret`. */
const firstTwo = (secret: string) => Promise.all([1, 2].map((number) => h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, number } })));
/** One window at api-a read by `m`: `n` requests with `fingerprint`, a window's wait, then the check of `secret`. */
const windowAtA = (m: UsageMonitor, secret: string, fingerprint: string) => async (n: number) => {
  for (let i = 0; i < n; i++) recorder.record(fingerprint, '127.0.0.0/24', false);
  await recorder.flush();
  await pace();
  await m.check('api-a', [secret], WINDOW_MS);
};
/** One use of `fingerprint`, recorded in Redis. */
const useOnce = async (fingerprint: string) => (recorder.record(fingerprint, '127.0.0.0/24', false), await recorder.flush());
/** `m`'s first read of `secret` at api-r, then four windows in each of which `fingerprint` is used once. */
async function keepUsing(m: UsageMonitor, secret: string, fingerprint: string): Promise<void> {
  await m.check('api-r', [secret], WINDOW_MS);
  for (let i = 0; i < 4; i++) {
    await useOnce(fingerprint);
    await pace();
    await m.check('api-r', [secret], WINDOW_MS);
  }
}

beforeAll(async () => {
  h = await startHarness({ label: 'usage-monitor' });
  // The tests make every read themselves (api-r's usage: interval is only there for retire:).
  await h.runtime.usage.stop();
  await h.apply(config());
  for (const name of [twice, steady, retiring, moving, applied, abused]) expect((await h.rotate(name, 60_000)).status).toBe('succeeded');
  redis = new Redis(REDIS_URL);
  recorder = new UsageRecorder(redis, USAGE, 100);
  monitor = newMonitor();
}, 60_000);

afterAll(async () => {
  await recorder?.close();
  await deleteKeys(`${P}*`);
  redis?.disconnect();
  await h?.stop();
});

describe('the usage check, one read at a time', () => {
  it('releases a throttle at every target that set it, once the cool-down has passed and the rule no longer fires', async () => {
    await throttleAtBoth();
    // No more traffic: after the cool-down the first quiet window releases it.
    await until(async () => (await checkBoth(), await released('a')), 20_000, 'released at api-a');
    // api-b's cool-down ends a moment later (it was throttled after api-a): a few more quiet windows at most.
    await until(async () => (await checkBoth(), await released('b')), 5_000, 'released at api-b');
    expect(await valueAt('b', twice)).toBe(await valueAt('a', twice));
    const events = await h.runtime.db.auditEvent.findMany({ where: { chain: twice, action: 'usage.released' } });
    expect(events.map((e) => (e.data as { target: string }).target).sort()).toEqual(['api-a', 'api-b']);
  }, 60_000);

  it('a new config revision is no spike: steady traffic under a ceiling stays under it across an apply', async () => {
    const fp = await fingerprintOf(steady);
    // About 20 requests/s, well under the ceiling of 35.
    const traffic = setInterval(() => recorder.record(fp, '127.0.0.0/24', false), 50);
    try {
      // Ten windows: the key's running total is then more than the few seconds of buckets a reader starts from.
      await monitor.check('api-a', [steady], WINDOW_MS);
      for (let i = 0; i < 10; i++) {
        await pace();
        await monitor.check('api-a', [steady], WINDOW_MS);
      }
      expect(await anomalies(steady)).toEqual([]);
      const before = (await h.runtime.resolver.resolve(steady)).targets.get('api-a');
      await h.apply(config(`  ${steady}-other:\n    store: { provider: vault }\n    issuer: { type: random }\n    targets: [{ provider: api-b, set: other }]\n`));
      await until(async () => (await h.runtime.resolver.resolve(steady)).targets.get('api-a') !== before, 10_000, 'the new revision resolved');
      // The first read of the new instances right away (a window about as long as the apply), then two more.
      for (let i = 0; i < 3; i++) {
        await monitor.check('api-a', [steady], WINDOW_MS);
        await pace();
      }
      expect((await anomalies(steady)).map((e) => e.data)).toEqual([]);
      expect(await valueAt('a', steady)).not.toMatch(/^throttled:/);
    } finally {
      clearInterval(traffic);
    }
  }, 60_000);

  it('a throttle outlives the worker that set it: a new monitor (a restarted worker) lifts it at both targets', async () => {
    await throttleAtBoth();
    // The worker that throttled it is gone; a new one knows nothing of it but what the audit log says.
    const restarted = newMonitor();
    await until(async () => (await checkBoth(restarted), (await released('a')) && (await released('b'))), 20_000, 'released at both targets by the new monitor');
  }, 60_000);

  it('a throttle whose rule was removed (the rule was wrong) is lifted after its cool-down all the same', async () => {
    await throttleAtBoth();
    // The operator removes the rule (no usage: at all for the secret now).
    const before = (await h.runtime.resolver.resolve(twice)).policy.usage;
    await h.apply(config().replace(/ {4}usage: \{ rules: \[\{ name: ceiling, metric: rate, above: 50[^\n]*\n/, ''));
    await until(async () => (await h.runtime.resolver.resolve(twice)).policy.usage !== before, 10_000, 'the revision without the rule resolved');
    await until(async () => (await checkBoth(), (await released('a')) && (await released('b'))), 20_000, 'released at both targets without a rule');
  }, 60_000);

  it('a check that fails after its read loses no use: the next check records it, and no grace is cut over it', async () => {
    expect((await h.rotate(retiring, 60_000)).status).toBe('succeeded');
    const old = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: retiring }, number: 1 } });
    expect(old.state).toBe('previous');
    // PostgreSQL away for one check: recording the window's uses fails once.
    let failNext = false;
    const repo = new PrismaUsageRepository(h.runtime.db, h.runtime.audit);
    const recordUse = repo.recordUse.bind(repo);
    repo.recordUse = (ids, at) => (failNext ? ((failNext = false), Promise.reject(new Error('connection terminated'))) : recordUse(ids, at));
    const m = newMonitor(repo);
    const lastUsed = async () => (await h.runtime.db.version.findUniqueOrThrow({ where: { id: old.id } })).lastUsedAt?.getTime() ?? 0;
    // The old key stays in use for more than whenUnusedFor: never cut.
    await keepUsing(m, retiring, old.fingerprint!);
    await useOnce(old.fingerprint!);
    const usedAt = Date.now();
    await pace();
    failNext = true;
    await m.check('api-r', [retiring], WINDOW_MS);
    expect(failNext).toBe(false);
    // Two quiet windows later the old key was last used about two seconds ago: still in use (whenUnusedFor 3s).
    for (let i = 0; i < 2; i++) {
      await pace();
      await m.check('api-r', [retiring], WINDOW_MS);
    }
    expect(await h.runtime.db.auditEvent.findMany({ where: { chain: retiring, action: 'version.grace-cut' } })).toEqual([]);
    expect((await h.runtime.db.version.findUniqueOrThrow({ where: { id: old.id } })).state).toBe('previous');
    expect(await lastUsed()).toBeGreaterThanOrEqual(usedAt);
  }, 60_000);

  it('clients moving to the new key during the overlap are its baseline afterwards: no revocation once the old key is retired', async () => {
    expect((await h.rotate(moving, 60_000)).status).toBe('succeeded');
    const [v1, v2] = await firstTwo(moving);
    expect([v1!.state, v2!.state]).toEqual(['previous', 'current']);
    const m = newMonitor();
    /** One window of `n` requests with the new key. */
    const window = windowAtA(m, moving, v2!.fingerprint!);
    await m.check('api-a', [moving], WINDOW_MS);
    // A few early clients: the new key's baseline warms up (two half-lives) at a few requests per window.
    for (let i = 0; i < 4; i++) await window(3);
    // The rest of the clients move during the overlap: 20x, not revoked inside it.
    await until(async () => (await window(60), ['retired', 'revoked'].includes((await h.runtime.db.version.findUniqueOrThrow({ where: { id: v1!.id } })).state)), 30_000, 'the old key retired at the end of its grace');
    // The same traffic after the overlap is the key's normal use.
    for (let i = 0; i < 4; i++) await window(60);
    const revoked = (await anomalies(moving)).filter((e) => (e.data as { done: string }).done === 'revoked');
    expect(revoked.map((e) => e.data)).toEqual([]);
    expect((await h.runtime.db.version.findUniqueOrThrow({ where: { id: v2!.id } })).state).toBe('current');
  }, 60_000);

  it('a new config revision is no gap taken for disuse: no grace is cut over a use its first read could not count', async () => {
    expect((await h.rotate(applied, 60_000)).status).toBe('succeeded');
    const old = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: applied }, number: 1 } });
    const m = newMonitor();
    // The old key stays in use.
    await keepUsing(m, applied, old.fingerprint!);
    // Two seconds later it is used once more, just before an apply.
    await pace();
    await pace();
    await useOnce(old.fingerprint!);
    const usedAt = Date.now();
    const before = (await h.runtime.resolver.resolve(applied)).targets.get('api-r');
    await h.apply(config(`  ${applied}-other:\n    store: { provider: vault }\n    issuer: { type: random }\n    targets: [{ provider: api-b, set: other }]\n`));
    await until(async () => (await h.runtime.resolver.resolve(applied)).targets.get('api-r') !== before, 10_000, 'the new revision resolved');
    // The new instances' first read, then quiet windows while that use is within whenUnusedFor (3s): no grace is cut.
    await m.check('api-r', [applied], WINDOW_MS);
    while (Date.now() < usedAt + 1500) {
      await pace();
      await m.check('api-r', [applied], WINDOW_MS);
    }
    expect(await h.runtime.db.auditEvent.findMany({ where: { chain: applied, action: 'version.grace-cut' } })).toEqual([]);
    expect((await h.runtime.db.version.findUniqueOrThrow({ where: { id: old.id } })).state).toBe('previous');
  }, 60_000);

  it('a revoke held back inside an overlap acts once the overlap is over, not after its cool-down', async () => {
    expect((await h.rotate(abused, 60_000)).status).toBe('succeeded');
    const [v1, v2] = await firstTwo(abused);
    const m = newMonitor();
    /** One window of `n` requests with the new key. */
    const window = windowAtA(m, abused, v2!.fingerprint!);
    await m.check('api-a', [abused], WINDOW_MS);
    // The new key is abused over the ceiling inside the overlap: held back.
    await until(async () => (await window(100), ['retired', 'revoked'].includes((await h.runtime.db.version.findUniqueOrThrow({ where: { id: v1!.id } })).state)), 30_000, 'the old key retired at the end of its grace');
    expect((await anomalies(abused)).map((e) => (e.data as { done: string }).done)).toContain('not-revoked: inside a rotation overlap');
    // The abuse goes on after it: revoked after the rule's two windows (a few more on a loaded machine).
    for (let i = 0; i < 5; i++) await window(100);
    expect((await anomalies(abused)).map((e) => (e.data as { done: string }).done)).toContain('revoked');
  }, 60_000);
});
