import { availableParallelism, loadavg } from 'node:os';

/**
 * Polls `check` every 10 ms until it returns true; returns the time it took in ms. Throws,
 * naming `what`, when `timeoutMs` passes first.
 */
export async function until(check: () => Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A latency goal (`goalMs`, met on a machine with a core to spare) as a test bound on this
 * machine now: it grows with the run queue per core (the 1-minute load average), since on a
 * loaded machine every step of the measured path waits its turn for a core.
 */
export function loadScaledBound(goalMs: number): number {
  return goalMs * Math.max(1, loadavg()[0]! / availableParallelism());
}
