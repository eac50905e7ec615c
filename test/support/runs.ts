/** Helpers of the tests that check how runs overlapped (the fleet's limits). */

/** The most runs of `rows` running at one instant (a finish and a start at the same millisecond do not overlap). */
export function mostAtOnce(rows: ReadonlyArray<{ startedAt: Date; finishedAt: Date | null }>): number {
  const edges = rows.flatMap((r) => [[r.startedAt.getTime(), 1] as const, [r.finishedAt!.getTime(), -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, step] of edges) most = Math.max(most, (open += step));
  return most;
}
