#!/usr/bin/env node
// `npm run demo`: rekey's main job end to end on a fresh clone. Installs dependencies
// when needed, then runs `rekey dev --demo` (auto-started PostgreSQL and Redis).
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';

const run = (command, args) => spawnSync(command, args, { stdio: 'inherit' }).status ?? 1;
const installed = 'node_modules/.package-lock.json';
const linked = existsSync('node_modules') && lstatSync('node_modules').isSymbolicLink();
if (!linked && (!existsSync(installed) || statSync(installed).mtimeMs < statSync('package-lock.json').mtimeMs)) {
  // Never through a symlinked node_modules (a git worktree sharing another's): npm ci would empty the one it points to.
  console.log('demo: installing dependencies (npm ci)...');
  if (run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']) !== 0) process.exit(1);
}
process.exit(run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'dev', '--demo', ...process.argv.slice(2)]));
