/**
 * The schema floor of rotation-throughput: what any rotation must write into rekey's own
 * tables, with their indexes, constraints and triggers, and nothing else. Per rotation of a
 * secret that has a current version: six transactions, each of two round trips as rekey's
 * steps are (src/db/batch.ts: the writes and the lock of the audit chain's head, then the
 * step's audit rows in one insert, the head moved and COMMIT), each statement a plain insert
 * or an update by primary key: the run created; its lease and the new version (numbered by
 * the secret's counter); the version issued; pending, with its delivery row and the run's
 * step; deployed and verified; the promotion (the current version to previous, the new one
 * current, the secret's last promotion, the run finished). Ten audit rows, as many as a
 * rotation writes (run.started with its trigger key, version.issuing, version.issued,
 * version.pending, delivery.pending, delivery.deployed and delivery.verified, two version
 * changes, run.finished), chained from the head each transaction locks (their hashes are not
 * MACs: PostgreSQL's work is the same). What it leaves out is what rekey adds to that
 * work: the lease and stale-plan guards, the secret lock, the reads handed back to the engine,
 * the audit take's advisory locks and sequence numbers taken apart from the insert.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { BEGIN, type Batched, COMMIT, NOW, batchOf, statement } from '../../src/db/sql.js';

/**
 * The chain's head, locked; the setting tells audit_events' trigger (kept for appends by earlier
 * releases) that this transaction moves the head itself, as rekey's take does (src/db/audit.ts).
 */
const HEAD = statement('floor_head', `SELECT hash, set_config('rekey.audit_heads_moved', 'on', true) FROM audit_heads WHERE chain = $1 FOR UPDATE`);
const MOVE_HEAD = statement('floor_move_head', `UPDATE audit_heads SET hash = $2 WHERE chain = $1`);
/** `count` audit rows in one insert (as many as a step writes), each `$1`'s chain, from 6 parameters a row. */
const audit = (count: number) =>
  statement(
    `floor_audit_${count}`,
    `INSERT INTO audit_events (chain, at, actor, action, secret, version_id, run_id, data, prev_hash, hash, key_id) VALUES ${Array.from({ length: count }, (_, i) => {
      const p = (k: number) => `$${2 + i * 6 + k}`;
      return `($1, ${NOW}, 'bench', ${p(0)}, $1, ${p(1)}, ${p(2)}, ${p(3)}::jsonb, ${p(4)}, ${p(5)}, 'aaaaaaaa')`;
    }).join(', ')}`,
  );
const AUDIT = [1, 2, 3].map(audit);
const RUN = statement(
  'floor_run',
  `INSERT INTO runs (id, secret_id, kind, trigger, status, step, idempotency_key, grace_ms, started_at, updated_at)
   VALUES ($1, $2, 'rotation', 'manual', 'running', 'issue', $3, NULL, ${NOW}, ${NOW})`,
);
const LEASE = statement('floor_lease', `UPDATE runs SET lease_owner = $2, lease_until = ${NOW} + interval '30 seconds', attempts = attempts + 1, version_id = $3 WHERE id = $1`);
/** The version numbered by the secret's counter. */
const VERSION = statement(
  'floor_version',
  `WITH s AS (UPDATE secrets SET version_counter = version_counter + 1 WHERE id = $2 RETURNING version_counter)
   INSERT INTO versions (id, secret_id, number, state, created_at, updated_at) SELECT $1, $2, version_counter, 'issuing', ${NOW}, ${NOW} FROM s`,
);
const ISSUED = statement('floor_issued', `UPDATE versions SET fingerprint = $2, issuer_state = '{}'::jsonb, public_id = NULL WHERE id = $1`);
const PENDING = statement('floor_pending', `UPDATE versions SET state = 'pending', store_version_id = $2 WHERE id = $1`);
const DELIVERY = statement('floor_delivery', `INSERT INTO deliveries (version_id, target, status, attempts, updated_at) VALUES ($1, 'mem', 'pending', 1, ${NOW})`);
const DELIVERED = statement('floor_delivered', `UPDATE deliveries SET status = 'verified', updated_at = ${NOW} WHERE version_id = $1 AND target = 'mem'`);
const STEP = statement('floor_step', `UPDATE runs SET step = $2 WHERE id = $1`);
const DISPLACED = statement('floor_displaced', `UPDATE versions SET state = 'previous', grace_ends_at = ${NOW} + interval '1 hour' WHERE id = $1`);
const CURRENT = statement('floor_current', `UPDATE versions SET state = 'current', promoted_at = ${NOW} WHERE id = $1`);
const PROMOTED = statement('floor_promoted', `UPDATE secrets SET last_promoted_at = ${NOW} WHERE id = $1`);
const FINISHED = statement(
  'floor_finished',
  `UPDATE runs SET step = 'done', status = 'succeeded', finished_at = ${NOW}, lease_owner = NULL, lease_until = NULL WHERE id = $1`,
);

