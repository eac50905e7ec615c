import { defineConfig } from 'vitest/config';
import LongestFirst from './test/support/sequencer.js';

// unit: no services. integration: the real Redis and PostgreSQL (REDIS_URL,
// DATABASE_URL) and real gateways; each file isolated by its own database and queue
// prefix, so files run in parallel: three at a time (maxWorkers; vitest's default is one fewer
// than the cores, one file at a time on 2 cores, and most of these files wait on real processes
// and services, not on the CPU). processes: tests that run several real rekey
// processes with tight timing (crash recovery, cron across workers, shutdown, outages);
// they run after the rest, one file at a time, so a 2-core machine does not starve them.
// soak: the short chaos soak, last and alone (it brings its own PostgreSQL, Redis and
// HAProxy and keeps both cores busy for about two minutes).
const integration = {
  globalSetup: ['test/support/global-setup.ts'],
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    maxWorkers: 3,
    // Longest files first (test/support/durations.json), so no long file starts last.
    sequence: { sequencer: LongestFirst },
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'providers/*/test/**/*.unit.test.ts'],
          // A hang guard, not a speed bound: on a loaded 2-core machine a test that takes
          // 100 ms alone (key generation, helm template) can take ten seconds.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'providers/*/test/**/*.test.ts'],
          exclude: ['**/*.unit.test.ts'],
          ...integration,
        },
      },
      {
        test: {
          name: 'processes',
          include: ['test/processes/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          ...integration,
          // Hang guards: each test starts real processes through tsx, slow on a loaded machine.
          testTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'soak',
          include: ['test/soak/**/*.test.ts'],
          sequence: { groupOrder: 2 },
          testTimeout: 300_000,
        },
      },
    ],
  },
});
