/**
 * Rows of the README failure matrix not covered elsewhere: a store unreachable (a rotation
 * rolls back with the current version untouched; a leak is still blocked at the target
 * while the store is down), a target down when a leak arrives (the takedown keeps trying,
 * so the key is refused soon after the target answers again) and an issuer failing (nothing is stored or deployed), with
 * what the operator sees in `rekey status` and /metrics.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { formatStatus, secretStatus } from '../../src/cli/status.js';
import { fingerprint } from '../conformance/refs.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

let h: Harness;
const JOURNAL = `matrix-${randomUUID()}`;
const j = journal(JOURNAL);
const STORE_CALLS = ['store.writePending', 'store.read', 'store.promote', 'store.destroy', 'store.list'];

beforeAll(async () => {
  h = await startHarness({ label: 'failure-matrix' });
});
afterAll(() => h.stop());
beforeEach(() => j.reset());

async function secret(backoff = '50ms'): Promise<string> {
  const name = `matrix-${randomUUID().slice(0, 8)}`;
  await h.apply(memoryConfig(JOURNAL, { [name]: `grace: 1h, retry: { attempts: 3, backoff: ${backoff} }` }));
  return name;
}

const accepted = () => [...(j.accepted.get('edge')?.keys() ?? [])];

it('a store unreachable: the rotation retries then rolls back, the current key untouched; a leak is blocked at the target while the store is still down', async () => {
  const name = await secret();
  for (let i = 0; i < 2; i++) expect((await h.rotate(name)).status).toBe('succeeded');
  const current = (await h.runtime.engine.deps.repo.findVersionByNumber(name, 2))!;
  const previous = (await h.runtime.engine.deps.repo.findVersionByNumber(name, 1))!;

  for (const call of STORE_CALLS) j.fail(call, Infinity, true);
  const request = await h.runtime.engine.requestRotation({ secret: name, trigger: 'manual' });
  if (request.status === 'stale') throw new Error('stale');
  // What `rekey status` shows while it retries.
  await expect.poll(async () => formatStatus(await secretStatus(h.runtime, name)), { timeout: 10_000, interval: 20 }).toMatch(
    /running: rotation .* at issue \(attempt \d+, last error: REKEY_ERR_UNAVAILABLE \(memory\): injected failure at store\.writePending\)/,
  );
  const run = await h.waitForRun(request.run.id);
  expect(run.status).toBe('rolled_back');
  expect((await h.runtime.engine.deps.repo.currentVersion(current.secretId))?.id).toBe(current.id);
  expect(accepted()).toContain(current.fingerprint);

  // Leak of the previous version with the store still down: the target refuses it at once.
  await h.runtime.engine.revoke(name, 1);
  await expect.poll(() => accepted(), { timeout: 10_000, interval: 20 }).not.toContain(previous.fingerprint);
  expect((await h.runtime.engine.deps.repo.getVersion(previous.id))?.state).toBe('compromised'); // store.destroy still failing
  const metrics = await h.runtime.metrics.registry.getSingleMetricAsString('rekey_rotations_total');
  expect(metrics).toMatch(/rekey_rotations_total\{result="rolled_back",trigger="manual"\} [1-9]/);

  j.reset(); // the store is back: the revocation completes by itself
  await expect.poll(async () => (await h.runtime.engine.deps.repo.getVersion(previous.id))?.state, { timeout: 15_000 }).toBe('revoked');
});

it('an issuer failing: no value reaches the store or a target; the run rolls back after its last attempt', async () => {
  const name = await secret();
  expect((await h.rotate(name)).status).toBe('succeeded');
  const before = accepted();
  const stored = j.stored.size;
  j.calls.length = 0;
  j.fail('issue', Infinity, true);
  const run = await h.rotate(name);
  expect(run.status).toBe('rolled_back');
  expect(run.error).toContain('injected failure at issue');
  expect(j.calls.filter((c) => c === 'issue')).toHaveLength(3);
  expect(j.calls.filter((c) => c.startsWith('store.') || c.startsWith('deploy:'))).toEqual([]);
  expect(j.stored.size).toBe(stored);
  expect(accepted()).toEqual(before);
  const current = await h.runtime.engine.deps.repo.findVersionByNumber(name, 1);
  expect(current?.state).toBe('current');
  expect(before).toContain(fingerprint(j.issued.get((current!.issuerState as { serial: string }).serial)!));
});

it('a target down when a leak arrives: the takedown keeps retrying every 2 s at most, whatever the rotation backoff, and the key is refused soon after the target answers', async () => {
  // retry.backoff 2s: three attempts over 6 s, then reconcile. A takedown must not follow it.
  const name = await secret('2s');
  for (let i = 0; i < 2; i++) expect((await h.rotate(name)).status).toBe('succeeded');
  const previous = (await h.runtime.engine.deps.repo.findVersionByNumber(name, 1))!;
  j.fail('retire:edge', Infinity, true);
  await h.runtime.engine.revoke(name, 1);
  // Gate on the tries themselves, noting when each one is seen: six tries outlast the
  // rotation's budget (three attempts), and their spacing is the cadence on this machine now.
  const tries = () => j.calls.filter((c) => c === 'retire:edge').length;
  const seenAt: number[] = [];
  await expect
    .poll(() => {
      while (seenAt.length < tries()) seenAt.push(Date.now());
      return seenAt.length;
    }, { timeout: 120_000, interval: 20 })
    .toBeGreaterThanOrEqual(6);
  expect(accepted()).toContain(previous.fingerprint);
  const [before, last] = [seenAt.at(-2)! - seenAt.at(-3)!, seenAt.at(-1)! - seenAt.at(-2)!];
  // Steady, not doubling like the rotation's backoff (2 s, 4 s, 8 s): the last gap is not
  // half again as long as the one before, give or take a second of load.
  expect(last).toBeLessThan(1.5 * before + 1000);
  j.reset();
  const back = Date.now();
  await expect.poll(() => accepted(), { timeout: 120_000, interval: 20 }).not.toContain(previous.fingerprint);
  // The next try comes on that cadence (2 s on an idle machine); one more cadence of slack for the load.
  expect(Date.now() - back).toBeLessThan(2 * Math.max(before, last) + 500);
}, 300_000);
