import { describe, expect, it } from 'vitest';
import { coalesced } from '../../src/core/atomic-file.js';

describe('coalesced', () => {
  it('runs one task at a time, shares a waiting run, and starts a run after each call', async () => {
    let running = 0;
    let most = 0;
    const starts: number[] = [];
    const task = async () => {
      starts.push(Date.now());
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 50));
      running--;
      return starts.length;
    };
    const calls: { at: number; done: Promise<number> }[] = [];
    for (let i = 0; i < 10; i++) {
      calls.push({ at: Date.now(), done: coalesced('unit', task) });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const runs = await Promise.all(calls.map((c) => c.done));
    expect(most).toBe(1);
    // 10 calls over ~100 ms with 50 ms runs: a handful of runs, not ten.
    expect(starts.length).toBeLessThanOrEqual(4);
    // Each call's run (numbered by its start) began at or after the call.
    calls.forEach((c, i) => expect(starts[runs[i]! - 1]!).toBeGreaterThanOrEqual(c.at));
  });

  it('hands a failure to the callers of that run only', async () => {
    let fail = true;
    const task = () => (fail ? Promise.reject(new Error('disk full')) : Promise.resolve('ok'));
    await expect(coalesced('unit-fail', task)).rejects.toThrow('disk full');
    fail = false;
    await expect(coalesced('unit-fail', task)).resolves.toBe('ok');
  });
});
