/**
 * `npm run bench -- NAME [args]`: runs bench/NAME.ts's main(args). Benchmarks print a
 * readable report and end with one line of JSON holding their figures, so runs can be
 * compared; they pass or fail nothing (they are not timed tests).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchHelp } from './support/cli.js';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3));
const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <${available.join('|')}> [args]`);
  process.exit(2);
}
// Before the import: a benchmark's module may start work (or load a provider) as it loads.
if (args.includes('--help') || args.includes('-h')) {
  console.log(`npm run bench -- ${name} [args]\n\n${benchHelp(readFileSync(`${here}/${name}.ts`, 'utf8'))}`);
  process.exit(0);
}
const bench = (await import(pathToFileURL(`${here}/${name}.ts`).href)) as { main(args: string[]): Promise<unknown> };
await bench.main(args);
// A benchmark that found something wrong (the soak) sets process.exitCode.
process.exit(process.exitCode ?? 0);
