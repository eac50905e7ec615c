/**
 * A `rekey worker` for benchmarks: started, then left alone for a while to measure its CPU
 * (from /proc, user + system), its resident memory and where it goes (/metrics: V8 heap used and
 * total, external memory), and the duration of its reconcile passes (its `reconcile pass` debug
 * log lines: the full pass at start, then the incremental ones every interval). It keeps running
 * until stop(), so a benchmark can give it work afterwards.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpuMsOf } from './proc-cpu.js';

export interface IdleWorker {
  /** Percent of one core over the window. */
  idleCpuPct: number;
  rssMb: number;
  /** process.memoryUsage() as /metrics reports it at the end of the window, in MB. */
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  fullPassMs: number | null;
  incrementalPassMs: { median: number | null; max: number | null; count: number };
}

export interface BenchWorker {
  /** Waits `windowMs` with the worker left alone and reports what it used. */
  idle(windowMs: number): Promise<IdleWorker>;
  stop(): Promise<void>;
}

const bin = fileURLToPath(new URL('../../bin/rekey.js', import.meta.url));
const MB = 1024 * 1024;

/** A port free on loopback now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** Starts a worker and resolves once its first (full) reconcile pass is done. */
export async function startWorker(env: Record<string, string>): Promise<BenchWorker> {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, 'worker', '--port', String(port), '--reconcile-interval', '15s'], { env: { ...env, LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const passes: Array<{ pass: string; ms: number }> = [];
  let firstFull: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (firstFull = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.includes('"reconcile pass"')) return;
    const entry = JSON.parse(line) as { pass: string; ms: number };
    passes.push(entry);
    if (entry.pass === 'full') firstFull();
  });
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)));
  };
  try {
    await Promise.race([started, new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`rekey worker exited ${code}`))))]);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    stop,
    async idle(windowMs) {
      const since = passes.length;
      const before = cpuMsOf(child.pid!) / 1000;
      const t0 = performance.now();
      await new Promise((resolve) => setTimeout(resolve, windowMs));
      const cpu = cpuMsOf(child.pid!) / 1000 - before;
      const elapsed = (performance.now() - t0) / 1000;
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]);
      const mb = async (name: string) => Math.round((await metric(port, `rekey_process_nodejs_${name}`)) / MB);
      const incremental = passes
        .slice(since)
        .filter((p) => p.pass === 'incremental')
        .map((p) => p.ms)
        .sort((a, b) => a - b);
      return {
        idleCpuPct: Math.round((cpu / elapsed) * 1000) / 10,
        rssMb: Math.round(rssKb / 1024),
        heapUsedMb: await mb('heap_size_used_bytes'),
        heapTotalMb: await mb('heap_size_total_bytes'),
        externalMb: await mb('external_memory_bytes'),
        fullPassMs: passes.find((p) => p.pass === 'full')?.ms ?? null,
        incrementalPassMs: { median: incremental[Math.floor(incremental.length / 2)] ?? null, max: incremental.at(-1) ?? null, count: incremental.length },
      };
    },
  };
}
