/**
 * A secret's history costs nothing on the hot path. A secret rotated every hour for three
 * months has 2,000 past versions; the statements that find its current version or the one
 * promoted last (a rotation's start and promotion, a takedown, the reconcile pass's
 * unreplaced leaks) must read a handful of version rows, not all of them. Checked with
 * EXPLAIN ANALYZE of the statements themselves, with the values a rotation of that secret
 * uses, after ANALYZE (as autovacuum would run it); and the rotations complete as any other.
 * No workers run here: rotations are driven in this process.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { poolOf } from '../../src/db/client.js';
import { UNREPLACED } from '../../src/db/pending-work.js';
import { CURRENT, LAST_PROMOTED, VERSIONS } from '../../src/db/reads.js';
import { BEGIN_ATTEMPT, PROMOTION_SNAPSHOT } from '../../src/db/rotation-steps.js';
import type { Statement } from '../../src/db/sql.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

const HISTORY = 2000;
/** Version rows (index entries or heap rows, returned or filtered out) one scan may read. */
const MOST = 10;
const JOURNAL = `history-${randomUUID()}`;
journal(JOURNAL);
const SECRET = `long-lived-${randomUUID().slice(0, 6)}`;

let h: Harness;
let secretId: string;

beforeAll(async () => {
  h = await startHarness({ label: 'history-cost', workers: false });
  await h.apply(memoryConfig(JOURNAL, { [SECRET]: 'grace: 1h' }));
  const pool = poolOf(h.runtime.db);
  // Versions 1..2000, each promoted an hour after the one before, all revoked long ago.
  const { rows } = await pool.query<{ id: string }>(
    `WITH s AS (UPDATE secrets SET version_counter = $2, last_promoted_at = (now() AT TIME ZONE 'UTC') - interval '1 hour' WHERE name = $1 RETURNING id)
     INSERT INTO versions (id, secret_id, number, state, fingerprint, promoted_at, retired_at, revoked_at, created_at, updated_at)
     SELECT gen_random_uuid(), s.id, n, 'revoked', 'fp_history_' || n, at, at + interval '1 hour', at + interval '1 hour', at, at
     FROM s, generate_series(1, $2) AS n, LATERAL (SELECT (now() AT TIME ZONE 'UTC') - ($2 + 1 - n) * interval '1 hour' AS at) t
     RETURNING secret_id AS id`,
    [SECRET, HISTORY],
  );
  secretId = rows[0]!.id;
  // Beside it, as in any deployment, many secrets with short histories (current, previous, one revoked).
  await pool.query(
    `WITH s AS (INSERT INTO secrets (id, name, spec, spec_hash, version_counter, created_at, updated_at)
       SELECT gen_random_uuid(), 'neighbour-' || i, '{}', 'neighbour', 3, now(), now() FROM generate_series(1, 500) AS i RETURNING id)
     INSERT INTO versions (id, secret_id, number, state, fingerprint, promoted_at, created_at, updated_at)
     SELECT gen_random_uuid(), s.id, n, (ARRAY['revoked', 'previous', 'current'])[n]::"VersionState", 'fp_' || s.id || '_' || n, now(), now(), now()
     FROM s, generate_series(1, 3) AS n`,
  );
  for (let i = 0; i < 2; i++) await rotate();
  // The planner's statistics, as autovacuum would gather them.
  await pool.query('ANALYZE versions');
}, 120_000);
afterAll(() => h?.stop());

