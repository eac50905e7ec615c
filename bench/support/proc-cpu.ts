/**
 * CPU time of a process from /proc/<pid>/stat (Linux): the one reading every bench uses for the
 * parties it measures (PostgreSQL backends, redis-server, HAProxy, a worker). The clock tick
 * (USER_HZ) is asked of getconf once; it is 10 ms per process, so read over seconds.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** A process's command name and the user + system CPU milliseconds it used so far; undefined when it is gone or unreadable. */
export function processCpu(pid: number | string): { comm: string; ms: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const { comm, userMs, systemMs } = statTimes(stat);
  return { comm, ms: userMs + systemMs };
}

/** A /proc stat line's command name and user and system CPU milliseconds (of a process, or of one thread's task/<tid>/stat). */
function statTimes(stat: string): { comm: string; userMs: number; systemMs: number } {
  // comm is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const ms = (ticks: string | undefined) => (Number(ticks) / ticksPerSecond!) * 1000;
  return { comm: stat.slice(stat.indexOf('(') + 1, close), userMs: ms(fields[11]), systemMs: ms(fields[12]) };
}

/** The CPU milliseconds `pid` used so far; 0 when it is gone. */
export function cpuMsOf(pid: number): number {
  return processCpu(pid)?.ms ?? 0;
}

/** What {@link processDetail} reads of a process: CPU split by mode, context switches, read and write system calls. */
export interface ProcessDetail {
  userMs: number;
  systemMs: number;
  /** User + system CPU of its main thread alone (the rest is helper threads': a V8 engine's compilers and GC, libuv's pool). */
  mainThreadMs: number;
  /** Context switches the process asked for (it waited: for a socket, a lock, a fsync). */
  voluntary: number;
  /** Context switches it did not ask for (preempted: another runnable thread got its core). */
  involuntary: number;
  /** read(2)-family and write(2)-family calls (/proc/<pid>/io: readv, writev and pread count; recv and send do not). */
  reads: number;
  writes: number;
}

/** A process's {@link ProcessDetail} so far, every thread's (context switches summed over /proc/<pid>/task); undefined when it is gone or unreadable. */
export function processDetail(pid: number | string): ProcessDetail | undefined {
  let stat: string;
  let mainStat: string;
  let statuses: string[];
  let io: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    mainStat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    // Each thread's switches are its own (the main thread's status counts only its own).
    statuses = readdirSync(`/proc/${pid}/task`).map((task) => readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8'));
    io = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return undefined;
  }
  const all = statTimes(stat);
  const main = statTimes(mainStat);
  const field = (text: string, name: string) => Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return {
    userMs: all.userMs,
    systemMs: all.systemMs,
    mainThreadMs: main.userMs + main.systemMs,
    voluntary: statuses.reduce((sum, status) => sum + field(status, 'voluntary_ctxt_switches'), 0),
    involuntary: statuses.reduce((sum, status) => sum + field(status, 'nonvoluntary_ctxt_switches'), 0),
    reads: field(io, 'syscr'),
    writes: field(io, 'syscw'),
  };
}
