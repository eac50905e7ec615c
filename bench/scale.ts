/**
 * Scale: for each size, a config of that many secrets (local store, random issuer, one
 * redis-keyset target, a daily schedule each) applied by the `rekey` command in its own
 * process, on its own database and queue prefix. Measures the apply's wall time and peak RSS,
 * that a second apply is a no-op plan (and how long it takes), the Redis keys and memory under
 * the prefix afterwards, and how long `rekey status` takes to print its first page.
 * Then a `rekey worker` on it for --idle seconds after its first 20 s (measured apart): its CPU, RSS (and V8 heap used, total and
 * external memory) and reconcile pass durations; no schedule is due then (each secret's falls
 * on one day half a year away). Then, with that worker still running, 1,000 of the secrets are
 * applied again with a schedule due in the same second: how long after that second each run
 * started (its row's started_at; p50, p99, max) and until the last one finished.
 *   npm run bench -- scale [--sizes 1000,10000,100000] [--idle 60] [--burst 1000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { option } from './support/cli.js';
import pg from 'pg';
import { benchEnvironment, type BenchEnvironment, percentile } from './support/environment.js';
import { startWorker, type IdleWorker } from './support/worker-idle.js';

interface Size {
  secrets: number;
  applyMs: number;
  applyPeakRssMb: number;
  reapplyMs: number;
  reapplyNoop: boolean;
  redisKeys: number;
  redisMb: number;
  statusFirstPageMs: number;
  statusPeakRssMb: number;
  /**
   * A `rekey worker` left alone over --idle seconds (default 60), after its first 20 s: those hold
   * one-time work (the first load and validation of the applied config, on first use after the
   * start-up reconcile pass), reported apart as `workerStartCpuPct`.
   */
  worker: IdleWorker;
  workerStartCpuPct: number;
  /** --burst secrets (default 1,000) due in the same second, that worker running. */
  burst: Burst;
}

interface Burst {
  secrets: number;
  /** The apply that set their schedule, done this long before the due second. */
  appliedBeforeDueMs: number;
  /** Run row created (the scheduled job handled), after the due second. */
  startedMs: { p50: number; p99: number; max: number };
  /** The last of them finished, after the due second. */
  allDoneMs: number;
  failed: number;
}

/** The worker's first seconds after its start-up reconcile pass, measured apart from its idle window. */
const WORKER_START_MS = 20_000;

const bin = fileURLToPath(new URL('../bin/rekey.js', import.meta.url));

