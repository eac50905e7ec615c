/** A throwaway rekey for benchmarks: own database (migrated) and queue prefix, removed afterwards. */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ensureDatabase, migrate } from '../../src/db/migrate.js';

export interface BenchEnvironment {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  /** What a rekey process (CLI or worker) needs in its environment to use this one. */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

export async function benchEnvironment(label: string): Promise<BenchEnvironment> {
  const id = randomUUID().slice(0, 8);
  const base = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
  // BENCH_DATABASE_PREFIX: an engineer's own database namespace on a shared server (rekey_<name>).
  const name = `${process.env.BENCH_DATABASE_PREFIX ?? 'rekey_bench'}_${label}_${id}`;
  base.pathname = `/${name}`;
  const databaseUrl = base.toString();
  await ensureDatabase(databaseUrl);
  await migrate(databaseUrl);
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `{bench-${id}}`;
  return {
    databaseUrl,
    redisUrl,
    prefix,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REKEY_QUEUE_PREFIX: prefix,
      REKEY_FINGERPRINT_KEY: 'f'.repeat(64),
      REKEY_AUDIT_KEY: 'a'.repeat(64),
      REKEY_LOCAL_STORE_KEY: 'b'.repeat(64),
    },
    async cleanup() {
      const admin = new URL(databaseUrl);
      admin.pathname = '/postgres';
      const client = new pg.Client({ connectionString: admin.toString() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await client.end();
      const redis = new Redis(redisUrl);
      const keys = await redis.keys(`${prefix}*`);
      for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
      redis.disconnect();
    },
  };
}

/**
 * Counts the Redis commands this process sends (every ioredis client, BullMQ's included)
 * whose arguments touch keys under a prefix, in all and by name (a script by the name it was
 * defined with), and the round trips they took: a command on its own is one, a pipeline or
 * MULTI (its commands written together) one in all. Client-side, because MONITOR cannot keep up.
 * It runs in the measured worker processes, whose CPU the rotation bench reports: a Buffer
 * argument (BullMQ's packed job data) is searched as bytes, not decoded to a string first, and a
 * SHA1 no defined script has (the change feed's EVALSHA) is remembered as `evalsha`, not looked
 * up again in every script of the client at each call.
 */
export function countCommands(prefix: string): { count(): number; roundTrips(): number; byName(): Record<string, number>; stop(): void } {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- wrapped and restored below, always called with its client
  const original = Redis.prototype.sendCommand;
  let count = 0;
  let roundTrips = 0;
  const names = new Map<string, number>();
  const pipelines = new WeakSet<object>();
  const scripts = new WeakMap<Redis, Map<string, string>>();
  /** A script's name by its SHA1 (defineCommand's scripts, BullMQ's among them), else the command's. */
  const nameOf = (client: Redis, command: { name: string; args: unknown[] }) => {
    if (command.name !== 'evalsha') return command.name;
    const sha = String(command.args[0]);
    let known = scripts.get(client);
    let name = known?.get(sha);
    if (name === undefined) {
      if (!known) scripts.set(client, (known = new Map<string, string>()));
      const defined = (client as unknown as { scriptsSet: Record<string, { sha: string }> }).scriptsSet;
      for (const [defines, script] of Object.entries(defined)) known.set(script.sha, defines);
      name = known.get(sha) ?? 'evalsha';
      known.set(sha, name);
    }
    return name;
  };
  const touches = (a: unknown) => (typeof a === 'string' ? a.includes(prefix) : Buffer.isBuffer(a) ? a.includes(prefix) : String(a).includes(prefix));
  Redis.prototype.sendCommand = function (this: Redis, command, stream) {
    if (command.args.some(touches)) {
      count += 1;
      const name = nameOf(this, command);
      names.set(name, (names.get(name) ?? 0) + 1);
      if (!stream) roundTrips += 1;
      else if (!pipelines.has(stream)) {
        pipelines.add(stream);
        roundTrips += 1;
      }
    }
    return original.call(this, command, stream);
  };
  return {
    count: () => count,
    roundTrips: () => roundTrips,
    byName: () => Object.fromEntries(names),
    stop: () => void (Redis.prototype.sendCommand = original),
  };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Counts the SQL statements this process sends to PostgreSQL (Prisma's driver adapter,
 * `pg` and the batches of src/db/batch.ts alike go through pg.Client#query), transaction control (BEGIN, COMMIT, ROLLBACK)
 * left out: those are counted as commits from PostgreSQL's own statistics. Also counts the
 * round trips (each query() call is one Sync, answered by one ReadyForQuery: a batch is one
 * however many statements it holds; BEGIN and COMMIT sent alone are one each), in all and by
 * what each carried (`BEGIN+rekey_lock_run_secret+...` for a batch).
 */
export function countStatements(): { count(): number; byName(): Record<string, number>; roundTrips(): number; tripsByKind(): Record<string, number>; stop(): void } {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- wrapped and restored below, always called with its client
  const original = pg.Client.prototype.query;
  const names = new Map<string, number>();
  const trips = new Map<string, number>();
  const control = /^\s*(BEGIN|COMMIT|ROLLBACK|START TRANSACTION)\b/i;
  /**
   * A named statement by its name, any other by its first words (Prisma's are unnamed), or
   * transaction control by its word; `kind` is how a round trip lists it. Worked out once per
   * name (one text per name) or text: this runs in the measured worker processes, at every query.
   */
  const known = new Map<string, { name: string; control: boolean; kind: string }>();
  const nameOf = (query: { text?: string; name?: string } | string | undefined) => {
    const text = typeof query === 'string' ? query : query?.text;
    if (typeof text !== 'string') return undefined;
    const key = (typeof query === 'object' && query.name) || text;
    let named = known.get(key);
    if (!named) {
      const word = control.exec(text)?.[1];
      const name = word ? word.toUpperCase() : (typeof query === 'object' && query.name) || text.replace(/\s+/g, ' ').slice(0, 60);
      known.set(key, (named = { name, control: !!word, kind: name.replace(/^rekey_/, '') }));
    }
    return named;
  };
  const count = (query: { text?: string; name?: string } | string | undefined) => {
    const named = nameOf(query);
    if (named && !named.control) names.set(named.name, (names.get(named.name) ?? 0) + 1);
    return named?.kind ?? '?';
  };
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const query = args[0] as { text?: string; name?: string; queries?: Array<{ text: string; name: string }> } | string | undefined;
    // A batch (src/db/batch.ts) by its statements.
    const kind = typeof query === 'object' && query.queries ? query.queries.map(count).join('+') : count(query);
    trips.set(kind, (trips.get(kind) ?? 0) + 1);
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  return {
    count: () => [...names.values()].reduce((a, b) => a + b, 0),
    byName: () => Object.fromEntries(names),
    roundTrips: () => [...trips.values()].reduce((a, b) => a + b, 0),
    tripsByKind: () => Object.fromEntries(trips),
    stop: () => void (pg.Client.prototype.query = original),
  };
}

/**
 * PostgreSQL's own counters: commits of one database (pg_stat_database.xact_commit, read
 * transactions included) and WAL flushes of the whole cluster (pg_stat_wal.wal_sync: other
 * databases' writes count too, so read it on a quiet server). Takes 11 s: read it only while
 * the connections whose commits count are idle.
 */
/**
 * The bench database's commits, and cluster-wide: WAL flushes, WAL bytes, full-page images (the
 * first change to a page after a checkpoint began writes the whole page: more WAL and more CPU
 * per statement until every hot page has had one) and checkpoints begun.
 */
export async function pgCounters(databaseUrl: string): Promise<{ commits: number; walSyncs: number; walBytes: number; walFpi: number; checkpoints: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    // Backends report their counters when idle, but one that reported less than a second ago
    // waits PGSTAT_IDLE_INTERVAL (10 s) before it reports again (PostgreSQL 15, pgstat.c): a
    // pooled connection's last commits can show up to 10 s late. 1.5 s here read 4.3 to 8
    // commits for the same 6 per rotation.
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    const { rows } = await client.query<{ commits: string; wal_syncs: string; wal_bytes: string; wal_fpi: string; checkpoints: string }>(
      `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits, w.wal_sync AS wal_syncs, w.wal_bytes, w.wal_fpi,
         (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints
       FROM pg_stat_wal w`,
    );
    // This query's own transaction is counted in the next reading: leave it out.
    const r = rows[0]!;
    return { commits: Number(r.commits), walSyncs: Number(r.wal_syncs), walBytes: Number(r.wal_bytes), walFpi: Number(r.wal_fpi), checkpoints: Number(r.checkpoints) };
  } finally {
    await client.end();
  }
}