async function rotate() {
  const result = await h.runtime.engine.requestRotation({ secret: SECRET, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  expect(await h.runtime.engine.driveRotation(result.run.id, { final: true })).toBe('succeeded');
  return result.run.id;
}

interface PlanNode {
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

/**
 * The most version rows one scan node of the statement's plan read: prepared as a worker's
 * connection prepares it, planned as `mode` says (a connection plans its first executions
 * with the values, then may keep a generic plan), run in a transaction rolled back (some write).
 */
async function mostRead(s: Statement, values: ReadonlyArray<string | number | null>, mode: 'auto' | 'force_generic_plan' = 'auto', before: readonly string[] = []): Promise<number> {
  const client = await poolOf(h.runtime.db).connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
    for (const text of before) await client.query(text);
    await client.query(`PREPARE history_cost AS ${s.text}`);
    // EXECUTE takes literals (EXPLAIN takes no bound parameters); untyped, as a bound parameter is.
    const literal = (v: string | number | null) => (v === null ? 'NULL' : client.escapeLiteral(String(v)));
    const args = values.length ? `(${values.map(literal).join(', ')})` : '';
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE history_cost${args}`);
    let most = 0;
    const walk = (node: PlanNode) => {
      if (node['Relation Name'] === 'versions' || node['Index Name']?.startsWith('versions_')) {
        const read = (node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * node['Actual Loops'];
        most = Math.max(most, read);
      }
      node.Plans?.forEach(walk);
    };
    walk(rows[0]!['QUERY PLAN'][0]!.Plan);
    return most;
  } finally {
    await client.query('ROLLBACK');
    await client.query('DEALLOCATE history_cost').catch(() => {});
    client.release();
  }
}

it('the rotations of a secret with 2,000 past versions complete and leave the history as it was', async () => {
  const { rows } = await poolOf(h.runtime.db).query<{ number: number; state: string }>(
    `SELECT number, state::text AS state FROM versions WHERE secret_id = $1 AND number > $2 ORDER BY number`,
    [secretId, HISTORY],
  );
  expect(rows).toEqual([
    { number: HISTORY + 1, state: 'previous' },
    { number: HISTORY + 2, state: 'current' },
  ]);
  const { rows: past } = await poolOf(h.runtime.db).query<{ n: number }>(`SELECT count(*)::int AS n FROM versions WHERE secret_id = $1 AND state = 'revoked'`, [secretId]);
  expect(past[0]!.n).toBe(HISTORY);
});

it('finding the current, the live and the last promoted version reads a handful of rows, custom plan or generic', async () => {
  const { rows } = await poolOf(h.runtime.db).query<{ number: number; promoted_at: string }>(`SELECT number, promoted_at::text FROM versions WHERE secret_id = $1 AND state = 'current'`, [secretId]);
  expect(rows[0]?.number).toBe(HISTORY + 2);
  const checks: Array<[string, Statement, Array<string | number | null>]> = [
    ['current', CURRENT, [secretId]],
    ['current and previous', VERSIONS, [secretId, 'current', 'previous']],
    ['last promoted', LAST_PROMOTED, [secretId, null]],
    ['promoted before the current', LAST_PROMOTED, [secretId, rows[0]!.promoted_at]],
  ];
  // The full reconcile pass reads every secret's last promoted version: a row or so per secret,
  // which this counts for the long-lived one alone (its neighbours deleted in the transaction rolled back).
  const alone = [`DELETE FROM versions WHERE secret_id IN (SELECT id FROM secrets WHERE name LIKE 'neighbour-%')`, `DELETE FROM secrets WHERE name LIKE 'neighbour-%'`];
  for (const mode of ['auto', 'force_generic_plan'] as const) {
    for (const [what, s, values] of checks) expect.soft(await mostRead(s, values, mode), `${what} (${mode})`).toBeLessThanOrEqual(MOST);
    expect.soft(await mostRead(UNREPLACED.full, [], mode, alone), `unreplaced leaks, a full reconcile pass (${mode})`).toBeLessThanOrEqual(MOST);
  }
});

it("a rotation's start and its promotion snapshot read a handful of version rows", async () => {
  const queued = await rotateRequestOnly();
  for (const mode of ['auto', 'force_generic_plan'] as const) {
    expect.soft(await mostRead(BEGIN_ATTEMPT, [queued, 'history-cost', 30_000, 1, randomUUID()], mode), `begin_attempt (${mode})`).toBeLessThanOrEqual(MOST);
  }
  // The snapshot of a run with a version: the last rotation's (its version current, the one before previous).
  const { rows } = await poolOf(h.runtime.db).query<{ id: string }>(`SELECT id FROM runs WHERE secret_id = $1 AND kind = 'rotation' AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1`, [secretId]);
  // Read as its driver does: the run open and leased (the queued one set aside), in the transaction rolled back.
  const leased = [
    `UPDATE runs SET status = 'failed' WHERE secret_id = '${secretId}' AND status = 'running'`,
    `UPDATE runs SET status = 'running', finished_at = NULL, lease_owner = 'history-cost' WHERE id = '${rows[0]!.id}'`,
  ];
  for (const mode of ['auto', 'force_generic_plan'] as const) {
    const read = await mostRead(PROMOTION_SNAPSHOT, [rows[0]!.id, 'history-cost'], mode, leased);
    expect.soft(read, `promotion_snapshot (${mode})`).toBeLessThanOrEqual(MOST);
    expect.soft(read, `promotion_snapshot (${mode}) found the run's versions`).toBeGreaterThan(0);
  }
});

/** A rotation requested and left queued (no worker takes it): begin_attempt's run. */
async function rotateRequestOnly(): Promise<string> {
  const result = await h.runtime.engine.requestRotation({ secret: SECRET, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  return result.run.id;
}
