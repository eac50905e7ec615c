/**
 * A cron job delivered twice (BullMQ delivers at least once: a job whose lock was lost in a Redis
 * failover or restart runs again) has one outcome per due time (invariant 6). Found by the chaos
 * soak (bench/soak.ts): `cron due times with more than one outcome: cron:soak-187:…`, the first
 * delivery joined the running rotation, the second, a few seconds later, made a run of its own.
 * The later cases stage the narrower window: the second delivery's insert takes its snapshot
 * before the first's `trigger.joined` commits (the database's unique index on outcomes refuses it).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

let h: Harness;
const JOURNAL = `cron-redelivery-${randomUUID()}`;

beforeAll(async () => {
  // No worker: the runs stay where the test leaves them.
  h = await startHarness({ label: 'cron-redelivery', workers: false });
});
afterAll(() => h.stop());

/** Runs made under `key` plus trigger outcomes audited under it: what the soak's final check counts. */
async function outcomes(key: string): Promise<number> {
  const runs = await h.runtime.db.run.count({ where: { idempotencyKey: key } });
  const [audited] = await h.runtime.db.$queryRaw<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM audit_events WHERE action IN ('trigger.joined', 'trigger.stale') AND data->>'idempotencyKey' = ${key}`;
  return runs + audited!.n;
}

it('a cron job redelivered while the rotation it joined commits its promotion makes no second run', async () => {
  const secret = `redelivered-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: '' }));
  const running = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  expect(running.status).toBe('queued');
  const runId = (running as { run: { id: string } }).run.id;

  // First delivery of the due time: a rotation is running, so it joins it.
  const due = new Date(Math.floor(Date.now() / 1000) * 1000);
  const cron = { secret, trigger: 'cron', idempotencyKey: `cron:${secret}:${due.getTime()}`, requestedAt: due };
  const first = await h.runtime.engine.requestRotation(cron);
  expect(first).toMatchObject({ status: 'joined', run: { id: runId } });
  expect(await outcomes(cron.idempotencyKey)).toBe(1);

  // The joined run's promotion commits (its run finished, the secret promoted) while the second
  // delivery's insert runs: the insert waits for that transaction on the one-running-rotation index.
  const client = new pg.Client({ connectionString: h.env.databaseUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`UPDATE runs SET status = 'succeeded', step = 'done', finished_at = now(), lease_owner = NULL, lease_until = NULL WHERE id = $1`, [runId]);
    await client.query(`UPDATE secrets SET last_promoted_at = now() WHERE name = $1`, [secret]);
    const second = h.runtime.engine.requestRotation(cron);
    second.catch(() => {}); // awaited below
    // Gated on the second delivery waiting for the promotion's transaction (before the fix its insert, on the
    // one-running-rotation index; after it, the audit of its outcome, on the secret's row), or answering.
    const { pid } = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!;
    const waiting = until(
      async () => {
        const [blocked] = await h.runtime.db.$queryRaw<Array<{ n: number }>>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${pid}::int = ANY(pg_blocking_pids(pid))`;
        return blocked!.n > 0;
      },
      30_000,
      'the second delivery to wait for the promotion',
    );
    await Promise.race([waiting, second]);
    await client.query('COMMIT');
    const answer = await second;
    // Before the fix: a run of its own ('queued'), made from a snapshot taken before the promotion.
    expect(answer.status).not.toBe('queued');
    expect(await outcomes(cron.idempotencyKey)).toBe(1);
    expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, status: 'running' } })).toBe(0);
  } finally {
    await client.query('ROLLBACK').catch(() => {});
    await client.end();
  }
});

it('a cron job redelivered after the rotation it joined rolled back makes no second run', async () => {
  const secret = `rolled-back-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: '' }));
  const running = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  const runId = (running as { run: { id: string } }).run.id;
  const due = new Date(Math.floor(Date.now() / 1000) * 1000);
  const cron = { secret, trigger: 'cron', idempotencyKey: `cron:${secret}:${due.getTime()}`, requestedAt: due };
  expect(await h.runtime.engine.requestRotation(cron)).toMatchObject({ status: 'joined', run: { id: runId } });
  // The joined run ends without a promotion: nothing makes the due time stale.
  await h.runtime.db.run.update({ where: { id: runId }, data: { status: 'rolled_back', finishedAt: new Date(), leaseOwner: null, leaseUntil: null } });

  const again = await h.runtime.engine.requestRotation(cron);
  // Before the fix: 'queued', a second run for a due time that had joined one already.
  expect(again).toMatchObject({ status: 'joined', run: { id: runId } });
  expect(await outcomes(cron.idempotencyKey)).toBe(1);
});

