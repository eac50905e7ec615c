/**
 * Longest files first within each group. Without vitest's cache (a fresh clone, as in CI) its
 * order is the largest file first, so a two-minute file could start when most others were
 * done and keep the run waiting on it alone. Seconds per file come from
 * test/support/durations.json, recorded by a run with REKEY_RECORD_DURATIONS=1
 * (summary-reporter.ts); files it does not name run after those it does, largest first.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const DURATIONS_FILE = new URL('./durations.json', import.meta.url);

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const recorded = JSON.parse(readFileSync(DURATIONS_FILE, 'utf8')) as Record<string, number>;
    const seconds = (f: TestSpecification): number => recorded[durationKey(f.project.name, relative(f.project.config.root, f.moduleId))] ?? 0;
    const group = (f: TestSpecification): number => f.project.config.sequence.groupOrder;
    // The base order, re-sorted stably: groups in order, then longest first whatever the project
    // (the soak, the longest, starts first beside the processes files of its group).
    return (await super.sort(files)).sort(
      (a, b) => group(a) - group(b) || seconds(b) - seconds(a),
    );
  }
}

export function durationKey(project: string, file: string): string {
  return `${project}:${file}`;
}
