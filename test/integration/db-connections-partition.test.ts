/**
 * A silent network partition between rekey and PostgreSQL (packets swallowed, no FIN, no RST:
 * test/support/tcp-front.ts's partition()): the kernel would keep the connections open for its
 * retransmission timeout (about 15 min), so without a timeout of its own every query sent on
 * them, and every connection they hold, is stuck that long. Once the partition heals, the pool
 * (queries, transactions, the /readyz probe) and the hand-out journal's own connection must
 * serve again within a bound, not after the kernel gives up.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db, writable } from '../../src/db/client.js';
import { AuditLog } from '../../src/db/audit.js';
import { HandoutJournal } from '../../src/db/handouts.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { TcpFront } from '../support/tcp-front.js';

const QUERY_TIMEOUT_MS = 1000;
/** What the old code took: the pool's 30 s wait for a connection, then an error. Ours: one query timeout, with room for a loaded machine. */
const BOUND_MS = 15_000;

let env: Isolated;
let front: TcpFront;
let db: Db;

beforeAll(async () => {
  env = await isolate('dbpartition');
  const url = new URL(env.databaseUrl);
  front = await TcpFront.listen(Number(url.port || 5432));
  url.port = String(front.port);
  db = createDb(url.toString(), 4, () => undefined, { queryTimeoutMs: QUERY_TIMEOUT_MS });
});
afterAll(async () => {
  await db?.$disconnect();
  await front?.close();
  await env?.cleanup();
});

it('queries, transactions and readiness probes stuck in a silent partition fail, and the pool serves again once it heals', async () => {
  await Promise.all(Array.from({ length: 4 }, () => db.$queryRaw`SELECT 1`));
  front.partition();
  const before = front.swallowedWrites;
  // More than the pool holds, of every kind that takes a connection: plain queries, an
  // interactive transaction, the /readyz probe (abandoned by /readyz after 2 s, not by the pool).
  const stuck = [
    db.$queryRaw`SELECT 1`,
    db.$queryRaw`SELECT 1`,
    db.$transaction((tx) => tx.$queryRaw`SELECT 1`),
    writable(db),
    writable(db),
    db.$queryRaw`SELECT 1`,
  ];
  for (const p of stuck) p.catch(() => undefined);
  // The four pooled connections have each sent something into the partition.
  await front.whenSwallowed(before + 4);
  front.heal();
  const started = performance.now();
  await expect(db.$queryRaw`SELECT 1 AS ok`).resolves.toEqual([{ ok: 1 }]);
  await expect(writable(db)).resolves.toBe(true);
  await expect(db.$transaction((tx) => tx.$queryRaw`SELECT 2 AS ok`)).resolves.toEqual([{ ok: 2 }]);
  expect(performance.now() - started).toBeLessThan(BOUND_MS);
  // Each stuck caller got an answer: an error, or (queued behind them, sent after the heal) its result.
  const settled = await Promise.allSettled(stuck);
  expect(settled.filter((s) => s.status === 'rejected').length).toBeGreaterThan(0);
}, 60_000);

it('a connection whose query timed out inside a transaction is not given back to the pool to hang the next caller', async () => {
  const url = new URL(env.databaseUrl);
  url.port = String(front.port);
  const single = createDb(url.toString(), 1, () => undefined, { queryTimeoutMs: QUERY_TIMEOUT_MS });
  try {
    const partitioned = single.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1`;
      front.partition();
      await tx.$queryRaw`SELECT 2`;
    });
    await expect(partitioned).rejects.toThrow();
    front.heal();
    await expect(single.$queryRaw`SELECT 1 AS ok`).resolves.toEqual([{ ok: 1 }]);
  } finally {
    front.heal();
    await Promise.race([single.$disconnect(), new Promise((resolve) => setTimeout(resolve, 1000))]);
  }
}, 60_000);

it("the hand-out journal's own connection, stuck in a silent partition, is replaced once it heals", async () => {
  const journal = new HandoutJournal(db, new AuditLog(undefined));
  try {
    await expect(journal.record({ handed: [], relied: [] })).resolves.toBe(true);
    front.partition();
    const before = front.swallowedWrites;
    const stuck = journal.record({ handed: [], relied: [] });
    stuck.catch(() => undefined);
    await front.whenSwallowed(before + 1);
    front.heal();
    const started = performance.now();
    // Its batch fails with the timeout and is run once more on a new connection, through the healed front.
    await expect(stuck).resolves.toBe(true);
    await expect(journal.record({ handed: [], relied: [] })).resolves.toBe(true);
    expect(performance.now() - started).toBeLessThan(BOUND_MS);
  } finally {
    await Promise.race([journal.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
  }
}, 60_000);
