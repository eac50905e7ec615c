/**
 * SIGTERM drains a worker: the job in flight either finishes within REKEY_DRAIN_TIMEOUT
 * or goes back to the queue; the process exits within the drain window; no job is lost.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kill, type Spare, spareWorker } from '../support/processes.js';
import { startHarness, type Harness } from '../support/harness.js';
import { deleteKeys } from '../support/isolation.js';

let h: Harness;
const KEYSET = `rekey-drain-${randomUUID().slice(0, 8)}:`;

/** Each test's first worker, loaded ahead (spareWorker), with the drain window it tests. */
const spares = new Map<string, Spare>();

beforeAll(async () => {
  h = await startHarness({ label: 'shutdown', workers: false });
  for (const drain of ['10s', '1s']) spares.set(drain, spareWorker({ ...h.childEnv(), REKEY_DRAIN_TIMEOUT: drain }));
});
afterAll(async () => {
  await Promise.all([...spares.values()].map((spare) => spare.discard()));
  await h.stop();
  await deleteKeys(`${KEYSET}*`);
});

async function applyWithDelay(secret: string, delayMs: number) {
  await h.apply(`
providers:
  vault: { type: local }
  edge: { type: slow-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c", delayMs: ${delayMs} }
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random }
    targets: [edge]
    timeout: 20s
`);
}

async function sigtermDuringDeploy(secret: string, drain: string) {
  const worker = await spares.get(drain)!.start();
  const request = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (request.status === 'stale') throw new Error('stale');
  const deadline = Date.now() + 20_000;
  while ((await h.runtime.engine.deps.repo.getRun(request.run.id))?.step !== 'deploy') {
    if (Date.now() > deadline) throw new Error('never reached deploy');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const sent = Date.now();
  const code = await kill(worker, 'SIGTERM');
  return { runId: request.run.id, code, exitedAfterMs: Date.now() - sent, output: worker.output() };
}

it('finishes the step in flight when it fits in the drain window', async () => {
  await applyWithDelay('drain-fits', 1500);
  const { runId, code, exitedAfterMs, output } = await sigtermDuringDeploy('drain-fits', '10s');
  expect(code).toBe(0);
  expect(output).toContain('draining');
  expect(exitedAfterMs).toBeLessThan(10_000);
  // The worker kept going through deploy and verify (1.5 s each) before exiting.
  expect(exitedAfterMs).toBeGreaterThan(1000);
  const run = await h.runtime.engine.deps.repo.getRun(runId);
  expect(run?.status).toBe('succeeded');
}, 60_000);

it('returns the job to the queue when it does not fit, and another worker completes it', async () => {
  await applyWithDelay('drain-short', 4000);
  // The worker that completes the run, loading while the first one is stopped.
  const next = spareWorker(h.childEnv());
  spares.set('next', next);
  const { runId, code, exitedAfterMs, output } = await sigtermDuringDeploy('drain-short', '1s');
  expect(code).toBe(0);
  expect(output).toContain('drain timeout');
  expect(exitedAfterMs, output.split('\n').filter((l) => /drain|stopped/.test(l)).join('\n')).toBeLessThan(3500);
  expect((await h.runtime.engine.deps.repo.getRun(runId))?.status).toBe('running');
  const worker = await next.start();
  try {
    const run = await h.waitForRun(runId, 40_000);
    expect(run.status).toBe('succeeded');
  } finally {
    await kill(worker);
  }
}, 90_000);
