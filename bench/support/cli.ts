/** Argument and table helpers shared by the benchmarks (`npm run bench -- NAME [args]`). */

/** The value after `--name` in `args`, if given. */
export function option(args: readonly string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

/** Prints rows as aligned columns: the first `labels` columns left-aligned, the figures right-aligned. */
export function printColumns(rows: readonly string[][], labels = 1): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) console.log(row.map((cell, column) => (column < labels ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
}
