// Rotations through failovers of real engines, in process (workers and server of one rekey,
// memory providers), each engine of the benchmark's own on loopback ports:
//
// 1. Redis Sentinel: a primary, a replica and three sentinels (`down-after-milliseconds`
//    1000); PostgreSQL the shared one, a database of the benchmark's own. The primary is
//    SIGKILLed, the sentinels promote the replica; the killed node is started again (it
//    rejoins as a replica) before the next failover.
// 2. PostgreSQL: a primary and a synchronous streaming standby behind one TCP front (what a
//    managed endpoint or CloudNativePG's -rw Service is); Redis the shared one under a prefix
//    of the benchmark's own. The primary is stopped (immediate shutdown), the standby promoted
//    and the front repointed; a new standby of the new primary is made before the next one.
//
// Rotations are requested continuously (one loop per secret, test/support/rotation-load.ts).
// Per failover: rotations per second in the 10 s before, from the failure to 5 s after the
// new primary accepts writes, and in the 10 s after that; the processing gap (last run done
// before the failure to the first after); a leak reported right after the failure (a
// rotate-then-revoke secret: replaced, then its key taken off the target) and when it left
// the target, from the new primary accepting writes (and, for Redis, from the sentinels
// naming it). At the end, from PostgreSQL: runs lost, doubled or not succeeded.
//
//   npm run bench -- failover [--redis 3] [--postgres 2] [--window 10]
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import setup from '../test/support/global-setup.js';
import { type Harness, startHarness } from '../test/support/harness.js';
import { deleteKeys, runSql } from '../test/support/isolation.js';
import { journal } from '../test/support/memory-provider.js';
import { OwnPostgres } from '../test/support/own-services.js';
import { until } from '../test/support/poll.js';
import { RedisSentinelSet } from '../test/support/redis-ha.js';
import { RotationLoad } from '../test/support/rotation-load.js';
import { REDIS_URL } from '../test/support/services.js';
import { TcpFront } from '../test/support/tcp-front.js';
import { migrate } from '../src/db/migrate.js';
import { option, printColumns } from './support/cli.js';
import { percentile } from './support/environment.js';

const LOOPED = ['s0', 's1', 's2', 's3'];
const DOWN_AFTER_MS = 1000;
const DURING_TAIL_MS = 5000;

interface Failure {
  /** performance.now() when the new primary accepted writes (and when the sentinels named it). */
  writableAt: number;
  announcedAt?: number;
}

