// The revocations queue has its own workers: with every rotations worker busy and 5,000
// rotation jobs queued behind them, a leak is blocked at HAProxy about as fast as on an
// idle system. The bound is loose (a shared 2-core machine); bench/leak-latency.ts
// measures the same thing with percentiles.
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latencyConfig, measureLeak, rotationBacklog, slowDown } from './latency.js';
import { startLeakEnv, type LeakEnv } from './support.js';

let e: LeakEnv;
const agent = new Agent({ keepAlive: true, maxSockets: 2 });
const id = randomUUID().slice(0, 8);
const fast = `fast-${id}`;
const slow = Array.from({ length: 5 }, (_, i) => `slow-${id}-${i}`); // the harness runs 5 rotations workers
const names = { journal: `leaks-fast-${id}`, slowJournal: `leaks-slow-${id}` };

beforeAll(async () => {
  e = await startLeakEnv('backlog');
  await e.h.apply(latencyConfig(e, { fast: [{ name: fast, onLeak: 'rotate-then-revoke' }], slow, ...names }));
  expect((await e.h.rotate(fast)).status).toBe('succeeded');
});
afterAll(async () => {
  slowDown({ slow, ...names }, 0); // later calls are quick: less to wait for in the drain
  agent.destroy();
  await e?.stop();
});

describe('leak-to-blocked under a rotations backlog', () => {
  it('stays within the idle figure with 5,000 rotations queued', async () => {
    await measureLeak(e, fast, agent); // warm-up: connections, caches, JIT
    const idle = await measureLeak(e, fast, agent);

    const waiting = await rotationBacklog(e, { slow, slowJournal: names.slowJournal, callMs: 1500, queued: 5000 });
    expect(await waiting()).toBeGreaterThanOrEqual(5000);
    const loaded = await measureLeak(e, fast, agent);
    // The backlog was still there when the leak was blocked: nothing drained it.
    expect(await waiting()).toBeGreaterThanOrEqual(5000);
    const active = await e.h.runtime.queues.queues.rotations.getJobCounts('active');
    expect(active.active).toBe(5);

    console.log(`leak-to-blocked: idle ${Math.round(idle.blockedMs)} ms, with 5,000 queued rotations ${Math.round(loaded.blockedMs)} ms`);
    expect(loaded.blockedMs).toBeLessThan(Math.max(3 * idle.blockedMs, idle.blockedMs + 2000));
  });
});
