/**
 * Rotation throughput: secrets (in-memory store, issuer and target, so providers cost
 * nothing) rotated at once by 1, 2 and 3 worker processes (bench/support/rotation-worker.ts:
 * the real engine, BullMQ on the real Redis, state on the real PostgreSQL). For each:
 * rotations per second, run latency p50/p99, and per rotation the SQL statements (counted
 * in every process), commits (pg_stat_database.xact_commit of the bench's own database,
 * read transactions included) and WAL flushes (pg_stat_wal.wal_sync: cluster-wide, so other
 * databases' writes count too). In the same run, two floors: bare BullMQ jobs making the
 * same Redis round trips per job, and a pgbench-style floor (the same number of small
 * transactions per rotation, issued from Node with pg named prepared statements).
 *   npm run bench -- rotation-throughput [--secrets 200] [--concurrency 20] [--processes 1,2,3]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { parseConfig } from '../src/config/load.js';
import { computePlan } from '../src/config/plan.js';
import { latestDocument, saveConfig, storedSecrets } from '../src/db/config-store.js';
import { createLogger } from '../src/log.js';
import { providers } from '../src/registry.js';
import { Runtime } from '../src/runtime.js';
import { loadSettings } from '../src/settings.js';
import { memoryProvider } from '../test/support/memory-provider.js';
import { type BenchEnvironment, benchEnvironment, countCommands, countStatements, pgCounters, percentile } from './support/environment.js';

const WARM_UP = 20;

interface Phase {
  processes: number;
  rotationsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  failed: number;
  statementsPerRotation: number;
  commitsPerRotation: number;
  walFlushesPerRotation: number;
  redisCommandsPerRotation: number;
}

export async function main(args: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args,
    options: { secrets: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '20' }, processes: { type: 'string', default: '1,2,3' } },
  });
  const n = Number(values.secrets);
  const concurrency = Number(values.concurrency);
  const counts = values.processes.split(',').map(Number);
  const env = await benchEnvironment('throughput');
  // Before any connection exists: createDb's pool binds each connection's query method when it connects.
  const statements = countStatements();
  const modules = providers.with([memoryProvider]);
  const settings = loadSettings({ ...env.env, LOG_LEVEL: 'warn' });
  const runtime = new Runtime({ actor: 'bench', settings, modules, log: createLogger(process.env.LOG_LEVEL ?? 'warn'), longLived: true });
  try {
    await runtime.connect();
    const names = (phase: number, kind: 'w' | 's', count: number) => Array.from({ length: count }, (_, i) => `p${phase}${kind}${i}`);
    const all = counts.flatMap((_, k) => [...names(k, 'w', WARM_UP), ...names(k, 's', n)]);
    const yaml = ['providers:', '  mem: { type: memory, journal: bench }', 'secrets:']
      .concat(all.map((name) => `  ${name}: { store: { provider: mem }, issuer: { provider: mem }, targets: [mem], grace: 1h }`))
      .join('\n');
    const loaded = await parseConfig(yaml, 'bench.yaml', modules);
    await saveConfig(runtime.db, runtime.audit, loaded, computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db)), 'bench');

    const rotate = async (secrets: string[]) => {
      // Ten at a time: as many as the bench's pool has connections.
      const runIds: string[] = [];
      for (let i = 0; i < secrets.length; i += 10) {
        const requests = await Promise.all(secrets.slice(i, i + 10).map((secret) => runtime.engine.requestRotation({ secret, trigger: 'manual' })));
        runIds.push(...requests.flatMap((r) => (r.status === 'stale' ? [] : [r.run.id])));
      }
      return runIds;
    };
    /** Polls until every run is done; returns how many polls (each one commit of ours). */
    const settle = async (runIds: string[]) => {
      let polls = 1;
      while ((await runtime.db.run.count({ where: { id: { in: runIds }, status: 'running' } })) > 0) {
        polls += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
      return polls;
    };

    const phases: Phase[] = [];
    for (const [k, processes] of counts.entries()) {
      const children = await Promise.all(Array.from({ length: processes }, () => spawnWorker(env, concurrency)));
      try {
        await settle(await rotate(names(k, 'w', WARM_UP)));
        const sum = async () => (await Promise.all(children.map((c) => c.counts()))).reduce((a, b) => ({ statements: a.statements + b.statements, redis: a.redis + b.redis }));
        const childrenBefore = await sum();
        const before = await pgCounters(env.databaseUrl);
        const monitor = countCommands(env.prefix);
        const started = performance.now();
        const requestStatements = statements.count();
        const runIds = await rotate(names(k, 's', n));
        const requested = statements.count() - requestStatements;
        const polls = await settle(runIds);
        const seconds = (performance.now() - started) / 1000;
        monitor.stop();
        const childrenAfter = await sum();
        const redisCommands = monitor.count() + childrenAfter.redis - childrenBefore.redis;
        const after = await pgCounters(env.databaseUrl);
        const runs = await runtime.db.run.findMany({ where: { id: { in: runIds } }, select: { startedAt: true, finishedAt: true, status: true } });
        const latencies = runs.map((r) => r.finishedAt!.getTime() - r.startedAt.getTime()).sort((a, b) => a - b);
        phases.push({
          processes,
          rotationsPerSecond: round(n / seconds),
          latencyP50Ms: percentile(latencies, 50),
          latencyP99Ms: percentile(latencies, 99),
          failed: runs.filter((r) => r.status !== 'succeeded').length,
          statementsPerRotation: round((requested + childrenAfter.statements - childrenBefore.statements) / n),
          // Less the polls and the `before` reading's own transaction.
          commitsPerRotation: round((after.commits - before.commits - polls - 1) / n),
          walFlushesPerRotation: round((after.walSyncs - before.walSyncs) / n),
          redisCommandsPerRotation: round(redisCommands / n),
        });
      } finally {
        await Promise.all(children.map((c) => c.stop()));
      }
    }

    const first = phases[0]!;
    const bare = await bareBullmq(env.redisUrl, `${env.prefix.slice(0, -1)}-bare}`, n, concurrency, first.redisCommandsPerRotation);
    const floor = await pgFloor(env.databaseUrl, n, first.commitsPerRotation, first.statementsPerRotation, concurrency);
    const best = Math.max(...phases.map((p) => p.rotationsPerSecond));
    const figures = {
      secrets: n,
      concurrency,
      phases,
      bareJobsPerSecond: round(bare.jobsPerSecond),
      bareRedisCommandsPerJob: round(bare.commandsPerJob),
      floorRotationsPerSecond: round(floor),
      ratioToBare: Number((best / bare.jobsPerSecond).toPrecision(3)),
      ratioToFloor: Number((best / floor).toPrecision(3)),
    };
    console.log(`rotation throughput (${n} secrets per phase, concurrency ${concurrency} per process, in-memory providers, real Redis + PostgreSQL)`);
    for (const p of phases) {
      console.log(
        `  ${p.processes} process(es)   ${p.rotationsPerSecond} /s   p50 ${p.latencyP50Ms} ms   p99 ${p.latencyP99Ms} ms   failed ${p.failed}   per rotation: ${p.statementsPerRotation} statements, ${p.commitsPerRotation} commits, ${p.walFlushesPerRotation} WAL flushes, ${p.redisCommandsPerRotation} Redis commands`,
      );
    }
    console.log(`  bare BullMQ jobs    ${figures.bareJobsPerSecond} /s   (${figures.bareRedisCommandsPerJob} Redis commands per job)`);
    console.log(`  pg floor            ${figures.floorRotationsPerSecond} rotations/s   (${first.commitsPerRotation} transactions of the same statements per rotation, from Node)`);
    console.log(`  ratios              ${figures.ratioToBare} of bare BullMQ, ${figures.ratioToFloor} of the pg floor (best phase)`);
    console.log(JSON.stringify({ bench: 'rotation-throughput', ...figures }));
    return figures;
  } finally {
    statements.stop();
    await runtime.close();
    await env.cleanup();
  }
}

