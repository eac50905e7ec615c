/**
 * PostgreSQL ending rekey's pooled connections (a restart, pg_terminate_backend) must not
 * crash the process: idle connections, and one a transaction holds between two queries.
 * An unhandled 'error' event would kill this test's worker.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.js';
import { sql, statement, transaction } from '../../src/db/sql.js';
import { isolate, type Isolated } from '../support/isolation.js';

let env: Isolated;
let db: Db;
const errors: string[] = [];

beforeAll(async () => {
  env = await isolate('dbconn');
  db = createDb(env.databaseUrl, 4, (error) => errors.push(error.message));
});
afterAll(async () => {
  await db.$disconnect();
  await env.cleanup();
});

async function terminateOthers(): Promise<number> {
  const admin = new pg.Client({ connectionString: env.databaseUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    return rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

it('survives its connections being terminated, idle or inside a transaction', async () => {
  await Promise.all(Array.from({ length: 4 }, () => db.$queryRaw`SELECT 1`));
  expect(await terminateOthers()).toBeGreaterThan(0);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await expect(db.$queryRaw`SELECT 1 AS ok`).resolves.toEqual([{ ok: 1 }]);

  const inside = db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT 1`;
    await terminateOthers();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await tx.$queryRaw`SELECT 1`;
  });
  await expect(inside).rejects.toThrow();
  await expect(db.$queryRaw`SELECT 1 AS ok`).resolves.toEqual([{ ok: 1 }]);
  expect(errors.some((m) => /terminat/i.test(m))).toBe(true);
});

it('a burst of transactions larger than the pool queues for connections instead of failing after 2 s (P2028)', async () => {
  // 40 transactions of 250 ms on 4 connections: the last ones wait at least 2.25 s for a
  // connection, longer than Prisma's default maxWait.
  const started = Date.now();
  const results = await Promise.allSettled(Array.from({ length: 40 }, () => db.$transaction((tx) => tx.$executeRaw`SELECT pg_sleep(0.25)`)));
  expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason).slice(0, 200))).toEqual([]);
  expect(Date.now() - started).toBeGreaterThanOrEqual(2_250);
});

it('every session is in UTC whatever the server or database says: timestamp columns hold UTC and now() is compared with them', async () => {
  const admin = new pg.Client({ connectionString: env.databaseUrl });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE "${new URL(env.databaseUrl).pathname.slice(1)}" SET timezone TO 'Pacific/Kiritimati'`);
  } finally {
    await admin.end();
  }
  const zoned = createDb(env.databaseUrl, 2);
  try {
    expect(await zoned.$queryRaw`SELECT current_setting('TimeZone') AS zone`).toEqual([{ zone: 'UTC' }]);
    const [row] = await zoned.$queryRaw<Array<{ drift: number }>>`SELECT abs(extract(epoch FROM (now()::timestamp - (now() AT TIME ZONE 'UTC'))))::float AS drift`;
    expect(row!.drift).toBe(0);
  } finally {
    await zoned.$disconnect();
  }
});

it("hand-written statements write and read timestamps as UTC whatever the process's time zone", async () => {
  // Node re-reads TZ when it is assigned: Dates now format and parse in UTC+14.
  const zone = process.env.TZ;
  process.env.TZ = 'Pacific/Kiritimati';
  try {
    expect(new Date('2026-06-01T12:00:00.000Z').getHours()).toBe(2);
    const at = new Date('2026-06-01T12:00:00.000Z');
    const roundTrip = statement('test_timestamp_round_trip', 'SELECT $1::timestamp::text AS text, $1::timestamp AS at');
    const expected = { text: '2026-06-01 12:00:00', at };
    // Outside a transaction (a pool query) and inside one (a batch).
    expect(await sql(db).rows(roundTrip, [at])).toEqual([expected]);
    expect(await transaction(db, (tx) => tx.batch([[roundTrip, [at]]]))).toEqual([[expected]]);
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  }
});
