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

