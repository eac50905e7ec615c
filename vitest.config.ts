import { defineConfig } from 'vitest/config';
import LongestFirst from './test/support/sequencer.js';

// unit: no services. integration: the real Redis and PostgreSQL (REDIS_URL,
// DATABASE_URL) and real gateways; each file isolated by its own database and queue
// prefix, so files run in parallel: three at a time (maxWorkers; vitest's default is one fewer
// than the cores, one file at a time on 2 cores, and most of these files wait on real processes
// and services, not on the CPU). processes: tests that run several real rekey
// processes (crash recovery, cron across workers, shutdown, outages, failovers), and soak: the
// short chaos soak (its own PostgreSQL, Redis and HAProxy; both cores busy for about two
// minutes). Both run after the rest (groupOrder 1), three files at a time, the soak first (it
// is the longest): each processes file gates on events, not on time, and they waited on their
// processes three quarters of the time when they ran one at a time after the rest and before
// the soak alone (measured: 337 s one after another, 165 s three at a time beside the soak,
// 218 s with two busy loops beside them; every test passed).
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
          maxWorkers: 3,
          sequence: { groupOrder: 1 },
          ...integration,
          // Hang guards: each test starts real processes, slow on a loaded machine.
          testTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'soak',
          include: ['test/soak/**/*.test.ts'],
          maxWorkers: 3,
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
        },
      },
    ],
  },
});
