/**
 * Scale: for each size, a config of that many secrets (local store, random issuer, one
 * redis-keyset target, a daily schedule each) applied by the `rekey` command in its own
 * process, on its own database and queue prefix. Measures the apply's wall time and peak RSS,
 * that a second apply is a no-op plan (and how long it takes), the Redis keys and memory under
 * the prefix afterwards, and how long `rekey status` takes to print its first page.
 * Then a `rekey worker` on it for --idle seconds: its CPU, RSS and reconcile pass durations.
 *   npm run bench -- scale [--sizes 1000,10000,100000] [--idle 60]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { benchEnvironment } from './support/environment.js';
import { option } from './support/cli.js';
import { idleWorker, type IdleWorker } from './support/worker-idle.js';

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
  /** A `rekey worker` after start-up, over --idle seconds (default 60). */
  worker: IdleWorker;
}

const bin = fileURLToPath(new URL('../bin/rekey.js', import.meta.url));

export async function main(args: string[]): Promise<Size[]> {
  const sizes = (option(args, '--sizes') ?? '1000,10000,100000').split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'rekey-bench-scale-'));
  const reporter = join(dir, 'report-rss.cjs');
  writeFileSync(reporter, "process.on('exit', () => require('node:fs').writeFileSync(process.env.RSS_FILE, String(process.resourceUsage().maxRSS)));\n");
  const figures: Size[] = [];
  try {
    const idleMs = Number(option(args, '--idle') ?? '60') * 1000;
    for (const n of sizes) figures.push(await measure(n, dir, reporter, idleMs));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const f of figures) {
    console.log(
      `${f.secrets} secrets: apply ${(f.applyMs / 1000).toFixed(1)} s, peak RSS ${f.applyPeakRssMb} MB; re-apply ${(f.reapplyMs / 1000).toFixed(1)} s (no-op: ${f.reapplyNoop}); ` +
        `Redis ${f.redisKeys} keys, ${f.redisMb} MB; status first page ${f.statusFirstPageMs} ms, ${f.statusPeakRssMb} MB; ` +
        `worker ${f.worker.idleCpuPct}% of a core, ${f.worker.rssMb} MB RSS, reconcile full ${f.worker.fullPassMs} ms, incremental median ${f.worker.incrementalPassMs.median} ms (max ${f.worker.incrementalPassMs.max}, ${f.worker.incrementalPassMs.count} passes)`,
    );
  }
  console.log(JSON.stringify({ bench: 'scale', sizes: figures }));
  return figures;
}

async function measure(n: number, dir: string, reporter: string, idleMs: number): Promise<Size> {
  const file = join(dir, `rekey-${n}.yaml`);
  const lines = ['providers:', '  vault: { type: local }', '  api: { type: redis-keyset }', 'secrets:'];
  // Schedules spread over the day, as a fleet's would be.
  for (let i = 0; i < n; i++) lines.push(`  key-${i}: { store: { provider: vault }, issuer: { type: random }, targets: [api], schedule: { cron: "${i % 60} ${Math.floor(i / 60) % 24} * * *" } }`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  const bench = await benchEnvironment(`scale_${n}`);
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
    const worker = await idleWorker(env, idleMs);
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
    };
  } finally {
    await bench.cleanup();
  }
}