/** Backends of this file's database waiting on a lock, but not on `except` (a pid). */
async function waiting(except = 0): Promise<number> {
  const [row] = await h.runtime.db.$queryRaw<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0 AND NOT ${except}::int = ANY(pg_blocking_pids(pid))`;
  return row!.n;
}

/** A connection in a transaction of its own, and its backend's pid. */
async function session(): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: h.env.databaseUrl });
  await client.connect();
  await client.query('BEGIN');
  return { client, pid: (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid };
}

/** Waits for `n` backends to wait on a lock (not on `except`), or for `settled` to settle first (then its answer tells). */
async function gate(n: number, what: string, settled: Promise<unknown>, except = 0): Promise<void> {
  await Promise.race([until(async () => (await waiting(except)) >= n, 30_000, what), settled.then(() => undefined, () => undefined)]);
}

it.each(['rolled_back', 'succeeded'] as const)(
  'a cron job redelivered while its first delivery is recording the join makes no second run (joined run %s)',
  async (ending) => {
    const secret = `recording-${randomUUID().slice(0, 6)}`;
    await h.apply(memoryConfig(JOURNAL, { [secret]: '' }));
    const running = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
    const runId = (running as { run: { id: string } }).run.id;
    const due = new Date(Math.floor(Date.now() / 1000) * 1000);
    const cron = { secret, trigger: 'cron', idempotencyKey: `cron:${secret}:${due.getTime()}`, requestedAt: due };

    // The secret's row held (as a promotion holds it; a `succeeded` ending promotes in this transaction):
    // the first delivery answers `joined`, then waits there to record it (recordTrigger's secret lock).
    const lock = await session();
    // The joined run ends in another transaction, which the second delivery's insert waits for (the
    // one-running-rotation index): its snapshot still sees the run running and no outcome for the key.
    const end = await session();
    try {
      await lock.client.query('SELECT 1 FROM secrets WHERE name = $1 FOR UPDATE', [secret]);
      if (ending === 'succeeded') await lock.client.query('UPDATE secrets SET last_promoted_at = now() WHERE name = $1', [secret]);
      const first = h.runtime.engine.requestRotation(cron);
      first.catch(() => {}); // awaited below
      await gate(1, 'the first delivery to wait to record its join', first);

      await end.client.query(`UPDATE runs SET status = $2::text::"RunStatus", finished_at = now(), lease_owner = NULL, lease_until = NULL WHERE id = $1`, [runId, ending]);
      const second = h.runtime.engine.requestRotation(cron);
      second.catch(() => {});
      await gate(2, 'the second delivery to wait for the run to end', second);
      await end.client.query('COMMIT');
      // Its insert made (the run ended), it waits for the secret's row (the foreign key), behind the first.
      await gate(2, 'the second delivery to wait behind the first', second, end.pid);
      await lock.client.query('COMMIT');

      expect(await first).toMatchObject({ status: 'joined', run: { id: runId } });
      const answer = await second;
      // Before the fix: 2, a run of its own ('queued') beside the first delivery's trigger.joined.
      expect(await outcomes(cron.idempotencyKey)).toBe(1);
      // The first delivery's outcome (as a repeat after it had committed gets), stale once the secret promoted since.
      expect(answer).toMatchObject(ending === 'succeeded' ? { status: 'stale' } : { status: 'joined', run: { id: runId } });
      expect(await h.runtime.db.run.count({ where: { secret: { name: secret } } })).toBe(1);
    } finally {
      for (const { client } of [lock, end]) {
        await client.query('ROLLBACK').catch(() => {});
        await client.end();
      }
    }
  },
);

it('two deliveries of one cron job inserting at once make one run, also for a delivery after that run ended', async () => {
  const secret = `together-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: '' }));
  const due = new Date(Math.floor(Date.now() / 1000) * 1000);
  const cron = { secret, trigger: 'cron', idempotencyKey: `cron:${secret}:${due.getTime()}`, requestedAt: due };
  // The secret's row held: the first delivery's insert waits for it (the foreign key) uncommitted, the
  // second's waits for the first's (the key's and the one-running-rotation unique indexes).
  const lock = await session();
  try {
    await lock.client.query('SELECT 1 FROM secrets WHERE name = $1 FOR UPDATE', [secret]);
    const first = h.runtime.engine.requestRotation(cron);
    first.catch(() => {});
    await gate(1, 'the first delivery to wait for the secret', first);
    const second = h.runtime.engine.requestRotation(cron);
    second.catch(() => {});
    await gate(2, 'the second delivery to wait for the first', second);
    await lock.client.query('COMMIT');
    const made = await first;
    expect(made.status).toBe('queued');
    const runId = (made as { run: { id: string } }).run.id;
    expect(await second).toMatchObject({ status: 'joined', run: { id: runId } });

    // The run promotes and ends: a third delivery is stale, and makes no outcome of its own.
    await h.runtime.db.run.update({ where: { id: runId }, data: { status: 'succeeded', step: 'done', finishedAt: new Date(), leaseOwner: null, leaseUntil: null } });
    await h.runtime.db.secret.update({ where: { name: secret }, data: { lastPromotedAt: new Date() } });
    expect(await h.runtime.engine.requestRotation(cron)).toMatchObject({ status: 'stale' });
    expect(await outcomes(cron.idempotencyKey)).toBe(1);
  } finally {
    await lock.client.query('ROLLBACK').catch(() => {});
    await lock.client.end();
  }
});
