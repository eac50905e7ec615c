/**
 * Runs `task` over `items` with at most `limit` calls in flight, in order of start; the first
 * failure stops new starts and is thrown once the calls in flight have settled. Over one
 * Redis connection, concurrent commands travel pipelined, so this is how bulk Redis writes
 * (thousands of job schedulers) cost round trips / limit instead of one each.
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}
