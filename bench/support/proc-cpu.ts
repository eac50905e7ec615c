/**
 * CPU time of a process from /proc/<pid>/stat (Linux): the one reading every bench uses for the
 * parties it measures (PostgreSQL backends, redis-server, HAProxy, a worker). The clock tick
 * (USER_HZ) is asked of getconf once; it is 10 ms per process, so read over seconds.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** A process's command name and the user + system CPU milliseconds it used so far; undefined when it is gone or unreadable. */
export function processCpu(pid: number | string): { comm: string; ms: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return { comm: stat.slice(stat.indexOf('(') + 1, close), ms: ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1000 };
}

/** The CPU milliseconds `pid` used so far; 0 when it is gone. */
export function cpuMsOf(pid: number): number {
  return processCpu(pid)?.ms ?? 0;
}
