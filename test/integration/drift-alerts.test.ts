/**
 * The drift streak and its alert across replicas: every replica runs the drift check on its own
 * clock, so two checks of one target can find the same drift at the same moment. The streak is
 * one counter per (secret, target), and `drift.repeated` is raised once per streak, whatever the
 * number of replicas. Driven by hand (no workers): a transaction holding the sync row makes both
 * checks record at once, exactly.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../../src/core/engine.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig, type Journal } from '../support/memory-provider.js';

let h: Harness;
let j: Journal;
const JOURNAL = `drift-alerts-${randomUUID().slice(0, 8)}`;
const secret = `da-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  j = journal(JOURNAL);
  h = await startHarness({ label: 'drift-alerts', workers: false });
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h' }));
  const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  expect(await h.runtime.engine.driveRotation(result.run.id, { final: true })).toBe('succeeded');
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const edge = () => j.accepted.get('edge')!;
const check = (engine = h.runtime.engine) => engine.checkTarget('edge', [secret], { repair: true });
/** Another replica, its clock half a second ahead of this one's (within CLOCK_TOLERANCE_MS of each other is all rekey asks). */
const replica = () => new Engine({ ...h.runtime.engine.deps, now: () => new Date(Date.now() + 500) });

/** Lock waits of other backends than `client`'s (pg_stat_activity read outside any transaction). */
async function lockWaiters(client: pg.Client, count: number): Promise<void> {
  for (;;) {
    const { rows } = await client.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()");
    if (rows.length >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

it('two replicas recording the same drift at once extend the streak by two and raise drift.repeated once', async () => {
  const current = (await h.runtime.engine.deps.repo.findVersionByNumber(secret, 1))!;
  for (let i = 0; i < 2; i++) {
    edge().delete(current.fingerprint!);
    expect((await check()).results[0]).toMatchObject({ missing: [1], redeployed: [1] });
  }
  const { id: secretId } = await h.runtime.db.secret.findUniqueOrThrow({ where: { name: secret } });
  expect(await h.runtime.db.targetSync.findUniqueOrThrow({ where: { secretId_target: { secretId, target: 'edge' } } })).toMatchObject({ driftStreak: 2 });

  // Both checks find the key missing and deploy it (held until both are there), then record.
  edge().delete(current.fingerprint!);
  const deploys = [j.hold('deploy:edge'), j.hold('deploy:edge')];
  const admin = new pg.Client({ connectionString: h.env.databaseUrl });
  const watch = new pg.Client({ connectionString: h.env.databaseUrl });
  await admin.connect();
  await watch.connect();
  try {
    await admin.query('BEGIN');
    await admin.query(`SELECT 1 FROM target_syncs WHERE secret_id = $1 AND target = 'edge' FOR UPDATE`, [secretId]);
    const checks = [check(), check(replica())];
    await Promise.all(deploys.map((d) => d.reached));
    for (const d of deploys) d.release();
    await lockWaiters(watch, 2);
    await admin.query('COMMIT');
    for (const report of await Promise.all(checks)) expect(report.results[0]).toMatchObject({ missing: [1], redeployed: [1] });
  } finally {
    await admin.end();
    await watch.end();
  }

  const sync = await h.runtime.db.targetSync.findUniqueOrThrow({ where: { secretId_target: { secretId, target: 'edge' } } });
  const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'target.drift', secret }, orderBy: { seq: 'asc' } });
  const streaks = events.map((e) => (e.data as { streak: number }).streak);
  const alerts = await watchAlerts();
  expect({ streak: sync.driftStreak, streaks, alerts }).toEqual({ streak: 4, streaks: [1, 2, 3, 4], alerts: 1 });
});

async function watchAlerts(): Promise<number> {
  const rows = await h.runtime.db.$queryRaw<Array<{ n: bigint }>>`SELECT count(*) AS n FROM notification_outbox WHERE id LIKE 'drift.repeated.%'`;
  return Number(rows[0]!.n);
}

it('a target checked less often than every 10 minutes still raises drift.repeated at the third drifted check in a row', async () => {
  const { id: secretId } = await h.runtime.db.secret.findUniqueOrThrow({ where: { name: secret } });
  const current = (await h.runtime.engine.deps.repo.findVersionByNumber(secret, 1))!;
  // In sync first: the streak starts from nothing.
  expect((await check()).results[0]).toMatchObject({ missing: [] });
  const before = await watchAlerts();
  // `drift: { interval: 15m }` (or a target with so many secrets that each is checked every 15 minutes):
  // each check of the secret comes 15 minutes after the one before, and finds its key gone again.
  const period = 15 * 60_000;
  const streaks: number[] = [];
  for (let i = 1; i <= 3; i++) {
    const later = new Engine({ ...h.runtime.engine.deps, now: () => new Date(Date.now() + i * period) });
    edge().delete(current.fingerprint!);
    expect((await later.checkTarget('edge', [secret], { repair: true, periodMs: period })).results[0]).toMatchObject({ missing: [1], redeployed: [1] });
    streaks.push((await h.runtime.db.targetSync.findUniqueOrThrow({ where: { secretId_target: { secretId, target: 'edge' } } })).driftStreak);
  }
  expect({ streaks, alerts: (await watchAlerts()) - before }).toEqual({ streaks: [1, 2, 3], alerts: 1 });
});