interface Sample {
  engine: 'redis' | 'postgres';
  before: number;
  during: number;
  after: number;
  gapMs: number;
  failToWritableMs: number;
  writableToLeakBlockedMs: number;
  announcedToLeakBlockedMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function main(args: string[]): Promise<unknown> {
  const redisFailovers = Number(option(args, '--redis') ?? 3);
  const postgresFailovers = Number(option(args, '--postgres') ?? 2);
  const windowMs = Number(option(args, '--window') ?? 10) * 1000;
  await setup(); // the migrated template database the harness clones
  const dir = await mkdtemp(join(tmpdir(), 'rekey-bench-failover-'));
  await chmod(dir, 0o755); // the postgres user reaches its data directories below
  try {
    const samples: Sample[] = [];
    const problems: string[] = [];
    if (redisFailovers > 0) await sentinel(dir, redisFailovers, windowMs, samples, problems);
    if (postgresFailovers > 0) await postgres(dir, postgresFailovers, windowMs, samples, problems);
    return report(samples, problems);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function sentinel(dir: string, failovers: number, windowMs: number, samples: Sample[], problems: string[]): Promise<void> {
  const redis = await RedisSentinelSet.create(dir, DOWN_AFTER_MS);
  let h: Harness | undefined;
  try {
    h = await startHarness({ label: 'bench-failover', redisUrl: redis.url, lockDurationMs: 5000 });
    const harness = h;
    await run(harness, 'redis', failovers, windowMs, samples, problems, async (report) => {
      const old = await redis.primary();
      const replica = redis.data.find((n) => n !== old)!;
      await old.kill('SIGKILL');
      report();
      const announced = redis.announced(replica);
      await until(async () => ((await replica.command('ROLE').catch(() => [])) as string[])[0] === 'master', 60_000, 'the replica promoted');
      const writableAt = performance.now();
      return { writableAt, announcedAt: await announced, recover: async () => (await old.start(), await redis.settled(120_000)) };
    });
  } finally {
    await Promise.race([h?.stop(), sleep(15_000)]);
    await redis.stop();
  }
}

async function postgres(dir: string, failovers: number, windowMs: number, samples: Sample[], problems: string[]): Promise<void> {
  const servers: OwnPostgres[] = [];
  const make = async (of?: OwnPostgres) => {
    const home = join(dir, `pg-${servers.length}`);
    await mkdir(home);
    const server = of ? await OwnPostgres.standbyOf(of, home) : await OwnPostgres.create(home);
    servers.push(server);
    return server;
  };
  const synchronous = async (primary: OwnPostgres) => {
    // A commit returns once the standby has it: what makes "nothing lost" hold through the promotion.
    await runSql(primary.adminUrl, ["ALTER SYSTEM SET synchronous_standby_names = '*'", 'SELECT pg_reload_conf()']);
    await until(async () => (await queryOne(primary.adminUrl, 'SELECT sync_state FROM pg_stat_replication')) === 'sync', 60_000, 'the standby in sync');
  };
  let primary = await make();
  await migrate(primary.url);
  let standby = await make(primary);
  await synchronous(primary);
  const front = await TcpFront.listen(primary.port);
  const prefix = `{bench-failover-${randomUUID().slice(0, 8)}}`;
  const isolated = { databaseUrl: `postgresql://postgres@127.0.0.1:${front.port}/rekey`, redisUrl: REDIS_URL, prefix, cleanup: () => deleteKeys(`${prefix}*`) };
  let h: Harness | undefined;
  try {
    h = await startHarness({ label: 'bench-failover', isolated, lockDurationMs: 5000 });
    await run(h, 'postgres', failovers, windowMs, samples, problems, async (report) => {
      await primary.kill('SIGQUIT'); // immediate shutdown: no checkpoint, sessions cut
      report();
      standby.promote();
      front.repoint(standby.port, { cut: true });
      const writableAt = performance.now();
      return {
        writableAt,
        recover: async () => {
          primary = standby;
          standby = await make(primary);
          await synchronous(primary);
        },
      };
    });
  } finally {
    await Promise.race([h?.stop(), sleep(15_000)]);
    await front.close();
    for (const server of servers) await server.kill('SIGQUIT');
  }
}

/**
 * `failovers` times: steady rotations for `windowMs`, then `fail` (which calls `report` right
 * after the failure), the leak blocked, three rotations of each secret after, `windowMs` more,
 * then `recover` makes the engine ready for the next one.
 */
async function run(
  h: Harness,
  engine: Sample['engine'],
  failovers: number,
  windowMs: number,
  samples: Sample[],
  problems: string[],
  fail: (report: () => void) => Promise<Failure & { recover(): Promise<unknown> }>,
): Promise<void> {
  const name = `failover-${engine}-${randomUUID()}`;
  const j = journal(name);
  const block = (secret: string) => `  ${secret}:\n    store: { provider: mem }\n    issuer: { provider: mem }\n    targets: [mem]\n    grace: 1s\n    retry: { attempts: 30, backoff: 300ms }\n`;
  await h.apply(`providers:\n  mem: { type: memory, journal: ${name} }\nsecrets:\n${[...LOOPED, 'leaky'].map(block).join('')}`);
  await h.rotate('leaky', 60_000);
  const load = new RotationLoad(h, LOOPED);
  try {
    for (let i = 0; i < failovers; i++) {
      const secret = (await h.runtime.engine.deps.repo.getSecret('leaky'))!;
      const fingerprint = (await h.runtime.engine.deps.repo.versions(secret.id, ['current']))[0]!.fingerprint!;
      const accepted = () => j.accepted.get('mem')?.has(fingerprint) ?? false;
      await sleep(windowMs);
      const failedAt = performance.now();
      // A leak sender redelivers until the report is taken (PostgreSQL away: refused).
      let reported: Promise<unknown> = Promise.resolve();
      const report = () => {
        reported = (async () => {
          for (;;) {
            const taken = await h.runtime.engine.reportLeak({ source: 'bench', deliveryId: randomUUID(), fingerprint, receivedAt: new Date() }).catch(() => undefined);
            if (taken) return;
            await sleep(250);
          }
        })();
      };
      const failure = await fail(report);
      await until(() => Promise.resolve(!accepted()), 120_000, 'the leaked key gone from the target');
      const blockedAt = performance.now();
      await reported;
      await until(() => Promise.resolve(load.completedAfter(failure.writableAt, 3)), 120_000, 'three rotations of each secret after the failover');
      await sleep(Math.max(0, failure.writableAt + DURING_TAIL_MS + windowMs - performance.now()));
      const at = load.completions.map((c) => c.at);
      const rate = (from: number, to: number) => at.filter((t) => t >= from && t < to).length / ((to - from) / 1000);
      const tail = failure.writableAt + DURING_TAIL_MS;
      samples.push({
        engine,
        before: rate(failedAt - windowMs, failedAt),
        during: rate(failedAt, tail),
        after: rate(tail, tail + windowMs),
        gapMs: longestGap(at.filter((t) => t >= failedAt - windowMs && t < tail + windowMs)),
        failToWritableMs: failure.writableAt - failedAt,
        writableToLeakBlockedMs: blockedAt - failure.writableAt,
        ...(failure.announcedAt !== undefined ? { announcedToLeakBlockedMs: blockedAt - failure.announcedAt } : {}),
      });
      console.log(`  ${engine} failover ${i + 1}: ${JSON.stringify(samples.at(-1), (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v))}`);
      // Where the leak's seconds went: the leaked secret's audit events, in ms after the new primary accepted writes.
      const epochOf = (t: number) => Date.now() - (performance.now() - t);
      const events = await h.runtime.db.auditEvent.findMany({ where: { secret: 'leaky', at: { gte: new Date(epochOf(failedAt)) } }, orderBy: { seq: 'asc' }, select: { at: true, action: true } });
      console.log(`    leak: ${events.map((e) => `${e.action}@${Math.round(e.at.getTime() - epochOf(failure.writableAt))}`).join(' ')}, off the target @${Math.round(blockedAt - failure.writableAt)}`);
      await failure.recover();
    }
  } finally {
    await load.stop();
  }
  problems.push(...(await load.problems()).map((p) => `${engine}: ${p}`));
  const leaky = await h.runtime.db.version.count({ where: { secret: { name: 'leaky' }, state: 'current' } });
  if (leaky !== 1) problems.push(`${engine}: leaky has ${leaky} current versions`);
}

function report(samples: Sample[], problems: string[]): unknown {
  const figures: Record<string, unknown> = { bench: 'failover' };
  const rows = [['', 'failovers', 'rot/s before', 'during', 'after', 'gap p50 ms', 'gap max', 'fail→writable', 'leak blocked after writable p50', 'max', 'after sentinels named it p50']];
  for (const engine of ['redis', 'postgres'] as const) {
    const mine = samples.filter((s) => s.engine === engine);
    if (!mine.length) continue;
    const mean = (pick: (s: Sample) => number) => mine.reduce((sum, s) => sum + pick(s), 0) / mine.length;
    const sorted = (pick: (s: Sample) => number | undefined) => mine.map(pick).filter((v): v is number => v !== undefined).sort((a, b) => a - b);
    const gaps = sorted((s) => s.gapMs);
    const blocked = sorted((s) => s.writableToLeakBlockedMs);
    const announced = sorted((s) => s.announcedToLeakBlockedMs);
    const f = {
      failovers: mine.length,
      rotationsPerSecond: { before: mean((s) => s.before), during: mean((s) => s.during), after: mean((s) => s.after) },
      gapMs: { p50: percentile(gaps, 50), max: gaps.at(-1)! },
      failToWritableMs: { p50: percentile(sorted((s) => s.failToWritableMs), 50) },
      leakBlockedAfterWritableMs: { p50: percentile(blocked, 50), max: blocked.at(-1)! },
      ...(announced.length ? { leakBlockedAfterAnnouncedMs: { p50: percentile(announced, 50), max: announced.at(-1)! } } : {}),
    };
    figures[engine] = f;
    const r = (n: number | undefined) => (n === undefined ? '-' : String(Math.round(n)));
    rows.push([
      engine === 'redis' ? `Redis Sentinel (down-after ${DOWN_AFTER_MS} ms)` : 'PostgreSQL promotion',
      String(mine.length),
      f.rotationsPerSecond.before.toFixed(1),
      f.rotationsPerSecond.during.toFixed(1),
      f.rotationsPerSecond.after.toFixed(1),
      r(f.gapMs.p50),
      r(f.gapMs.max),
      r(f.failToWritableMs.p50),
      r(f.leakBlockedAfterWritableMs.p50),
      r(f.leakBlockedAfterWritableMs.max),
      r(f.leakBlockedAfterAnnouncedMs?.p50),
    ]);
  }
  console.log(`\nfailover (${LOOPED.length} secrets rotated back to back, memory providers, in-process workers)`);
  printColumns(rows);
  console.log(problems.length ? `\nPROBLEMS (lost, doubled or failed runs):\n${problems.join('\n')}` : '\nruns lost or doubled: 0 (every requested run succeeded once, one version each, one current version per secret)');
  figures.problems = problems;
  console.log(JSON.stringify(figures));
  if (problems.length) process.exitCode = 1;
  return figures;
}

/** The longest time between two consecutive completions. */
function longestGap(times: readonly number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted.slice(1).reduce((gap, t, i) => Math.max(gap, t - sorted[i]!), 0);
}

async function queryOne(url: string, sql: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return Object.values((await client.query<Record<string, unknown>>(sql)).rows[0] ?? {})[0];
  } finally {
    await client.end().catch(() => undefined);
  }
}
