#!/usr/bin/env node
// `npm run demo`: rekey's main job end to end on a fresh clone. Installs dependencies
// when needed, then runs `rekey dev --demo` (auto-started PostgreSQL and Redis).
import { spawnSync } from 'node:child_process';
import { installIfNeeded } from './install.mjs';

const run = (command, args) => spawnSync(command, args, { stdio: 'inherit' }).status ?? 1;
if (!installIfNeeded(() => console.log('demo: installing dependencies (npm ci)...'))) process.exit(1);
process.exit(run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'dev', '--demo', ...process.argv.slice(2)]));