/** A secret the floor rotates: its id, name (its audit chain) and current version. */
export interface FloorSecret {
  id: string;
  name: string;
  current: string;
}

/** The phase's secrets with their current version, for {@link rotateFloor}. */
export async function floorSecrets(client: pg.PoolClient, names: readonly string[]): Promise<FloorSecret[]> {
  const { rows } = await client.query<FloorSecret>(
    `SELECT s.id, s.name, v.id AS current FROM secrets s JOIN versions v ON v.secret_id = s.id AND v.state = 'current' WHERE s.name = ANY($1) ORDER BY s.name`,
    [names],
  );
  return rows;
}

const hash = () => randomUUID().replace(/-/g, '').repeat(2);

/** One rotation of `secret`, in six transactions (see the file's comment). */
export async function rotateFloor(client: pg.PoolClient, secret: FloorSecret): Promise<void> {
  const run = randomUUID();
  const version = randomUUID();
  /** One transaction: BEGIN, `writes` and the head's lock; then `events` chained from it, the head moved, COMMIT. */
  const step = async (writes: Batched[], events: Array<[action: string, data: object]>): Promise<void> => {
    const answers = await batchOf([[[BEGIN, []], ...writes, [HEAD, [secret.name]]]]).run(client);
    let prev = (answers.at(-1) as Array<{ hash: string }>)[0]!.hash;
    const values: unknown[] = [secret.name];
    for (const [action, data] of events) {
      const next = hash();
      values.push(action, version, run, JSON.stringify(data), prev, next);
      prev = next;
    }
    const rows: Batched[] = [[AUDIT[events.length - 1]!, values]];
    await batchOf([[...rows, [MOVE_HEAD, [secret.name, prev]], [COMMIT, []]]]).run(client);
  };
  await step([[RUN, [run, secret.id, randomUUID()]]], [['run.started', { idempotencyKey: randomUUID(), kind: 'rotation', trigger: 'manual' }]]);
  await step([[LEASE, [run, 'floor', version]], [VERSION, [version, secret.id]]], [['version.issuing', { number: 3 }]]);
  await step([[ISSUED, [version, hash()]]], [['version.issued', { number: 3 }]]);
  await step([[PENDING, [version, 'store-1']], [DELIVERY, [version]], [STEP, [run, 'deploy']]], [['version.pending', { from: 'issuing', to: 'pending' }], ['delivery.pending', { target: 'mem' }]]);
  await step([[DELIVERED, [version]], [STEP, [run, 'promote']]], [['delivery.deployed', { target: 'mem' }], ['delivery.verified', { target: 'mem' }]]);
  await step(
    [[DISPLACED, [secret.current]], [CURRENT, [version]], [PROMOTED, [secret.id]], [FINISHED, [run]]],
    [['version.previous', { from: 'current', to: 'previous' }], ['version.current', { from: 'pending', to: 'current' }], ['run.finished', { status: 'succeeded' }]],
  );
}
