/**
 * A fleet rotation's --dry-run (src/cli/fleet.ts) tells the truth: it names the secrets the real
 * command would request (for an unfinished fleet, only those it has not requested yet, with the
 * counts so far), and writes nothing: no run, no audit event, no Redis key.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `fleet-dry-${randomUUID()}`;
let h: Harness;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-dry' });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  await h.apply(memoryConfig(JOURNAL, { 'dr-a': '', 'dr-b': '', 'dr-c': '', 'other': '' }));
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

/**
 * What a fleet command writes: audit events, runs, versions, jobs on the queues. (Not every Redis
 * key under the prefix: the in-process workers' housekeeping keys come and go on their own.)
 */
async function written() {
  const { db, queues } = h.runtime;
  const jobs = await Promise.all([queues.queues.rotations.getJobCounts(), queues.queues.revocations.getJobCounts()]);
  return { audit: await db.auditEvent.count(), runs: await db.run.count(), versions: await db.version.count(), jobs };
}

it('names the secrets the real run requests, and writes nothing', async () => {
  const before = await written();
  const dry = await rekey(['rotate', '--selector', 'dr-*', '--dry-run', '--json'], env);
  expect(dry.code).toBe(0);
  expect(JSON.parse(dry.stdout)).toMatchObject({ fleet: null, resumed: false, selected: 3, done: 0, failed: 0, planned: ['dr-a', 'dr-b', 'dr-c'] });
  const text = await rekey(['rotate', '--selector', 'dr-*', '--dry-run'], env);
  expect(text.stdout).toContain('Would request 3 rotations: dr-a, dr-b, dr-c');
  expect(await written()).toEqual(before);

  const real = await rotateFleet(h.runtime, { selector: 'dr-*' }, { dryRun: false, perStore: 10, perTarget: 10, storeRate: 1000, out: () => undefined });
  const rotated = await h.runtime.db.run.findMany({ where: { idempotencyKey: { startsWith: `fleet:${real.fleet}:` } }, select: { secret: { select: { name: true } } } });
  expect(rotated.map((r) => r.secret.name).sort()).toEqual(['dr-a', 'dr-b', 'dr-c']);
});

it('for an unfinished fleet: its counts so far and only the secrets not requested yet', async () => {
  // A fleet of --all whose command died after requesting dr-a (which finished).
  const killed = rotateFleet(h.runtime, { all: true }, { dryRun: false, perStore: 1, perTarget: 10, storeRate: 1000, progressEveryMs: 0, out: (line) => {
    if (line.startsWith('  ')) throw new Error('killed');
  } });
  await expect(killed).rejects.toThrow('killed');
  const [run] = await h.runtime.db.run.findMany({ where: { trigger: 'fleet', status: 'running' }, select: { id: true } });
  await h.waitForRun(run!.id);
  // The run ends in PostgreSQL before its worker lets go of the job.
  await until(async () => (await h.runtime.queues.queues.rotations.getJobCounts('active')).active === 0, 20_000, 'the fleet job let go');
  const before = await written();
  const dry = await rekey(['rotate', '--all', '--dry-run', '--json'], env);
  const result = JSON.parse(dry.stdout) as { resumed: boolean; done: number; planned: string[] };
  expect(result).toMatchObject({ resumed: true, selected: 4, done: 1, failed: 0 });
  expect(result.planned).toHaveLength(3);
  expect(await written()).toEqual(before);
});
