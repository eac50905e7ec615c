/**
 * A `rekey worker` left alone for a while: its CPU (from /proc, user + system), its resident
 * memory at the end, and the duration of its reconcile passes (its `reconcile pass` debug log
 * lines: the full pass at start, then the incremental ones every interval).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface IdleWorker {
  /** Percent of one core over the window. */
  idleCpuPct: number;
  rssMb: number;
  fullPassMs: number | null;
  incrementalPassMs: { median: number | null; max: number | null; count: number };
}

const bin = fileURLToPath(new URL('../../bin/rekey.js', import.meta.url));
const TICKS_PER_S = 100; // USER_HZ on Linux

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S; // utime, stime
}

export async function idleWorker(env: Record<string, string>, windowMs: number): Promise<IdleWorker> {
  const child = spawn(process.execPath, [bin, 'worker', '--port', '0', '--reconcile-interval', '15s'], { env: { ...env, LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const passes: Array<{ pass: string; ms: number }> = [];
  let firstFull: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (firstFull = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.includes('"reconcile pass"')) return;
    const entry = JSON.parse(line) as { pass: string; ms: number };
    passes.push(entry);
    if (entry.pass === 'full') firstFull();
  });
  try {
    await Promise.race([started, new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`rekey worker exited ${code}`))))]);
    const before = cpuSeconds(child.pid!);
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const cpu = cpuSeconds(child.pid!) - before;
    const elapsed = (performance.now() - t0) / 1000;
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]);
    const incremental = passes.filter((p) => p.pass === 'incremental').map((p) => p.ms).sort((a, b) => a - b);
    return {
      idleCpuPct: Math.round((cpu / elapsed) * 1000) / 10,
      rssMb: Math.round(rssKb / 1024),
      fullPassMs: passes.find((p) => p.pass === 'full')?.ms ?? null,
      incrementalPassMs: { median: incremental[Math.floor(incremental.length / 2)] ?? null, max: incremental.at(-1) ?? null, count: incremental.length },
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)));
  }
}
