/**
 * Hand-written transactions (src/db/sql.ts) and their batches (src/db/batch.ts) on a real
 * PostgreSQL: a batch's statements run in order in the one transaction and answer in order,
 * typed as the rest of the code reads them; a failure anywhere (mid-batch, in a deferred
 * statement at COMMIT, or thrown by the caller between batches) commits nothing and leaves
 * the pool usable, including after a batch that prepared its statements and failed. A batch of
 * groups answers each group as soon as it has run (a Flush after it), before the next one ends.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db, poolOf } from '../../src/db/client.js';
import { batchOf, sql, statement, transaction } from '../../src/db/sql.js';
import { isolate, type Isolated } from '../support/isolation.js';

let env: Isolated;
let db: Db;

const INSERT = statement('t_batch_insert', `INSERT INTO batch_t (k, at, tags, doc) VALUES ($1, $2::timestamp, $3::text[], $4::jsonb) RETURNING id`);
const READ = statement('t_batch_read', `SELECT k, at, tags, doc, n FROM batch_t WHERE k = ANY($1::text[]) ORDER BY id`);
const COUNT = statement('t_batch_count', `SELECT count(*)::int AS n FROM batch_t`);
const DIVIDE = statement('t_batch_divide', `SELECT 1 / $1::int AS q`);

beforeAll(async () => {
  env = await isolate('sqlbatch');
  // Two connections, so the failures below land on connections that are then used again.
  db = createDb(env.databaseUrl, 2);
  await poolOf(db).query(`CREATE TABLE batch_t (id serial PRIMARY KEY, k text UNIQUE NOT NULL, at timestamp(3), tags text[], doc jsonb, n int)`);
});
afterAll(async () => {
  await db.$disconnect();
  await env.cleanup();
});

const count = async () => (await sql(db).rows<{ n: number }>(COUNT, []))[0]!.n;

it('answers a batch statement by statement, in order, each seeing what the ones before it wrote', async () => {
  const at = new Date('2026-12-05T01:02:03.456Z');
  const tags = ['a"b', 'c,d', 'e\\f', '{g}'];
  const [first, second, read] = await transaction(db, (tx) =>
    tx.batch([
      [INSERT, ['one', at, tags, JSON.stringify({ x: 'y"z' })]],
      [INSERT, ['two', null, [], null]],
      [READ, [['one', 'two']]],
    ]),
  );
  expect(first).toHaveLength(1);
  expect(second).toHaveLength(1);
  expect(read).toEqual([
    { k: 'one', at, tags, doc: { x: 'y"z' }, n: null },
    { k: 'two', at: null, tags: [], doc: null, n: null },
  ]);
  expect(await count()).toBe(2);
});

it('a failure in the middle of a batch commits nothing of the transaction, and the connections serve the next one', async () => {
  const before = await count();
  // Each run prepares the batch's statements on a fresh connection (new names), then fails.
  for (let i = 0; i < 3; i++) {
    const failing = transaction(db, async (tx) => {
      await tx.rows(INSERT, [`kept-${i}`, null, null, null]);
      return tx.batch([[statement(`t_batch_insert_${i}`, INSERT.text), [`lost-${i}`, null, null, null]], [DIVIDE, [0]], [INSERT, [`after-${i}`, null, null, null]]]);
    });
    await expect(failing).rejects.toMatchObject({ code: '22012' });
  }
  expect(await count()).toBe(before);
  await transaction(db, (tx) => tx.batch([[INSERT, ['again', null, null, null]], [statement('t_batch_insert_0', INSERT.text), ['again-0', null, null, null]]]));
  expect(await count()).toBe(before + 2);
});

it('a deferred statement that fails fails the commit, and what went before it is rolled back', async () => {
  const before = await count();
  const failing = transaction(db, async (tx) => {
    await tx.rows(INSERT, ['deferred-before', null, null, null]);
    tx.defer(INSERT, ['again', null, null, null]); // a unique violation: 'again' exists
  });
  await expect(failing).rejects.toMatchObject({ code: '23505' });
  expect(await count()).toBe(before);
});

it('an error thrown between batches rolls back what the batches wrote', async () => {
  const before = await count();
  const thrown = new Error('planned');
  await expect(
    transaction(db, async (tx) => {
      await tx.batch([[INSERT, ['between', null, null, null]]]);
      throw thrown;
    }),
  ).rejects.toBe(thrown);
  expect(await count()).toBe(before);
  expect(await transaction(db, async (tx) => (await tx.rows<{ q: number }>(DIVIDE, [1]))[0]!.q)).toBe(1);
});

it('a batch whose statement fails to prepare leaves no connection that believes the statements after it were prepared', async () => {
  const fresh = statement('t_batch_fresh', `SELECT $1::int + 1 AS n`);
  await expect(transaction(db, (tx) => tx.batch([[statement('t_batch_bad', 'SELEC 1'), []], [fresh, [1]]]))).rejects.toMatchObject({ code: '42601' });
  // The statement after the failed one was never prepared: a connection kept with it marked as prepared would fail here.
  for (let i = 0; i < 4; i++) expect(await transaction(db, (tx) => tx.rows<{ n: number }>(fresh, [i]))).toEqual([{ n: i + 1 }]);
});

it('answers a group of a batch once it has run, while the next group waits on a lock', async () => {
  const LOCK = statement('t_batch_lock', 'SELECT pg_advisory_lock(4242)::text AS locked');
  const UNLOCK = statement('t_batch_unlock', 'SELECT pg_advisory_unlock(4242) AS unlocked');
  const holder = await poolOf(db).connect();
  const client = await poolOf(db).connect();
  try {
    await holder.query('SELECT pg_advisory_lock(4242)');
    const batch = batchOf([[[COUNT, []]], [[LOCK, []], [UNLOCK, []]]]);
    const all = batch.run(client);
    // Each group's answer is taken before the batch can end: an ended batch has let go of them.
    const [first, second] = [batch.group(0), batch.group(1)];
    // Without the Flush, PostgreSQL would hold the first group's answer until the Sync, after the lock.
    expect(await first).toEqual([[{ n: expect.any(Number) as number }]]);
    await holder.query('SELECT pg_advisory_unlock(4242)');
    expect(await second).toEqual([[{ locked: '' }], [{ unlocked: true }]]);
    expect((await all).length).toBe(3);
    expect(() => batch.group(0)).toThrow(/taken after the batch ended/);
  } finally {
    holder.release();
    client.release();
  }
});

it('describes a statement once per connection: its later runs there skip the Describe and are read with the columns it had', async () => {
  const PUT = statement('t_batch_describe_put', `INSERT INTO batch_t (k, at, tags, doc, n) VALUES ($1, $2::timestamp, $3::text[], $4::jsonb, $5)`);
  const GET = statement('t_batch_describe_get', `SELECT k, at, tags, doc, n FROM batch_t WHERE k = $1`);
  const at = new Date('2026-12-06T07:08:09.123Z');
  const client = await poolOf(db).connect();
  const connection = (client as unknown as { connection: { describe(m: unknown): void } }).connection;
  const describe = connection.describe.bind(connection);
  let describes = 0;
  connection.describe = (m) => {
    describes += 1;
    describe(m);
  };
  try {
    // A statement with no rows (NoData) between two with rows: each run's rows read with their own statement's columns.
    const run = (k: string) => batchOf([[[GET, ['described']], [PUT, [k, at, ['x'], JSON.stringify({ k }), 7]], [GET, [k]], [COUNT, []]]]).run(client);
    await batchOf([[[PUT, ['described', at, ['a', 'b'], JSON.stringify({ a: 1 }), 1]]]]).run(client);
    const first = await run('first-run');
    expect(describes).toBe(3);
    const second = await run('second-run');
    expect(describes).toBe(3);
    expect(first[0]).toEqual([{ k: 'described', at, tags: ['a', 'b'], doc: { a: 1 }, n: 1 }]);
    expect(second[0]).toEqual(first[0]);
    expect(second[1]).toEqual([]);
    expect(second[2]).toEqual([{ k: 'second-run', at, tags: ['x'], doc: { k: 'second-run' }, n: 7 }]);
    expect(second[3]).toEqual([{ n: (first[3] as Array<{ n: number }>)[0]!.n + 1 }]);
  } finally {
    connection.describe = describe;
    client.release();
  }
});