export async function main(args: string[]): Promise<Size[]> {
  const sizes = (option(args, '--sizes') ?? '1000,10000,100000').split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'rekey-bench-scale-'));
  const reporter = join(dir, 'report-rss.cjs');
  writeFileSync(reporter, "process.on('exit', () => require('node:fs').writeFileSync(process.env.RSS_FILE, String(process.resourceUsage().maxRSS)));\n");
  const figures: Size[] = [];
  try {
    const idleMs = Number(option(args, '--idle') ?? '60') * 1000;
    const burst = Number(option(args, '--burst') ?? '1000');
    for (const n of sizes) figures.push(await measure(n, dir, reporter, idleMs, Math.min(n, burst)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const f of figures) {
    console.log(
      `${f.secrets} secrets: apply ${(f.applyMs / 1000).toFixed(1)} s, peak RSS ${f.applyPeakRssMb} MB; re-apply ${(f.reapplyMs / 1000).toFixed(1)} s (no-op: ${f.reapplyNoop}); ` +
        `Redis ${f.redisKeys} keys, ${f.redisMb} MB; status first page ${f.statusFirstPageMs} ms, ${f.statusPeakRssMb} MB; ` +
        `worker ${f.worker.idleCpuPct}% of a core (its first 20 s: ${f.workerStartCpuPct}%), ${f.worker.rssMb} MB RSS (heap ${f.worker.heapUsedMb}/${f.worker.heapTotalMb} MB, external ${f.worker.externalMb} MB), reconcile full ${f.worker.fullPassMs} ms, incremental median ${f.worker.incrementalPassMs.median} ms (max ${f.worker.incrementalPassMs.max}, ${f.worker.incrementalPassMs.count} passes); ` +
        `${f.burst.secrets} due in one second: started p50 ${f.burst.startedMs.p50} ms, p99 ${f.burst.startedMs.p99} ms, max ${f.burst.startedMs.max} ms; all done after ${(f.burst.allDoneMs / 1000).toFixed(1)} s (${f.burst.failed} failed)`,
    );
  }
  console.log(JSON.stringify({ bench: 'scale', load: loadAverage(), sizes: figures }));
  return figures;
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/**
 * The config: `n` secrets, schedules spread over the hours of one day half a year away (as a
 * fleet's would be spread, none due while measuring), the first `burst` due at `due` instead.
 */
function writeConfig(file: string, n: number, keyPrefix: string, burst?: { count: number; due: Date }): void {
  // The keysets under the bench's queue prefix, so its cleanup removes them too.
  const lines = ['providers:', '  vault: { type: local }', `  api: { type: redis-keyset, keyPrefix: "${keyPrefix}keyset:" }`, 'secrets:'];
  const month = ((new Date().getUTCMonth() + 6) % 12) + 1;
  const at = burst?.due;
  const burstCron = at && `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} *`;
  for (let i = 0; i < n; i++) {
    const cron = burst && i < burst.count ? burstCron : `${i % 60} ${Math.floor(i / 60) % 24} 1 ${month} *`;
    lines.push(`  key-${i}: { store: { provider: vault }, issuer: { type: random }, targets: [api], schedule: { cron: "${cron}" } }`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

async function measure(n: number, dir: string, reporter: string, idleMs: number, burstCount: number): Promise<Size> {
  const file = join(dir, `rekey-${n}.yaml`);
  const bench = await benchEnvironment(`scale_${n}`);
  writeConfig(file, n, bench.prefix);
  const env = bench.env;
  const run = async (argv: string[]) => {
    const rssFile = join(dir, 'rss');
    rmSync(rssFile, { force: true });
    const started = performance.now();
    const child = spawn(process.execPath, ['--require', reporter, bin, ...argv], { env: { ...env, RSS_FILE: rssFile }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.once('close', done));
    const ms = Math.round(performance.now() - started);
    if (code !== 0) throw new Error(`rekey ${argv.join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
    return { ms, rssMb: Math.round(Number(readFileSync(rssFile, 'utf8')) / 1024), stdout };
  };
  try {
    const apply = await run(['apply', '-f', file]);
    const again = await run(['apply', '-f', file]);
    const status = await run(['status']);
    const running = await startWorker(env);
    let worker: IdleWorker;
    let workerStartCpuPct: number;
    let burst: Burst;
    try {
      workerStartCpuPct = (await running.idle(WORKER_START_MS)).idleCpuPct;
      worker = await running.idle(idleMs);
      burst = await dueTogether(bench, file, n, burstCount, again.ms, run);
    } finally {
      await running.stop();
    }
    const redis = new Redis(bench.redisUrl);
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${bench.prefix}*`, 'COUNT', 5000);
      keys.push(...found);
      cursor = next;
    } while (cursor !== '0');
    let bytes = 0;
    for (let i = 0; i < keys.length; i += 1000) {
      const pipeline = redis.pipeline();
      for (const key of keys.slice(i, i + 1000)) pipeline.memory('USAGE', key);
      for (const [, used] of (await pipeline.exec()) ?? []) bytes += Number(used ?? 0);
    }
    redis.disconnect();
    return {
      secrets: n,
      applyMs: apply.ms,
      applyPeakRssMb: apply.rssMb,
      reapplyMs: again.ms,
      reapplyNoop: again.stdout.includes(`0 to add, 0 to change, 0 to remove, ${n} unchanged`),
      redisKeys: keys.length,
      redisMb: Math.round(bytes / 1024 / 102.4) / 10,
      statusFirstPageMs: status.ms,
      statusPeakRssMb: status.rssMb,
      worker,
      workerStartCpuPct,
      burst,
    };
  } finally {
    await bench.cleanup();
  }
}

/**
 * Applies the config again with `count` schedules due in one second, far enough ahead for the
 * apply to finish (twice the no-op re-apply's time, plus 15 s), and waits for their runs.
 */
async function dueTogether(bench: BenchEnvironment, file: string, n: number, count: number, reapplyMs: number, run: (argv: string[]) => Promise<unknown>): Promise<Burst> {
  const due = new Date(Math.ceil((Date.now() + 2 * reapplyMs + 15_000) / 1000) * 1000);
  writeConfig(file, n, bench.prefix, { count, due });
  await run(['apply', '-f', file]);
  const appliedBeforeDueMs = due.getTime() - Date.now();
  const db = new pg.Client({ connectionString: bench.databaseUrl });
  await db.connect();
  try {
    const deadline = due.getTime() + 30 * 60_000;
    for (;;) {
      const { rows } = await db.query<{ finished: string }>(`SELECT count(*) AS finished FROM runs WHERE trigger = 'cron' AND finished_at IS NOT NULL`);
      if (Number(rows[0]!.finished) >= count) break;
      if (Date.now() > deadline) throw new Error(`${rows[0]!.finished} of ${count} due runs finished in 30 min`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const { rows } = await db.query<{ started: Date; finished: Date; status: string }>(`SELECT started_at AS started, finished_at AS finished, status::text FROM runs WHERE trigger = 'cron'`);
    const started = rows.map((r) => r.started.getTime() - due.getTime()).sort((a, b) => a - b);
    return {
      secrets: count,
      appliedBeforeDueMs,
      startedMs: { p50: percentile(started, 50), p99: percentile(started, 99), max: started.at(-1)! },
      allDoneMs: Math.max(...rows.map((r) => r.finished.getTime())) - due.getTime(),
      failed: rows.filter((r) => r.status !== 'succeeded').length,
    };
  } finally {
    await db.end();
  }
}
