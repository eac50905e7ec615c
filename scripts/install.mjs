// Installs the dependencies (npm ci) when node_modules is missing or older than
// package-lock.json, for `npm test` and `npm run demo` on a fresh clone. Never through a
// symlinked node_modules (a git worktree sharing another's): npm ci would empty the one it
// points to. Returns false when npm ci failed.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';

export function installIfNeeded(announce = () => {}) {
  const installed = 'node_modules/.package-lock.json';
  const linked = existsSync('node_modules') && lstatSync('node_modules').isSymbolicLink();
  if (linked || (existsSync(installed) && statSync(installed).mtimeMs >= statSync('package-lock.json').mtimeMs)) return true;
  announce();
  return spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { stdio: 'inherit' }).status === 0;
}