interface Counts {
  statements: number;
  redis: number;
}

interface ChildWorker {
  /** What the process sent so far: SQL statements and Redis commands. */
  counts(): Promise<Counts>;
  stop(): Promise<void>;
}

async function spawnWorker(env: BenchEnvironment, concurrency: number): Promise<ChildWorker> {
  const entry = fileURLToPath(new URL('./support/rotation-worker.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...env.env, CONCURRENCY: String(concurrency) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = <T>() => new Promise<T>((resolve, reject) => {
    child.once('message', (m) => resolve(m as T));
    void exited.then(() => reject(new Error('bench worker exited')));
  });
  await next<string>();
  return {
    counts: () => {
      const answer = next<Counts>();
      child.send('count');
      return answer;
    },
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * The pgbench-style floor: `commits` transactions per rotation, holding the rotation's
 * statements between them (single-row inserts, named prepared statements), from a pool as
 * wide as the workers' concurrency. Returns rotations per second.
 */
async function pgFloor(databaseUrl: string, n: number, commits: number, statements: number, concurrency: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency });
  await pool.query('CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, v int)');
  const transactions = Math.round(n * commits);
  const perTransaction = Math.max(1, Math.round(statements / commits));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const client = await pool.connect();
      try {
        while (next++ < transactions) {
          await client.query('BEGIN');
          for (let i = 0; i < perTransaction; i++) await client.query({ name: 'floor', text: 'INSERT INTO bench_floor (v) VALUES ($1)', values: [i] });
          await client.query('COMMIT');
        }
      } finally {
        client.release();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.end();
  return transactions / commits / seconds;
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
