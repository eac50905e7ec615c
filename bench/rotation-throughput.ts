/**
 * Rotation throughput: secrets (in-memory store, issuer and target, so providers cost
 * nothing) rotated at once, each for the second time (a current version to displace, as in
 * steady state; the first, untimed, warms up, as do 200 more secrets per process rotated twice, and more at 2 and 3
 * processes so that each process has rotated as often before the timed rotations: warmSecrets), by 1, 2 and 3 worker processes (bench/support/rotation-worker.ts:
 * the real engine, BullMQ on the real Redis, state on the real PostgreSQL). For each:
 * rotations per second, run latency p50/p99, and per rotation the SQL statements (counted
 * in every process), round trips to PostgreSQL and Redis (counted in every process, each by
 * what it carried), commits (pg_stat_database.xact_commit of the bench's own database,
 * read transactions included) and WAL flushes (pg_stat_wal.wal_sync: cluster-wide, so other
 * databases' writes count too). In the same run, two floors: bare BullMQ jobs making the
 * same Redis round trips per job, and a pgbench-style floor (the same number of small
 * transactions per rotation, issued from Node with pg named prepared statements), with
 * PostgreSQL's CPU per rotation in it, to set beside the phases' (the same statements' count,
 * not their work: single-row inserts into a table of one index). And a schema floor
 * (bench/support/schema-floor.ts): the rows a rotation must write, into rekey's own tables
 * with their indexes, constraints and triggers, as plain statements in as many transactions
 * and round trips: what the phases' PostgreSQL CPU is rekey's own work beyond.
 * Per rotation it also gives the CPU time of each party (the worker processes, PostgreSQL's
 * backends, redis-server, this process), from /proc: what a saturated phase is short of.
 *   npm run bench -- rotation-throughput [--secrets 200] [--concurrency 20] [--processes 1,2,3] [--cpu-prof DIR]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
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
import { type ProcessDetail, processCpu, processDetail } from './support/proc-cpu.js';
import { floorSecrets, rotateFloor } from './support/schema-floor.js';


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
  /** Round trips per rotation: to PostgreSQL (one per Sync: a batch of statements is one) and to Redis (a pipeline is one). */
  roundTripsPerRotation: { postgres: number; redis: number };
  /** Per rotation, by statement name (Prisma's unnamed ones by their first words), most first. */
  statementsByName: Record<string, number>;
  /** PostgreSQL round trips per rotation, by what each carried (a batch's statements joined by `+`), most first. */
  postgresTripsByKind: Record<string, number>;
  /** Redis commands per rotation by name (BullMQ's scripts by theirs), most first. */
  redisCommandsByName: Record<string, number>;
  /** CPU milliseconds per rotation of each party: the worker processes, PostgreSQL (every backend), redis-server, the bench (requests and polls). */
  cpuMsPerRotation: { workers: number; postgres: number; redis: number; bench: number };
  /**
   * Per rotation, of the worker processes and of PostgreSQL's backends (the bench's database):
   * CPU by mode, context switches asked for (a wait) and not (preempted), and the workers'
   * read/write system calls (/proc, Linux): where more CPU per rotation goes.
   */
  detailPerRotation: { workers: ProcessDetail; postgres: ProcessDetail };
  /** Cluster-wide, per rotation: WAL bytes and full-page images; and checkpoints begun during the phase (see pgCounters). */
  wal: { bytesPerRotation: number; fullPagesPerRotation: number; checkpoints: number };
}

