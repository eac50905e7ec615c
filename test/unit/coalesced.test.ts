import { describe, expect, it } from 'vitest';
import { coalesced, sharedRead } from '../../src/core/kit/serial.js';

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
}

describe('coalesced', () => {
  it('runs one task at a time; calls made while a run is under way share the next run', async () => {
    const gates: Array<() => void> = [];
    let running = 0;
    let most = 0;
    let runs = 0;
    const task = async () => {
      const run = ++runs;
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => gates.push(resolve));
      running--;
      return run;
    };
    const first = coalesced('unit', task);
    await until(() => gates.length === 1); // run 1 under way
    const later = Array.from({ length: 9 }, () => coalesced('unit', task));
    gates[0]!();
    await until(() => gates.length === 2); // run 2 started only after run 1 ended
    gates[1]!();
    expect(await first).toBe(1);
    // Run 1 began before these calls, so it cannot have written their change: they get run 2.
    expect(await Promise.all(later)).toEqual(Array(9).fill(2));
    expect(runs).toBe(2);
    expect(most).toBe(1);
  });

  it('hands a failure to the callers of that run only', async () => {
    let fail = true;
    const task = () => (fail ? Promise.reject(new Error('disk full')) : Promise.resolve('ok'));
    await expect(coalesced('unit-fail', task)).rejects.toThrow('disk full');
    fail = false;
    await expect(coalesced('unit-fail', task)).resolves.toBe('ok');
  });
});

describe('sharedRead', () => {
  it('gives callers that arrive while a read is in flight its result, and reads again after it settled', async () => {
    let reads = 0;
    let release: (() => void) | undefined;
    const read = async () => {
      const n = ++reads;
      await new Promise<void>((resolve) => (release = resolve));
      return n;
    };
    const burst = Array.from({ length: 200 }, () => sharedRead('unit-read', read));
    await until(() => release !== undefined);
    release!();
    expect(await Promise.all(burst)).toEqual(Array(200).fill(1));
    release = undefined;
    const next = sharedRead('unit-read', read);
    await until(() => release !== undefined);
    release!();
    expect(await next).toBe(2);
  });

  it('shares a failure the same way, then lets the next caller try again', async () => {
    let attempts = 0;
    const failing = () => Promise.reject(new Error(`attempt ${++attempts}`));
    const both = await Promise.allSettled([sharedRead('unit-fail', failing), sharedRead('unit-fail', failing)]);
    expect(both.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))).toEqual(['attempt 1', 'attempt 1']);
    await expect(sharedRead('unit-fail', failing)).rejects.toThrow('attempt 2');
  });
});
