// HAProxy's own cost, read beside the latency: its process's CPU time (all threads, from
// /proc/<pid>/stat) and its request count (`show info` CumReq), so a run can say how many
// microseconds of HAProxy CPU a request costs with the stick tables and without.
import { parseRuntimeEndpoint, runtimeCommand } from '../../providers/haproxy/runtime-api.js';
import { cpuMsOf } from '../support/proc-cpu.js';


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
    cpuMs: () => cpuMsOf(pid),
    requests: async () => Number((await info(runtimeApi)).get('CumReq')),
  };
}
