/**
 * Rotation throughput: N secrets (in-memory store, issuer and target, so providers cost
 * nothing) rotated at once through the real engine, BullMQ on the real Redis and state on
 * the real PostgreSQL. Prints rotations per second and run latency p50/p99, then the
 * throughput of bare BullMQ jobs that make the same number of Redis round trips per job
 * (counted with MONITOR), and the ratio: what the state machine and PostgreSQL cost.
 *   npm run bench -- rotation-throughput [--secrets 200] [--concurrency 20]
 */
import { loadSettings } from '../src/settings.js';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseConfig } from '../src/config/load.js';
import { computePlan } from '../src/config/plan.js';
import { latestDocument, saveConfig, storedSecrets } from '../src/db/config-store.js';
import { createLogger } from '../src/log.js';
import { startWorkers } from '../src/queue/workers.js';
import { providers } from '../src/registry.js';
import { Runtime } from '../src/runtime.js';
import { memoryProvider } from '../test/support/memory-provider.js';
import { benchEnvironment, countCommands, percentile } from './support/environment.js';

export async function main(args: string[]): Promise<Record<string, number>> {
  const { values } = parseArgs({ args, options: { secrets: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '20' } } });
  const n = Number(values.secrets);
  const concurrency = Number(values.concurrency);
  const env = await benchEnvironment('throughput');
  const modules = providers.with([memoryProvider]);
  const settings = loadSettings({ DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REKEY_FINGERPRINT_KEY: 'e'.repeat(64), REKEY_AUDIT_KEY: 'f'.repeat(64), REKEY_QUEUE_PREFIX: env.prefix, LOG_LEVEL: 'warn' });
  const runtime = new Runtime({ actor: 'bench', settings, modules, log: createLogger(process.env.LOG_LEVEL ?? 'warn'), longLived: true });
  try {
    await runtime.connect();
    const yaml = ['providers:', '  mem: { type: memory, journal: bench }', 'secrets:']
      .concat(Array.from({ length: n }, (_, i) => `  s${i}: { store: { provider: mem }, issuer: { provider: mem }, targets: [mem], grace: 1h }`))
      .join('\n');
    const loaded = await parseConfig(yaml, 'bench.yaml', modules);
    await saveConfig(runtime.db, runtime.audit, loaded, computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db)), 'bench');

    const workers = startWorkers(runtime.engine, runtime.redis, env.prefix, runtime.log, {
      concurrency: { rotations: concurrency, revocations: concurrency, retirements: concurrency },
      lockDurationMs: 30_000,
      maxStalledCount: 5,
    });
    const monitor = countCommands(env.prefix);
    const started = performance.now();
    const requests = await Promise.all(Array.from({ length: n }, (_, i) => runtime.engine.requestRotation({ secret: `s${i}`, trigger: 'manual' })));
    const runIds = requests.flatMap((r) => (r.status === 'stale' ? [] : [r.run.id]));
    while ((await runtime.db.run.count({ where: { id: { in: runIds }, status: 'running' } })) > 0) await new Promise((r) => setTimeout(r, 20));
    const seconds = (performance.now() - started) / 1000;
    const redisCommands = monitor.count();
    monitor.stop();
    await workers.close(5000);
    const runs = await runtime.db.run.findMany({ where: { id: { in: runIds } }, select: { startedAt: true, finishedAt: true, status: true } });
    const latencies = runs.map((r) => r.finishedAt!.getTime() - r.startedAt.getTime()).sort((a, b) => a - b);
    const failed = runs.filter((r) => r.status !== 'succeeded').length;
    const perRotation = redisCommands / n;

    const bare = await bareBullmq(env.redisUrl, `${env.prefix.slice(0, -1)}-bare}`, n, concurrency, perRotation);
    const figures = {
      secrets: n,
      concurrency,
      rotationsPerSecond: round(n / seconds),
      latencyP50Ms: percentile(latencies, 50),
      latencyP99Ms: percentile(latencies, 99),
      failed,
      redisCommandsPerRotation: round(perRotation),
      bareJobsPerSecond: round(bare.jobsPerSecond),
      bareRedisCommandsPerJob: round(bare.commandsPerJob),
      ratio: Number((n / seconds / bare.jobsPerSecond).toPrecision(3)),
    };
    console.log(`rotation throughput (${n} secrets, concurrency ${concurrency}, in-memory providers, real Redis + PostgreSQL)`);
    console.log(`  rekey rotations     ${figures.rotationsPerSecond} /s   p50 ${figures.latencyP50Ms} ms   p99 ${figures.latencyP99Ms} ms   failed ${failed}`);
    console.log(`  Redis commands      ${figures.redisCommandsPerRotation} per rotation`);
    console.log(`  bare BullMQ jobs    ${figures.bareJobsPerSecond} /s   (${figures.bareRedisCommandsPerJob} Redis commands per job)`);
    console.log(`  ratio               ${figures.ratio} (rekey rotations / bare jobs)`);
    console.log(JSON.stringify({ bench: 'rotation-throughput', ...figures }));
    return figures;
  } finally {
    await runtime.close();
    await env.cleanup();
  }
}

/** N BullMQ jobs whose processor makes enough PINGs that each job totals `target` Redis commands. */
async function bareBullmq(redisUrl: string, prefix: string, n: number, concurrency: number, target: number) {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('bare', { connection, prefix });
  // Calibrate: what one empty job costs in Redis commands.
  const empty = await runJobs(queue, connection, prefix, 20, concurrency, 0, redisUrl);
  const pings = Math.max(0, Math.round(target - empty.commandsPerJob));
  const measured = await runJobs(queue, connection, prefix, n, concurrency, pings, redisUrl);
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return measured;
}

async function runJobs(queue: Queue, connection: Redis, prefix: string, n: number, concurrency: number, pings: number, redisUrl: string) {
  const pinger = new Redis(redisUrl);
  const monitor = countCommands(prefix);
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    const worker = new Worker(
      'bare',
      async () => {
        for (let i = 0; i < pings; i++) await pinger.ping(`${prefix}ping`);
      },
      { connection, prefix, concurrency },
    );
    worker.on('completed', () => {
      if (++done === n) void worker.close().then(resolve);
    });
  });
  const started = performance.now();
  await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'job', data: { i }, opts: { removeOnComplete: true } })));
  await finished;
  const seconds = (performance.now() - started) / 1000;
  const commands = monitor.count();
  monitor.stop();
  pinger.disconnect();
  return { jobsPerSecond: n / seconds, commandsPerJob: commands / n };
}

const round = (x: number) => Math.round(x * 10) / 10;
