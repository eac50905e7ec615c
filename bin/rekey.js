#!/usr/bin/env node
// The `rekey` command. An installed package runs the compiled CLI (dist/, `npm run build`);
// a checkout without a build (`npm ci`, then `npx rekey --help`) runs the TypeScript sources
// through tsx, a dev dependency that such a checkout has.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
let main;
if (existsSync(compiled)) {
  main = await import(compiled.href);
} else {
  const { tsImport } = await import('tsx/esm/api').catch(() => {
    process.stderr.write('rekey: no build in dist/ and no tsx to run the sources: run `npm run build` (or `npm ci` for the dev dependencies)\n');
    process.exit(1);
  });
  main = await tsImport('../src/cli/main.ts', import.meta.url);
}
process.exitCode = await main.runCli(process.argv);