export async function main(args: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args,
    options: { secrets: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '20' }, processes: { type: 'string', default: '1,2,3' }, 'cpu-prof': { type: 'string' } },
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
  let poller: pg.Client | undefined;
  try {
    await runtime.connect();
    const names = (phase: number, count: number) => Array.from({ length: count }, (_, i) => `p${phase}s${i}`);
    const warm = (phase: number) => Array.from({ length: warmSecrets(counts[phase]!, n) }, (_, i) => `p${phase}w${i}`);
    const all = counts.flatMap((_, k) => [...names(k, n), ...warm(k)]);
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
    /**
     * Polls until every run is done; returns how many polls (each one commit of ours). Cheap on
     * purpose (one small named statement, asking only about the runs still running at the poll
     * before): the polls share the cores with the workers, and PostgreSQL's CPU counts them. The
     * next poll comes when about half of the runs still running should be done at the rate of the
     * last two polls (25 ms to 1 s apart): a dozen or two polls a phase instead of one every 25 ms,
     * which cost PostgreSQL 0.3–0.5 ms per rotation at 1,000 secrets (each asked about every run
     * still running), and the end of a phase is seen about as soon.
     */
    poller = new pg.Client({ connectionString: env.databaseUrl });
    await poller.connect();
    const settle = async (runIds: string[]) => {
      let polls = 0;
      let running = runIds;
      let wait = 25;
      while (running.length > 0) {
        if (polls > 0) await new Promise((r) => setTimeout(r, wait));
        polls += 1;
        const polled = performance.now();
        const { rows } = await poller!.query<{ id: string }>({ name: 'settle', text: `SELECT id FROM runs WHERE id = ANY($1::uuid[]) AND status::text = 'running'`, values: [running] });
        const done = running.length - rows.length;
        running = rows.map((r) => r.id);
        // Runs done per ms since the last poll (its wait and this query's time).
        const rate = done / (wait + performance.now() - polled);
        wait = rate > 0 ? Math.min(1000, Math.max(25, running.length / rate / 2)) : 25;
      }
      return polls;
    };

    const phases: Phase[] = [];
    for (const [k, processes] of counts.entries()) {
      const children = await Promise.all(Array.from({ length: processes }, () => spawnWorker(env, concurrency, values['cpu-prof'])));
      try {
        // Untimed: each secret's first rotation, which also warms the workers up. The timed one
        // is each secret's second, as most are: it displaces a current version (one more change).
        // Its paths (the promotion of a secret with a current version, the retirement's delayed
        // job) are warmed first on secrets of their own rotated twice: without that the timed
        // phase paid V8 for compiling them (9% of a worker's CPU in it, 96 optimized compiles
        // after 2,000 first rotations), which a long-running worker pays once.
        for (let i = 0; i < 2; i++) await settle(await rotate(warm(k)));
        await settle(await rotate(names(k, n)));
        const sum = async () => {
          const all = await Promise.all(children.map((c) => c.counts()));
          const total = (f: (c: Counts) => number) => all.reduce((a, c) => a + f(c), 0);
          return {
            statements: total((c) => c.statements),
            redis: total((c) => c.redis),
            redisTrips: total((c) => c.redisTrips),
            byName: merged(all.map((c) => c.byName), 1),
            pgTrips: merged(all.map((c) => c.pgTrips), 1),
            redisByName: merged(all.map((c) => c.redisByName), 1),
            cpuMs: total((c) => c.cpuMs),
          };
        };
        const childrenBefore = await sum();
        const before = await pgCounters(env.databaseUrl);
        const monitor = countCommands(env.prefix);
        const cpuBefore = await partyCpuMs(env.databaseUrl);
        const detailBefore = await partyDetail(env.databaseUrl, children);
        const started = performance.now();
        const requestStatements = statements.count();
        const requestByName = statements.byName();
        const requestTrips = statements.tripsByKind();
        const runIds = await rotate(names(k, n));
        const requested = statements.count() - requestStatements;
        // The requests' statements count, the bench's own polls below do not.
        const requestedByName = merged([statements.byName(), merged([requestByName], -1)], 1);
        const requestedTrips = merged([statements.tripsByKind(), merged([requestTrips], -1)], 1);
        const polls = await settle(runIds);
        const cpuAfter = await partyCpuMs(env.databaseUrl);
        const detailAfter = await partyDetail(env.databaseUrl, children);
        const seconds = (performance.now() - started) / 1000;
        monitor.stop();
        const childrenAfter = await sum();
        const redisCommands = monitor.count() + childrenAfter.redis - childrenBefore.redis;
        const pgTripsAfter = merged([childrenAfter.pgTrips, requestedTrips], 1);
        const pgTrips = perRotation(childrenBefore.pgTrips, pgTripsAfter, n);
        const sumOf = (counts: Record<string, number>) => Object.values(counts).reduce((x, y) => x + y, 0);
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
          roundTripsPerRotation: {
            postgres: round((sumOf(pgTripsAfter) - sumOf(childrenBefore.pgTrips)) / n),
            redis: round((monitor.roundTrips() + childrenAfter.redisTrips - childrenBefore.redisTrips) / n),
          },
          statementsByName: perRotation(childrenBefore.byName, merged([childrenAfter.byName, requestedByName], 1), n),
          postgresTripsByKind: pgTrips,
          redisCommandsByName: perRotation(childrenBefore.redisByName, merged([childrenAfter.redisByName, monitor.byName()], 1), n),
          cpuMsPerRotation: {
            workers: round((childrenAfter.cpuMs - childrenBefore.cpuMs) / n),
            postgres: round((cpuAfter.postgres - cpuBefore.postgres) / n),
            redis: round((cpuAfter.redis - cpuBefore.redis) / n),
            bench: round((cpuAfter.bench - cpuBefore.bench) / n),
          },
          wal: { bytesPerRotation: Math.round((after.walBytes - before.walBytes) / n), fullPagesPerRotation: round((after.walFpi - before.walFpi) / n), checkpoints: after.checkpoints - before.checkpoints },
          detailPerRotation: { workers: detailDiff(detailBefore.workers, detailAfter.workers, n), postgres: detailDiff(detailBefore.postgres, detailAfter.postgres, n) },
        });
      } finally {
        await Promise.all(children.map((c) => c.stop()));
      }
    }

    const first = phases[0]!;
    const bare = await bareBullmq(env.redisUrl, `${env.prefix.slice(0, -1)}-bare}`, n, concurrency, first.redisCommandsPerRotation);
    const floor = await pgFloor(env.databaseUrl, n, first.commitsPerRotation, first.statementsPerRotation, concurrency);
    const schema = await schemaFloor(env.databaseUrl, names(0, n), concurrency);
    const best = Math.max(...phases.map((p) => p.rotationsPerSecond));
    const figures = {
      secrets: n,
      concurrency,
      phases,
      bareJobsPerSecond: round(bare.jobsPerSecond),
      bareRedisCommandsPerJob: round(bare.commandsPerJob),
      floorRotationsPerSecond: round(floor.rotationsPerSecond),
      floorCpuMsPerRotation: floor.cpuMsPerRotation,
      ratioToBare: Number((best / bare.jobsPerSecond).toPrecision(3)),
      ratioToFloor: Number((best / floor.rotationsPerSecond).toPrecision(3)),
      schemaFloorRotationsPerSecond: round(schema.rotationsPerSecond),
      schemaFloorCpuMsPerRotation: schema.cpuMsPerRotation,
      ratioToSchemaFloor: Number((best / schema.rotationsPerSecond).toPrecision(3)),
    };
    console.log(`rotation throughput (${n} secrets per phase, concurrency ${concurrency} per process, in-memory providers, real Redis + PostgreSQL)`);
    for (const p of phases) {
      console.log(
        `  ${p.processes} process(es)   ${p.rotationsPerSecond} /s   p50 ${p.latencyP50Ms} ms   p99 ${p.latencyP99Ms} ms   failed ${p.failed}   per rotation: ${p.statementsPerRotation} statements, ${p.commitsPerRotation} commits, ${p.walFlushesPerRotation} WAL flushes, ${p.redisCommandsPerRotation} Redis commands; round trips: PostgreSQL ${p.roundTripsPerRotation.postgres}, Redis ${p.roundTripsPerRotation.redis}; CPU ms: workers ${p.cpuMsPerRotation.workers}, postgres ${p.cpuMsPerRotation.postgres}, redis ${p.cpuMsPerRotation.redis}, bench ${p.cpuMsPerRotation.bench}`,
      );
    }
    for (const p of phases) {
      const shown = (d: ProcessDetail) => `user ${d.userMs} ms, system ${d.systemMs} ms, switches ${d.voluntary} waited + ${d.involuntary} preempted`;
      const w = p.detailPerRotation.workers;
      console.log(`  ${p.processes} process(es) per rotation: workers ${shown(w)}, main threads ${w.mainThreadMs} ms, ${w.reads} reads + ${w.writes} writes; postgres ${shown(p.detailPerRotation.postgres)}; WAL ${p.wal.bytesPerRotation} bytes, ${p.wal.fullPagesPerRotation} full pages, ${p.wal.checkpoints} checkpoint(s) begun`);
    }
    const listed = (counts: Record<string, number>) => Object.entries(counts).map(([name, c]) => `${name} ${c}`).join(', ');
    console.log(`  statements per rotation (1st phase): ${listed(first.statementsByName)}`);
    console.log(`  PostgreSQL round trips per rotation (1st phase), by what each carried: ${listed(first.postgresTripsByKind)}`);
    console.log(`  Redis commands per rotation (1st phase): ${listed(first.redisCommandsByName)}`);
    console.log(`  bare BullMQ jobs    ${figures.bareJobsPerSecond} /s   (${figures.bareRedisCommandsPerJob} Redis commands per job)`);
    console.log(
      `  pg floor            ${figures.floorRotationsPerSecond} rotations/s   (${first.commitsPerRotation} transactions of the same statements per rotation, from Node; CPU ms per rotation: postgres ${floor.cpuMsPerRotation.postgres}, bench ${floor.cpuMsPerRotation.bench})`,
    );
    console.log(
      `  schema floor        ${figures.schemaFloorRotationsPerSecond} rotations/s   (what a rotation must write into rekey's tables, 6 transactions of 2 round trips; CPU ms per rotation: postgres ${schema.cpuMsPerRotation.postgres}, bench ${schema.cpuMsPerRotation.bench})`,
    );
    console.log(`  ratios              ${figures.ratioToBare} of bare BullMQ, ${figures.ratioToFloor} of the pg floor, ${figures.ratioToSchemaFloor} of the schema floor (best phase)`);
    console.log(JSON.stringify({ bench: 'rotation-throughput', ...figures }));
    return figures;
  } finally {
    statements.stop();
    await poller?.end();
    await runtime.close();
    await env.cleanup();
  }
}

