/**
 * A leak's takedown never waits behind other leaks' replacement rotations: six current keys of
 * slow secrets reported leaked at once (one leaked .env) start six emergency rotations, more than
 * the harness's workers of a queue; a block-first key reported next is blocked as fast as with
 * nothing else going on (its own replacement then waits its turn behind theirs). Before, the
 * emergency rotations ran on the revocations queue, held every one of its workers, and the block
 * waited for one of them to finish (~15 s with ten).
 */
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { latencyConfig, measureLeak, slowDown } from './latency.js';
import { post, startLeakEnv, until, webhookHeaders, type LeakEnv } from './support.js';

let e: LeakEnv;
const agent = new Agent({ keepAlive: true, maxSockets: 2 });
const id = randomUUID().slice(0, 8);
const fast = `fast-${id}`;
const slow = Array.from({ length: 6 }, (_, i) => `slow-${id}-${i}`); // more than the harness's 5 workers of a queue
const names = { journal: `crowd-fast-${id}`, slowJournal: `crowd-slow-${id}` };

beforeAll(async () => {
  e = await startLeakEnv('emergency-crowding');
  await e.h.apply(latencyConfig(e, { fast: [{ name: fast, onLeak: 'block-first' }], slow, ...names }));
  for (const name of [fast, ...slow]) expect((await e.h.rotate(name)).status).toBe('succeeded');
}, 120_000);
afterAll(async () => {
  slowDown({ slow, ...names }, 0);
  agent.destroy();
  await e?.stop();
});

it('a block-first leak is blocked as fast while emergency rotations of other leaked keys hold every worker', async () => {
  await measureLeak(e, fast, agent); // warm-up
  const idle = await measureLeak(e, fast, agent);
  // Every provider call of the slow secrets takes 1 s: their emergency rotations take several seconds.
  slowDown({ slow, ...names }, 1000);
  const reported = await Promise.all(
    slow.map(async (name) => {
      const v = await e.h.runtime.db.version.findFirstOrThrow({ where: { state: 'current', secret: { name } } });
      const body = JSON.stringify({ fingerprint: v.fingerprint });
      return (await post(e.h.serving!.url, '/webhooks/leaks', body, webhookHeaders(e.secrets.webhook, body))).status;
    }),
  );
  expect(reported).toEqual(slow.map(() => 200));
  const { emergencies, revocations } = e.h.runtime.queues.queues;
  const active = async () => ((await emergencies.getJobCounts('active')).active ?? 0) + ((await revocations.getJobCounts('active')).active ?? 0);
  // As many under way as the harness has workers of one queue (5).
  await until(async () => (await active()) >= 5, 30_000);
  const loaded = await measureLeak(e, fast, agent);
  expect(loaded.blockedMs).toBeLessThan(Math.max(1500, idle.blockedMs * 5));
}, 300_000);
