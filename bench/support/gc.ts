/**
 * This process's CPU time and young-generation collections (scavenges) so far, for a phase's
 * figures per answer: a scavenge stops the event loop for milliseconds, so how many a phase
 * needs (how much each answer allocates) sets its paced tail latency.
 */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

export interface Usage {
  /** CPU time (user + system), microseconds. */
  cpuUs: number;
  scavenges: number;
  /** Time spent in scavenges, milliseconds. */
  scavengeMs: number;
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

/** The figures so far; collections not yet delivered to the observer are counted too. */
export function usage(): Usage {
  count(observer.takeRecords());
  const { user, system } = process.cpuUsage();
  return { cpuUs: user + system, scavenges, scavengeMs };
}
