/**
 * The retirement a promotion leaves is queued in one Redis round trip: the version it moved out
 * of `current` has no retirement job yet, so its add is not preceded by a lookup of one (one
 * HGETALL per rotation before). Every other caller still looks first, so an earlier time moves an
 * existing job forward; and a promotion's add that meets a job added meanwhile keeps that job's
 * earlier time. No workers run: rotations are driven in this process, and the jobs stay queued.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { retirementDue } from '../../src/core/context.js';
import type { VersionRecord } from '../../src/core/model.js';
import { jobId } from '../../src/queue/names.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

const JOURNAL = `retirement-queue-${randomUUID()}`;
journal(JOURNAL);
const RETRY = { attempts: 3, backoffMs: 1000 };

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'retirement-queue', workers: false });
}, 60_000);
afterAll(() => h?.stop());

/** A new secret rotated twice (the second promotion displaces the first version): the first version, previous. */
async function displaced(grace: string): Promise<{ secret: string; previous: VersionRecord; commands: string[][] }> {
  const secret = `s-${randomUUID().slice(0, 8)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: `grace: ${grace}` }));
  await rotate(secret);
  // The commands this process sends during the second rotation (BullMQ's included), each as its name and arguments.
  const commands: string[][] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method -- wrapped and restored below, always called with its client
  const original = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: Redis, command, stream) {
    commands.push([command.name, ...command.args.map(String)]);
    return original.call(this, command, stream);
  };
  try {
    await rotate(secret);
  } finally {
    Redis.prototype.sendCommand = original;
  }
  const [previous] = await h.runtime.engine.deps.repo.versions((await h.runtime.engine.deps.repo.getSecret(secret))!.id, ['previous']);
  return { secret, previous: previous!, commands };
}

async function rotate(secret: string): Promise<void> {
  const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  expect(await h.runtime.engine.driveRotation(result.run.id, { final: true })).toBe('succeeded');
}

/**
 * When the version's retirement job is due (ms since the epoch), as BullMQ's delayed set orders it
 * (its score is the due time times 4096, plus a tie-breaker): a job's `opts.delay` keeps the delay
 * it was added with when a changeDelay moves it.
 */
async function due(versionId: string): Promise<number | undefined> {
  const retirements = h.runtime.queues.queues.retirements;
  const score = await h.runtime.redis.zscore(retirements.toKey('delayed'), jobId.retire(versionId));
  return score === null ? undefined : Math.floor(Number(score) / 0x1000);
}

it('queues the retirement a promotion leaves at the end of its grace, with no lookup of the job first', async () => {
  const { previous, commands } = await displaced('1h');
  const job = jobId.retire(previous.id);
  // Its add (BullMQ's addDelayedJob script) and nothing else: no HGETALL of the job's key before it.
  expect(commands.filter((c) => c.some((a) => a.includes(job))).map((c) => c[0])).toEqual(['evalsha']);
  const at = await due(previous.id);
  expect(at).toBeDefined();
  expect(Math.abs(at! - retirementDue(previous.graceEndsAt!).getTime())).toBeLessThan(1000);
}, 30_000);

it('moves an existing retirement forward when another caller asks for an earlier time', async () => {
  const { previous } = await displaced('1h');
  const earlier = new Date(Date.now() + 60_000);
  await h.runtime.queues.scheduleRetirement(previous.id, earlier, RETRY);
  expect(Math.abs((await due(previous.id))! - earlier.getTime())).toBeLessThan(1000);
}, 30_000);

it("keeps an earlier retirement added before a promotion's own (a later promotion that cut the grace)", async () => {
  const { previous } = await displaced('1h');
  const earlier = new Date(Date.now() + 60_000);
  await h.runtime.queues.scheduleRetirement(previous.id, earlier, RETRY);
  await h.runtime.queues.scheduleRetirement(previous.id, retirementDue(previous.graceEndsAt!), { ...RETRY, fresh: true });
  expect(Math.abs((await due(previous.id))! - earlier.getTime())).toBeLessThan(1000);
}, 30_000);

it('keeps a retirement moved forward when a later caller asks for a time between the two (its due time read from the delayed set, not from the delay it was added with)', async () => {
  const { previous } = await displaced('1h');
  const earlier = new Date(Date.now() + 60_000);
  await h.runtime.queues.scheduleRetirement(previous.id, earlier, RETRY);
  await h.runtime.queues.scheduleRetirement(previous.id, new Date(Date.now() + 30 * 60_000), RETRY);
  expect(Math.abs((await due(previous.id))! - earlier.getTime())).toBeLessThan(1000);
}, 30_000);
