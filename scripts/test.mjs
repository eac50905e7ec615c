#!/usr/bin/env node
// `npm test`: the whole suite on a fresh clone. Installs dependencies when needed,
// starts PostgreSQL and Redis when installed but stopped, checks the code (tsc --noEmit on
// the server and on the dashboard's browser code, ESLint with the import-boundary rule, the
// import-cycle check), then runs vitest (every project). With arguments (`npm test -- test/unit`) only vitest runs, on what they name.
// Always ends with the line `N passed, N failed`.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { installIfNeeded } from './install.mjs';
import { ensureServices } from './services.mjs';

const run = (command, args) => spawnSync(command, args, { stdio: 'inherit' }).status ?? 1;
const fail = (message) => {
  console.error(message);
  console.log('\n0 passed, 1 failed');
  process.exit(1);
};

if (!installIfNeeded()) fail('npm ci failed');
const problems = await ensureServices();
// The gateway tests run the real programs: say which are missing instead of failing obscurely.
const missing = readFileSync('.ci/apt-packages', 'utf8')
  .split('\n')
  .filter((line) => line.trim() && !line.startsWith('#'))
  .map((line) => line.trim().split(/\s+/))
  .filter(([, command]) => spawnSync('sh', ['-c', `command -v ${command} || test -x /usr/sbin/${command}`]).status !== 0)
  .map(([pkg]) => pkg);
if (missing.length) problems.push(`missing Debian packages: ${missing.join(' ')} (apt-get install ${missing.join(' ')}, or run .ci/run, which installs them)`);
if (problems.length) fail(problems.map((p) => `test: ${p}`).join('\n'));
const args = process.argv.slice(2);
if (!args.length) {
  // The checks are independent and each mostly single-threaded: run them side by side (tsc and
  // the type-aware ESLint alone take ~40 s and ~85 s on a 2-core machine), each one's output
  // held and printed whole under its label, so the lines of two checks never interleave.
  const results = await Promise.all(
    [
      ['typecheck', 'npx', ['tsc', '--noEmit']],
      // The dashboard's browser code has its own tsconfig (DOM types), outside the root project.
      ['typecheck dashboard', 'npx', ['tsc', '-p', 'src/dashboard/client', '--noEmit']],
      ['lint', 'npx', ['eslint', '.']],
      ['import cycles', process.execPath, ['scripts/check-cycles.mjs']],
    ].map(([label, command, commandArgs]) => check(label, command, commandArgs)),
  );
  const failed = results.filter((result) => !result.ok).map((result) => result.label);
  if (failed.length) fail(`test: ${failed.join(', ')} failed`);
}
process.exit(run('npx', ['vitest', 'run', ...args]));

/** Runs one check with its output held; prints its label, seconds and output when it ends. */
function check(label, command, commandArgs) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = [];
    child.stdout.on('data', (chunk) => output.push(chunk));
    child.stderr.on('data', (chunk) => output.push(chunk));
    let ended = false;
    const done = (ok) => {
      if (ended) return;
      ended = true;
      console.log(`test: ${label} ${ok ? 'ok' : 'FAILED'} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      process.stdout.write(Buffer.concat(output));
      resolve({ label, ok });
    };
    child.on('error', () => done(false));
    child.on('close', (code) => done(code === 0));
  });
}
