/**
 * An HTTP load generator in a process of its own, so the server it measures keeps its event
 * loop and its CPU share (bench/delivery: rekey's routes and the bare fastify floor are loaded
 * by the same generator, alike). node:http over loopback with keep-alive connections. Driven
 * over IPC: it sends `ready`, then answers each LoadJob with a LoadResult (latencies summarised here, and this
 * process's own CPU time for the run).
 *   closed loop: `concurrency` connections each sending the next request as soon as the last
 *     was answered, for `seconds`;
 *   open loop: requests started at `rate` per second whatever the answers' pace, latency
 *     counted from each request's scheduled start (so queueing shows), on up to
 *     `concurrency` connections (a request waits for a free one, inside its latency). None
 *     is sent before its time; how late the generator itself sent them (its timers, its
 *     share of a busy machine) is reported apart (lateP99Ms), since it is in every latency.
 * An answer other than `expected` ends a closed loop with an error; in an open loop it is
 * counted as shed (a 503 of the admission limit, or a reset connection), its latency left out.
 */
import { Agent, request } from 'node:http';

export interface LoadRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export type LoadJob = { requests: LoadRequest[]; expected: number; seconds: number; concurrency: number } & ({ mode: 'closed' } | { mode: 'open'; rate: number });

export interface LoadResult {
  count: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers other than the expected one (open loop only; a closed loop fails on the first). */
  shed: number;
  /** This process's CPU time (user + system) per answer, in microseconds. */
  generatorCpuUs: number;
  /** Open loop only: how late the generator itself started requests (p99, ms), a delay counted in every latency above. */
  lateP99Ms?: number;
  error?: string;
}

process.on('message', (job: LoadJob) => {
  run(job).then(
    (result) => process.send!(result),
    (error: unknown) => process.send!({ error: error instanceof Error ? error.message : String(error) }),
  );
});
// The bench ended (or died): do not outlive it.
process.on('disconnect', () => process.exit(0));
process.send!('ready');

async function run(job: LoadJob): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency, maxFreeSockets: job.concurrency });
  const ms: number[] = [];
  const late: number[] = [];
  let shed = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  try {
    if (job.mode === 'closed') {
      const deadline = started + job.seconds * 1000;
      let next = 0;
      await Promise.all(
        Array.from({ length: job.concurrency }, async () => {
          while (performance.now() < deadline) {
            const t = performance.now();
            const status = await send(agent, job.requests[next++ % job.requests.length]!);
            if (status !== job.expected) throw new Error(`answered ${status}, expected ${job.expected}`);
            ms.push(performance.now() - t);
          }
        }),
      );
    } else {
      const total = Math.round(job.rate * job.seconds);
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < total; i++) {
        const scheduled = started + (i * 1000) / job.rate;
        // Never early (that would flatter the latency); a timer wakes up a millisecond or so
        // late, and whatever fell due meanwhile goes at once: arrivals come in small bursts.
        const wait = scheduled - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        late.push(performance.now() - scheduled);
        inFlight.push(
          send(agent, job.requests[i % job.requests.length]!).then(
            (status) => (status === job.expected ? void ms.push(performance.now() - scheduled) : void (shed += 1)),
            () => void (shed += 1),
          ),
        );
      }
      await Promise.all(inFlight);
    }
  } finally {
    agent.destroy();
  }
  const elapsed = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return {
    count: ms.length,
    perSecond: Math.round((ms.length * 1000) / elapsed),
    p50Ms: round(at(ms, 50)),
    p99Ms: round(at(ms, 99)),
    shed,
    generatorCpuUs: Math.round((used.user + used.system) / Math.max(1, ms.length + shed)),
    ...(job.mode === 'open' ? { lateP99Ms: round(at(late, 99)) } : {}),
  };
}

function at(values: number[], p: number): number {
  values.sort((a, b) => a - b);
  return values.length ? values[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)]! : NaN;
}

/** One request; resolves with the status once the whole answer was read. */
function send(agent: Agent, r: LoadRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(r.url, { method: r.method, headers: r.body === undefined ? r.headers : { ...r.headers, 'content-length': Buffer.byteLength(r.body) }, agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
