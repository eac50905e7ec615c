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

/**
 * A benchmark's leading comment (a block, or `//` lines) as plain text: what it measures and its
 * options, which `npm run bench -- NAME --help` prints instead of running it.
 */
export function benchHelp(source: string): string {
  const block = /^\/\*\*([\s\S]*?)\*\//.exec(source);
  const lines = block
    ? block[1]!.split('\n').map((line) => line.replace(/^\s*\* ?/, ''))
    : source
        .split('\n')
        .slice(0, Math.max(0, source.split('\n').findIndex((line) => !line.startsWith('//'))))
        .map((line) => line.replace(/^\/\/ ?/, ''));
  return lines.join('\n').trim();
}
