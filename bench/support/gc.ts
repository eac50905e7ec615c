/**
 * This process's CPU time and young-generation collections (scavenges) so far, for a phase's
 * figures per answer: a scavenge stops the event loop for milliseconds, so how many a phase
 * needs (how much each answer allocates) sets its paced tail latency, and what survives each
 * one (copied within the young generation, or promoted to old space) sets how long it takes.
 */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';

export interface Usage {
  /** CPU time (user + system), microseconds. */
  cpuUs: number;
  scavenges: number;
  /** Time spent in scavenges, milliseconds. */
  scavengeMs: number;
  /** Bytes the scavenges kept in the young generation (survived one) and promoted to old space (survived two). */
  copiedBytes: number;
  promotedBytes: number;
}

let scavenges = 0;
let scavengeMs = 0;
const count = (entries: PerformanceEntry[]) => {
  for (const entry of entries) {
    if ((entry as { detail?: { kind?: number } }).detail?.kind !== constants.NODE_PERFORMANCE_GC_MINOR) continue;
    scavenges += 1;
    scavengeMs += entry.duration;
  }
};
const observer = new PerformanceObserver((list) => count(list.getEntries()));
observer.observe({ entryTypes: ['gc'] });

interface Space {
  spaceName: string;
  spaceUsedSize: number;
}
interface Collection {
  gcType: string;
  beforeGC: { heapSpaceStatistics: Space[] };
  afterGC: { heapSpaceStatistics: Space[] };
}

// V8's GC profiler records each collection's space sizes before and after it: after a
// scavenge, the young generation holds what it copied, and old space grew by what it promoted.
let profiler = new GCProfiler();
profiler.start();
let copiedBytes = 0;
let promotedBytes = 0;
const used = (spaces: Space[], name: string) => spaces.find((s) => s.spaceName === name)?.spaceUsedSize ?? 0;
const old = (spaces: Space[]) => used(spaces, 'old_space') + used(spaces, 'large_object_space');

/** The figures so far; collections not yet delivered to the observer are counted too. */
export function usage(): Usage {
  count(observer.takeRecords());
  const { statistics } = profiler.stop() as unknown as { statistics: Collection[] };
  profiler = new GCProfiler();
  profiler.start();
  for (const gc of statistics) {
    if (gc.gcType !== 'Scavenge') continue;
    copiedBytes += used(gc.afterGC.heapSpaceStatistics, 'new_space');
    promotedBytes += old(gc.afterGC.heapSpaceStatistics) - old(gc.beforeGC.heapSpaceStatistics);
  }
  const { user, system } = process.cpuUsage();
  return { cpuUs: user + system, scavenges, scavengeMs, copiedBytes, promotedBytes };
}
