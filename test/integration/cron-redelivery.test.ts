/**
 * A cron job delivered twice (BullMQ delivers at least once: a job whose lock was lost in a Redis
 * failover or restart runs again) has one outcome per due time (invariant 6). Found by the chaos
 * soak (bench/soak.ts): `cron due times with more than one outcome: cron:soak-187:…`, the first
 * delivery joined the running rotation, the second, a few seconds later, made a run of its own.
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
