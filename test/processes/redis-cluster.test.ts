/**
 * rekey on a 3-primary Redis Cluster of this file's own (test/support/redis-ha.ts), reached
 * only through `redis+cluster://` with the harness's hash-tagged prefix (`{test-...}`, like
 * the `{rekey}` default): every queue key in one slot, so BullMQ's multi-key scripts never
 * hit CROSSSLOT. The core flows run on it (rotation, retirement at the end of grace, a leak
 * of the current key), then the primary serving rekey's slot is killed and started again
 * while rotations run: the same workers carry on and every rotation completes once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Harness, startHarness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { tempDir } from '../support/gateways/process.js';
import { RedisClusterSet } from '../support/redis-ha.js';
import { RotationLoad } from '../support/rotation-load.js';
import { until } from '../support/poll.js';

const JOURNAL = `cluster-${randomUUID()}`;
const j = journal(JOURNAL);
let dir: Awaited<ReturnType<typeof tempDir>>;
let cluster: RedisClusterSet;
let h: Harness;

const secret = (name: string) => `  ${name}:\n    store: { provider: mem }\n    issuer: { provider: mem }\n    targets: [mem]\n    grace: 1s\n`;

beforeAll(async () => {
  dir = await tempDir('cluster');
  cluster = await RedisClusterSet.create(dir.path);
  h = await startHarness({ label: 'cluster', redisUrl: cluster.url });
  await h.apply(`providers:\n  mem: { type: memory, journal: ${JOURNAL} }\nsecrets:\n${['graced', 'leaky', 'l0', 'l1', 'l2'].map(secret).join('')}`);
}, 120_000);

afterAll(async () => {
  await Promise.race([h?.stop(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  await cluster?.stop();
  await dir?.remove();
});

const repo = () => h.runtime.engine.deps.repo;
const stateOf = async (secret: string, number: number) => (await repo().findVersionByNumber(secret, number))?.state;
const crossSlot = () => h.logs.filter((line) => line.includes('CROSSSLOT'));

it('rotation, retirement at the end of grace and a leak of the current key, on the Cluster', async () => {
  expect((await h.rotate('graced')).status).toBe('succeeded');
  expect((await h.rotate('graced')).status).toBe('succeeded');
  expect(await stateOf('graced', 2)).toBe('current');
  // Version 1's retirement is a delayed job in the Cluster, due when its 1 s grace ends.
  await until(async () => (await stateOf('graced', 1)) === 'revoked', 30_000, 'version 1 retired and revoked');

  expect((await h.rotate('leaky')).status).toBe('succeeded');
  const leaked = (await repo().findVersionByNumber('leaky', 1))!;
  const fingerprint = leaked.fingerprint!;
  expect(j.accepted.get('mem')?.has(fingerprint)).toBe(true);
  const report = await h.runtime.engine.reportLeak({ source: 'test', deliveryId: randomUUID(), fingerprint, receivedAt: new Date() });
  expect(report.outcome).toBe('rotating');
  await until(() => Promise.resolve(!j.accepted.get('mem')?.has(fingerprint)), 30_000, 'the leaked key gone from the target');
  await until(async () => (await stateOf('leaky', 2)) === 'current' && /compromised|revoked/.test(String(await stateOf('leaky', 1))), 30_000, 'the replacement current, the leaked one dead');
  expect(crossSlot()).toEqual([]);
}, 120_000);

it('the primary serving rekey’s slot is killed and restarted while rotations run: the same workers carry on, every rotation completes once', async () => {
  const load = new RotationLoad(h, ['l0', 'l1', 'l2']);
  try {
    await until(() => Promise.resolve(load.completedAfter(0, 2)), 60_000, 'two rotations of each secret before the restart');
    const owner = await cluster.ownerOf(h.env.prefix);
    const killedAt = performance.now();
    await owner.kill('SIGKILL');
    await owner.start(); // the same port, nodes.conf and append-only file
    await cluster.healthy(60_000);
    const healthyAt = performance.now();
    await until(() => Promise.resolve(load.completedAfter(healthyAt, 3)), 90_000, 'three rotations of each secret after the restart');
    await load.stop();
    const firstAfter = Math.min(...load.completions.filter((c) => c.at > killedAt).map((c) => c.at));
    console.log(`cluster primary restart: ${JSON.stringify({ killToHealthyMs: Math.round(healthyAt - killedAt), processingGapMs: Math.round(load.gapMs()), healthyToFirstRunMs: Math.round(firstAfter - healthyAt), rotations: load.completions.length })}`);
    expect(await load.problems()).toEqual([]);
    expect(crossSlot()).toEqual([]);
  } catch (error) {
    console.log(`load: ${load.describe()}\nlast warnings:\n${h.logs.filter((l) => /"level":(40|50)/.test(l)).slice(-15).join('\n')}`);
    throw error;
  } finally {
    await load.stop();
  }
}, 240_000);
