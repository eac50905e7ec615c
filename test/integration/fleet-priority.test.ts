/**
 * A fleet rotation's runs take the rotations queue's lower-priority path: queued before a
 * manual rotation, they are still taken after it; a leak's emergency rotation of a secret whose
 * fleet run waits is moved to the emergencies queue. The jobs are taken by a plain BullMQ worker
 * that only records their order (no rotation runs), one at a time.
 */
import { Worker } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RotationRequestResult } from '../../src/core/requests.js';
import { jobId } from '../../src/queue/names.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet-priority', workers: false });
  const secret = (name: string) => `  ${name}: { store: { provider: vault }, issuer: { type: random }, targets: [] }\n`;
  await h.apply(`
providers:
  vault: { type: local }
secrets:
${['f1', 'f2', 'f3', 'manual', 'leaky'].map(secret).join('')}`);
}, 120_000);

afterAll(async () => {
  await h.stop();
});

/** The run a request made or joined. */
const runOf = (result: RotationRequestResult): string => {
  if (result.status === 'stale') throw new Error('stale request');
  return result.run.id;
};

it('takes a manual rotation before fleet runs queued earlier; a leak moves its fleet run to the emergencies queue', async () => {
  const { engine, queues } = h.runtime;
  const fleet: string[] = [];
  for (const secret of ['f1', 'f2', 'f3', 'leaky']) fleet.push(runOf(await engine.requestRotation({ secret, trigger: 'fleet', idempotencyKey: `fleet:t:${secret}` })));
  const manual = runOf(await engine.requestRotation({ secret: 'manual', trigger: 'manual', idempotencyKey: 'manual:t' }));
  expect(await queues.queues.rotations.getJobState(jobId.run(fleet[0]!))).toBe('prioritized');
  expect(await queues.queues.rotations.getJobState(jobId.run(manual))).toBe('waiting');

  // The leak path asks for an urgent rotation of leaky: its waiting fleet run joins it, on the emergencies queue.
  const urgent = await engine.requestRotation({ secret: 'leaky', trigger: 'leak', idempotencyKey: 'leak:t', urgent: true });
  expect(runOf(urgent)).toBe(fleet[3]);
  expect(await queues.queues.emergencies.getJobState(jobId.run(fleet[3]!))).toBe('waiting');
  expect(await queues.queues.rotations.getJob(jobId.run(fleet[3]!))).toBeUndefined();

  const taken: string[] = [];
  const worker = new Worker(
    'rotations',
    (job) => {
      if (job.name === 'run') taken.push((job.data as { runId: string }).runId); // not the audit anchor's scheduled job
      return Promise.resolve();
    },
    { connection: h.runtime.redis, prefix: h.settings.queuePrefix, concurrency: 1 },
  );
  try {
    const deadline = Date.now() + 30_000;
    while (taken.length < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    await worker.close();
  }
  expect(taken).toEqual([manual, fleet[0], fleet[1], fleet[2]]);
});
