// Prints the plain `N passed, N failed` line CI reads, after vitest's own summary.
// A file that fails to load and an unhandled error each count as one failure.
// With REKEY_RECORD_DURATIONS=1 it also records each file's seconds for sequencer.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Reporter, SerializedError, TestModule } from 'vitest/node';
import { DURATIONS_FILE, durationKey } from './sequencer.js';

/** Files shorter than this are left to vitest's own order (largest first). */
const RECORDED_FROM_S = 1;

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    for (const module of modules) {
      let tests = 0;
      for (const test of module.children.allTests()) {
        tests += 1;
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
      }
      if (tests === 0 && module.state() === 'failed') failed += 1;
      else if (module.errors().length > 0) failed += module.errors().length;
    }
    if (process.env.REKEY_RECORD_DURATIONS === '1') record(modules);
    process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  }
}

/** Each file run replaces its own entry (dropped under RECORDED_FROM_S); files not run keep theirs, so a partial run is safe. */
function record(modules: ReadonlyArray<TestModule>): void {
  const seconds = JSON.parse(readFileSync(DURATIONS_FILE, 'utf8')) as Record<string, number>;
  for (const m of modules) {
    const key = durationKey(m.project.name, m.relativeModuleId);
    const s = Math.round(m.diagnostic().duration / 100) / 10;
    if (s >= RECORDED_FROM_S) seconds[key] = s;
    else delete seconds[key];
  }
  const sorted = Object.entries(seconds).sort(([a], [b]) => (a < b ? -1 : 1));
  writeFileSync(DURATIONS_FILE, `${JSON.stringify(Object.fromEntries(sorted), null, 2)}\n`);
}
