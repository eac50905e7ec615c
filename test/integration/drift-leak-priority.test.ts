/**
 * Drift repairs share the revocations queue with leak takedowns (they get its retries). A drift
 * check that finds many unwanted keys at a slow target (a gateway restored from an old backup,
 * whose retires are serialized on one file) queues one job per key; a leak reported meanwhile
 * must not wait behind that backlog: it is taken at the next free slot. Workers in process; the
 * slow target is the memory target with its retire calls held, so the order is exact.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, type Journal } from '../support/memory-provider.js';

let h: Harness;
let j: Journal;
const JOURNAL = `drift-leak-${randomUUID().slice(0, 8)}`;
const restored = `dl-${randomUUID().slice(0, 8)}`;
const leaked = `dk-${randomUUID().slice(0, 8)}`;
/** Unwanted keys found at once: more than the harness's 5 revocation workers. */
const UNWANTED = 8;

beforeAll(async () => {
  j = journal(JOURNAL);
  h = await startHarness({ label: 'drift-leak' });
  await h.apply(`
providers:
  mem: { type: memory, journal: ${JOURNAL} }
  edge: { type: memory, journal: ${JOURNAL}, drift: { interval: 1h } }
  edge2: { type: memory, journal: ${JOURNAL}, drift: { interval: 1h } }
secrets:
  ${restored}: { store: { provider: mem }, issuer: { provider: mem }, targets: [edge], grace: 1h, retry: { attempts: 1, backoff: 10ms } }
  ${leaked}: { store: { provider: mem }, issuer: { provider: mem }, targets: [edge2], grace: 1h, retry: { attempts: 1, backoff: 10ms } }
`);
  // Rolled-back versions: refused everywhere.
  for (let i = 0; i < UNWANTED; i++) {
    j.fail('verify:edge', 1, false);
    expect((await h.rotate(restored)).status).toBe('rolled_back');
  }
  expect((await h.rotate(leaked)).status).toBe('succeeded');
  expect((await h.rotate(leaked)).status).toBe('succeeded');
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

it('a leak takedown queued behind a drift repair backlog is taken at the next free worker', async () => {
  const deps = h.runtime.engine.deps;
  // Held before the keys are put back, so a periodic check of this worker that finds them first is held alike.
  const retires = Array.from({ length: UNWANTED }, () => j.hold('retire:edge'));
  const takedown = j.hold('retire:edge2');
  const edge = j.accepted.get('edge') ?? new Map<string, string>();
  j.accepted.set('edge', edge);
  for (let n = 1; n <= UNWANTED; n++) edge.set((await deps.repo.findVersionByNumber(restored, n))!.fingerprint!, restored);
  try {
    // The restored gateway: every old key is queued for retirement, five are being retired (slowly).
    expect((await h.runtime.engine.checkTarget('edge', [restored], { repair: true })).results[0]!.retiring).toHaveLength(UNWANTED);
    await Promise.all(retires.slice(0, 5).map((r) => r.reached));
    // A leak of the other secret's previous key, reported now.
    await h.runtime.engine.revoke(leaked, 1);
    // One retire at the slow gateway finishes: the free worker takes the leak, not the next repair.
    retires[0]!.release();
    const next = await Promise.race([takedown.reached.then(() => 'leak takedown'), retires[5]!.reached.then(() => 'drift repair')]);
    expect(next).toBe('leak takedown');
  } finally {
    takedown.release();
    for (const r of retires) r.release();
  }
  await expect.poll(async () => (await deps.repo.findVersionByNumber(leaked, 1))!.state, { timeout: 20_000 }).toBe('revoked');
});
