// HAProxy's own cost, read beside the latency: its process's CPU time (all threads, from
// /proc/<pid>/stat) and its request count (`show info` CumReq), so a run can say how many
// microseconds of HAProxy CPU a request costs with the stick tables and without.
import { readFileSync } from 'node:fs';
import { parseRuntimeEndpoint, runtimeCommand } from '../../providers/haproxy/runtime-api.js';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface HaproxyMeter {
  /** CPU time of the process so far, ms (10 ms resolution). */
  cpuMs(): number;
  /** Requests HAProxy has received so far. */
  requests(): Promise<number>;
}

async function info(runtimeApi: string): Promise<Map<string, string>> {
  const answer = await runtimeCommand(parseRuntimeEndpoint(runtimeApi), 'show info', AbortSignal.timeout(5000), 5000);
  return new Map(answer.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
}

export async function haproxyMeter(runtimeApi: string): Promise<HaproxyMeter> {
  const pid = Number((await info(runtimeApi)).get('Pid'));
  return {
    cpuMs() {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command (which may hold spaces): state is 3rd, utime 14th, stime 15th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
    },
    requests: async () => Number((await info(runtimeApi)).get('CumReq')),
  };
}