interface Counts {
  statements: number;
  byName: Record<string, number>;
  pgTrips: Record<string, number>;
  redis: number;
  redisByName: Record<string, number>;
  redisTrips: number;
  cpuMs: number;
}

/**
 * CPU milliseconds used so far (/proc, Linux; 0 elsewhere) by PostgreSQL (the backends of the
 * bench's database and the server's own processes, not other databases' backends), by every
 * redis-server (shared: read it on a quiet machine) and by this process. A backend that exits
 * takes its time with it: the bench's pools keep theirs for the whole phase.
 */
async function partyCpuMs(databaseUrl: string): Promise<{ postgres: number; redis: number; bench: number }> {
  const { user, system } = process.cpuUsage();
  const sums = { postgres: 0, redis: 0, bench: (user + system) / 1000 };
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL`).finally(() => client.end());
  const ours = new Set(rows.map((r) => String(r.pid)));
  const pids = await readdir('/proc').catch(() => [] as string[]);
  for (const pid of pids.filter((p) => /^\d+$/.test(p))) {
    const cpu = processCpu(pid);
    const party = cpu?.comm === 'postgres' && ours.has(pid) ? 'postgres' : cpu?.comm === 'redis-server' ? 'redis' : undefined;
    if (party) sums[party] += cpu!.ms;
  }
  return sums;
}

/**
 * {@link ProcessDetail} summed over the worker processes, and over PostgreSQL's backends of the
 * bench's database (not the server's own processes: their work is not per connection), so far.
 */
async function partyDetail(databaseUrl: string, children: readonly ChildWorker[]): Promise<{ workers: ProcessDetail; postgres: ProcessDetail }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).finally(() => client.end());
  const sum = (pids: readonly number[]) => {
    const total: ProcessDetail = { userMs: 0, systemMs: 0, mainThreadMs: 0, voluntary: 0, involuntary: 0, reads: 0, writes: 0 };
    for (const pid of pids) {
      const d = processDetail(pid);
      if (d) for (const k of Object.keys(total) as (keyof ProcessDetail)[]) total[k] += d[k];
    }
    return total;
  };
  return { workers: sum(children.map((c) => c.pid)), postgres: sum(rows.map((r) => r.pid)) };
}

/** What each field of a {@link ProcessDetail} grew by, per rotation. */
function detailDiff(before: ProcessDetail, after: ProcessDetail, n: number): ProcessDetail {
  const diff = { ...after };
  for (const k of Object.keys(diff) as (keyof ProcessDetail)[]) diff[k] = round((after[k] - before[k]) / n);
  return diff;
}

/** Sums counts by name, each scaled by `factor`. */
function merged(counts: readonly Record<string, number>[], factor: number): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const c of counts) for (const [name, k] of Object.entries(c)) sums[name] = (sums[name] ?? 0) + k * factor;
  return sums;
}

/** What was counted between two readings, per rotation, most first (under 0.05 per rotation left out). */
function perRotation(before: Record<string, number>, after: Record<string, number>, n: number): Record<string, number> {
  const diff = merged([after, merged([before], -1)], 1 / n);
  return Object.fromEntries(Object.entries(diff).filter(([, k]) => k >= 0.05).sort(([, a], [, b]) => b - a).map(([name, k]) => [name, round(k)]));
}

interface ChildWorker {
  pid: number;
  /** What the process sent so far: SQL statements and Redis commands. */
  counts(): Promise<Counts>;
  stop(): Promise<void>;
}

/** `cpuProf`: a directory each worker writes a V8 CPU profile to when it stops. */
async function spawnWorker(env: BenchEnvironment, concurrency: number, cpuProf: string | undefined): Promise<ChildWorker> {
  const entry = fileURLToPath(new URL('./support/rotation-worker.ts', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : []), '--import', 'tsx', entry], {
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
    pid: child.pid!,
    counts: () => {
      const answer = next<Counts>();
      child.send('count');
      return answer;
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * The pgbench-style floor: `commits` transactions per rotation, holding the rotation's
 * statements between them (single-row inserts, named prepared statements), from a pool as
 * wide as the workers' concurrency. Returns rotations per second and, per rotation, the CPU
 * milliseconds of PostgreSQL's backends and of this process (which issues them), measured as
 * the phases' are: what PostgreSQL's share of a real rotation is compared with.
 */
async function pgFloor(databaseUrl: string, n: number, commits: number, statements: number, concurrency: number): Promise<{ rotationsPerSecond: number; cpuMsPerRotation: { postgres: number; bench: number } }> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency });
  // pool.end() resolves before its connections have closed; the cleanup's DROP DATABASE … WITH (FORCE)
  // can terminate one still closing, whose error the pool re-emits (and would end the process unheard).
  pool.on('error', () => undefined);
  await pool.query('CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, v int)');
  const transactions = Math.round(n * commits);
  const perTransaction = Math.max(1, Math.round(statements / commits));
  // Every connection open before the CPU is read: a backend that exits takes its time with it.
  await Promise.all(Array.from({ length: concurrency }, () => pool.connect())).then((clients) => clients.forEach((c) => c.release()));
  let next = 0;
  const cpuBefore = await partyCpuMs(databaseUrl);
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
  const cpuAfter = await partyCpuMs(databaseUrl);
  await pool.end();
  const rotations = transactions / commits;
  return {
    rotationsPerSecond: rotations / seconds,
    cpuMsPerRotation: { postgres: round((cpuAfter.postgres - cpuBefore.postgres) / rotations), bench: round((cpuAfter.bench - cpuBefore.bench) / rotations) },
  };
}

/**
 * The schema floor (bench/support/schema-floor.ts): a third rotation of each of the first
 * phase's secrets written as plainly as rekey's tables allow, from a pool as wide as the
 * workers' concurrency; measured as {@link pgFloor} is.
 */
async function schemaFloor(databaseUrl: string, names: string[], concurrency: number): Promise<{ rotationsPerSecond: number; cpuMsPerRotation: { postgres: number; bench: number } }> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency });
  pool.on('error', () => undefined);
  const clients = await Promise.all(Array.from({ length: concurrency }, () => pool.connect()));
  const secrets = await floorSecrets(clients[0]!, names);
  let next = 0;
  const cpuBefore = await partyCpuMs(databaseUrl);
  const started = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      try {
        while (next < secrets.length) await rotateFloor(client, secrets[next++]!);
      } finally {
        client.release();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = await partyCpuMs(databaseUrl);
  await pool.end();
  const rotations = secrets.length;
  return {
    rotationsPerSecond: rotations / seconds,
    cpuMsPerRotation: { postgres: round((cpuAfter.postgres - cpuBefore.postgres) / rotations), bench: round((cpuAfter.bench - cpuBefore.bench) / rotations) },
  };
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
/**
 * The secrets rotated twice before the timed secrets' first rotation by `processes` worker processes
 * (see the phase loop): {@link WARM} per process, plus as many as make each process rotate as often
 * before the timed rotations as one process does (2 × WARM + n), since the timed secrets' first
 * rotations are shared among the processes. V8 compiles a worker's hot code as it runs it, in every
 * process: with WARM alone, each of 2 processes came to the timed phase after 900 rotations of its
 * own where one process had done 1,400, and was still compiling (perf, 10:50–11:11 UTC on
 * 2026-12-07: 0.2–0.35 ms more per rotation in V8's compilers, 0.15–0.45 ms more in the interpreter
 * and builtins): a cost a long-running worker pays once, which the 2- and 3-process phases were charged.
 */
function warmSecrets(processes: number, n: number): number {
  return processes * WARM + Math.ceil((n * (processes - 1)) / 2);
}
/** Secrets per worker process rotated twice before the timed secrets' first rotation (see the phase loop). */
const WARM = 200;
