#!/usr/bin/env node
// The `rekey` command: the compiled CLI (npm run build). From a checkout without a
// build, use `npm run rekey -- <args>` instead.
import { runCli } from '../dist/src/cli/main.js';

process.exitCode = await runCli(process.argv);
