/**
 * The audit log: append-only (a trigger refuses UPDATE/DELETE/TRUNCATE, and the runtime
 * database role may only INSERT and SELECT it, see src/db/grants.ts) and chained with an
 * HMAC-SHA256 under REKEY_AUDIT_KEY, a key kept outside PostgreSQL: whoever holds only the
 * database (rekey's own DATABASE_URL, or the owner role, or a dump) cannot write a row that
 * `rekey audit verify` accepts, nor edit, delete or re-chain one without it saying so.
 *
 * There is one chain per secret (and one, named '', for events of no secret), so appends
 * for different secrets never wait on each other. Each row's MAC covers its sequence
 * number, its fields, its chain and the previous row of its chain; appends lock their chain's
 * head row (audit_heads, which each append moves, and a trigger for processes of earlier
 * releases; an advisory lock per chain too, which
 * processes of earlier releases take) so it stays linear across processes, and
 * a shared lock that anchors take exclusively for an instant (settledSeq) so that an
 * anchor never falls between a sequence number taken and its row committed.
 *
 * Rows written before the key existed (key_id NULL) keep their plain SHA-256 chain; the
 * migration that added key_id refuses new unkeyed rows (a CHECK constraint), and `verify`
 * refuses an unkeyed row after the first keyed one. The first anchor job records an
 * `audit.keyed` event (keyed) pinning the heads and count of the unkeyed rows, so they
 * cannot be rewritten afterwards either; until then only anchors taken before the upgrade
 * vouch for them. See src/db/audit-verify.ts.
 */
import { createHash, createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { decodeKey } from '../core/fingerprint.js';
import type { JsonObject, JsonValue } from '../core/ports.js';
import type { SecretValue } from '../core/secret-value.js';
import type { Db, Tx } from './client.js';
import { type Batched, type SqlTx, type Statement, statement } from './sql.js';

export const GENESIS = '0'.repeat(64);

/** The action of the event that starts the keyed epoch over an upgraded log. */
export const EPOCH_ACTION = 'audit.keyed';

export interface AuditInput {
  actor: string;
  action: string;
  secret?: string | null;
  versionId?: string | null;
  runId?: string | null;
  data?: JsonObject;
}

export interface AuditRow {
  seq: bigint;
  chain: string;
  at: Date;
  actor: string;
  action: string;
  secret: string | null;
  versionId: string | null;
  runId: string | null;
  data: JsonValue;
  prevHash: string;
  hash: string;
  /** Which REKEY_AUDIT_KEY wrote the row (see {@link AuditLog.keyId}); null before the keyed epoch. */
  keyId: string | null;
}

/** The audit log of one process, keyed by REKEY_AUDIT_KEY (decoded on first use). */
export class AuditLog {
  #key: Buffer | undefined;
  #hmacKey: KeyObject | undefined;
  #keyId: string | undefined;

  constructor(private readonly secret: SecretValue | undefined) {}

  /** The decoded key. @throws RekeyError REKEY_ERR_CONFIG when REKEY_AUDIT_KEY is missing or short. */
  private key(): Buffer {
    return (this.#key ??= decodeKey(this.secret?.reveal(), 'REKEY_AUDIT_KEY'));
  }

  /** Fails fast, naming the variable, when REKEY_AUDIT_KEY is not usable. */
  requireKey(): void {
    this.key();
  }

  /** First 8 hex chars of SHA-256(key): names the key a row was written under, reveals nothing of it. */
  keyId(): string {
    return (this.#keyId ??= createHash('sha256').update(this.key()).digest('hex').slice(0, 8));
  }


  /**
   * Appends one event inside the caller's transaction, Prisma's or a hand-written one (see {@link appendAll}).
   * @throws RekeyError REKEY_ERR_CONFIG when REKEY_AUDIT_KEY is not set.
   */
  async append(tx: Tx | SqlTx, input: AuditInput): Promise<void> {
    await this.appendAll(tx, [input]);
  }

  /**
   * Appends events, in order, inside the caller's transaction: per chain they touch, one
   * statement takes its locks, its head and their sequence numbers, then one insert writes
   * every row (the MACs are computed in process, each over the row before). In a hand-written
   * transaction the insert is deferred: it goes out with COMMIT (SqlTx.defer).
   * Call it last: it serializes the chain's appends until commit.
   * @throws RekeyError REKEY_ERR_CONFIG when REKEY_AUDIT_KEY is not set.
   */
  async appendAll(tx: Tx | SqlTx, inputs: readonly AuditInput[]): Promise<void> {
    if (inputs.length === 0) return;
    const taken = new Map<string, Taken>();
    for (const [chain, count] of chainsOf(inputs)) taken.set(chain, await take(tx, chain, count));
    const rows = this.rowsOf(inputs, taken);
    if (isSql(tx)) tx.defer(INSERT, insertValues(rows));
    else await tx.$executeRawUnsafe(INSERT.text, ...insertValues(rows));
  }

  /**
   * appendAll with the chain already taken: `taken` is the answer to {@link takeOf}, sent in the
   * caller's batch behind the statements that lock what the transaction writes. The insert goes
   * out with the next batch or COMMIT, and moves the head row the take locked ({@link INSERT_TAKEN}).
   * A chain with no head row yet (its first event) comes back from takeOf with no row, and is taken
   * here with {@link TAKE}, which creates it: one more round trip, once per chain. Every input
   * must be of one chain (the take's, when it found one), at most as many as the take numbered.
   * @throws Error when the inputs do not fit the take.
   */
  async appendTaken(tx: SqlTx, inputs: readonly AuditInput[], taken: readonly unknown[]): Promise<void> {
    if (inputs.length === 0) return;
    let rows = taken as ReadonlyArray<{ chain: string; prev: string; seq: string }>;
    const chain = rows[0]?.chain ?? inputs[0]!.secret ?? '';
    if ((rows.length && rows.length < inputs.length) || inputs.some((i) => (i.secret ?? '') !== chain)) {
      throw new Error(`audit: ${inputs.length} events do not fit a take of ${rows.length} on chain ${chain}`);
    }
    // No head row: TAKE creates it (and takes the locks again, which this transaction holds already when takeOf found its row).
    if (!rows.length) rows = await tx.rows<{ chain: string; prev: string; seq: string }>(TAKE, takeValues(chain, inputs.length));
    const appended = this.rowsOf(inputs, new Map([[chain, takenOf(rows)]]));
    tx.defer(INSERT_TAKEN, [...insertValues(appended), chain, appended.at(-1)!.hash]);
  }

  /**
   * The rows of `inputs`, chained and MACed: each chain's from its head and sequence numbers
   * as `taken` (a chain may have more numbers than rows: the rest are left unused).
   * @throws RekeyError REKEY_ERR_CONFIG when REKEY_AUDIT_KEY is not set.
   */
  rowsOf(inputs: readonly AuditInput[], taken: ReadonlyMap<string, Taken>): AuditRow[] {
    const keyId = this.keyId();
    const at = new Date();
    const rows: AuditRow[] = [];
    for (const [chain, { prev, seqs }] of taken) {
      let prevHash = prev;
      let i = 0;
      for (const input of inputs) {
        if ((input.secret ?? '') !== chain) continue;
        const row: AuditRow = {
          seq: seqs[i++]!,
          chain,
          at,
          actor: input.actor,
          action: input.action,
          secret: input.secret ?? null,
          versionId: input.versionId ?? null,
          runId: input.runId ?? null,
          data: input.data ?? {},
          prevHash,
          hash: '',
          keyId,
        };
        row.hash = prevHash = this.hashOf(row);
        rows.push(row);
      }
    }
    return rows;
  }

  /** What a row's hash must be: an HMAC for keyed rows, the plain SHA-256 of before for the others. */
  hashOf(row: Omit<AuditRow, 'hash'>): string {
    const data = canonical(row.data);
    if (row.keyId !== null) {
      const fields = [row.seq.toString(), row.at.toISOString(), row.actor, row.action, row.secret, row.versionId, row.runId, data, row.prevHash, row.chain, row.keyId];
      return createHmac('sha256', (this.#hmacKey ??= createSecretKey(this.key()))).update(JSON.stringify(fields)).digest('hex');
    }
    const fields = [row.seq.toString(), row.at.toISOString(), row.actor, row.action, row.secret, row.versionId, row.runId, data, row.prevHash];
    // The chain joined the hash with the per-secret chains; rows of the '' chain hash as before.
    if (row.chain !== '') fields.push(row.chain);
    return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
  }

  /** The MAC that signs an anchor's `<seq>:<digest>`. */
  anchorMac(body: string): string {
    return createHmac('sha256', this.key()).update(`rekey-audit-anchor:${body}`).digest('hex');
  }

  /** The seal of what rekey keeps about the log outside PostgreSQL (an audit verification's record in Redis): an HMAC apart from anchors' (another prefix), so neither stands for the other. */
  sealOf(body: string): string {
    return createHmac('sha256', this.key()).update(`rekey-audit-record:${body}`).digest('hex');
  }

  sealMatches(body: string, seal: string): boolean {
    return sameHex(seal, this.sealOf(body));
  }
}

/** Two hex digests (MACs, hashes) equal, compared in constant time. */
export function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** The advisory lock every append holds shared and settledSeq() takes exclusively. */
const SETTLE_LOCK = 'audit-append';

/** A chain's head (GENESIS for a new chain) and `count` sequence numbers, under its lock. */
export interface Taken {
  prev: string;
  seqs: bigint[];
}

/**
 * The chains `inputs` touch, in the order their locks must be taken (so two transactions
 * appending to the same two never wait on each other in a circle), with how many events each.
 */
export function chainsOf(inputs: readonly AuditInput[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const input of inputs) counts.set(input.secret ?? '', (counts.get(input.secret ?? '') ?? 0) + 1);
  return new Map([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function isSql(tx: Tx | SqlTx): tx is SqlTx {
  return (tx as SqlTx).kind === 'sql';
}

/**
 * One statement, in this order: the shared lock, the chain's advisory lock (which processes of
 * releases before audit_heads still take), then the chain's head row, inserted at GENESIS for a
 * new chain or locked by ON CONFLICT DO UPDATE, which returns its newest committed hash whatever
 * the statement's snapshot; then the sequence numbers, under all three locks. It marks the
 * transaction (rekey.audit_heads_moved) as one whose {@link INSERT} moves the head itself. They come from
 * unnest, not generate_series: a generic plan estimates 1,000 rows for generate_series($3) and
 * 10 for unnest, so PostgreSQL planned the statement again at every call (custom plans) instead
 * of once per connection. The take of chain `$2` (a secret's name, '' for none).
 */
export const TAKE = statement(
  'audit_take',
  `WITH c AS MATERIALIZED (SELECT $2::text AS chain),
     head AS (
       INSERT INTO audit_heads (chain, hash)
       SELECT c.chain, '${GENESIS}' FROM c, LATERAL (SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))::text, pg_advisory_xact_lock(hashtextextended('audit:' || c.chain, 0))::text, set_config('rekey.audit_heads_moved', 'on', true)) AS locked
       WHERE c.chain IS NOT NULL
       ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain
       RETURNING chain, hash)
     SELECT head.chain, head.hash AS prev, nextval(pg_get_serial_sequence('audit_events', 'seq')) AS seq
     FROM head, unnest(array_fill(0, ARRAY[$3::int])) ORDER BY seq`,
);
/** Where {@link takeOf} finds its chain: the secret of a run or of a version, by id. Nothing is taken when there is no such row. */
export type ChainOf = { run: string } | { version: string };
/**
 * The take of a chain found by a row, for a chain that has its head row (every chain but a new
 * one), in one flat statement (no CTEs, no sort: each node is set up again at every execution).
 * The chain's name is found by `row` (`x.id = $2`, `x` joined to `secrets s`) in the InitPlan
 * that keys the head's index scan, so it runs first; its one filter takes, in argument order,
 * the shared lock, the chain's advisory lock (which processes of releases before audit_heads
 * still take) and marks the transaction (rekey.audit_heads_moved) as one whose insert moves the
 * head itself. Then the head row is locked FOR UPDATE (which, like TAKE's ON CONFLICT, returns
 * its newest committed version whatever the statement's snapshot, taken before the advisory lock's
 * wait) and the sequence numbers are drawn, one per row of the unnest, under the advisory locks
 * (the chain's serializes its appends; the shared one keeps settledSeq's reading behind them).
 * Unlike TAKE it writes nothing: the head row gets one new version per append, not two. No row
 * comes back when the chain has no head row (or `$2` finds no row): {@link AuditLog.appendTaken}
 * then sends TAKE for its events' chain. The sequence by name: pg_get_serial_sequence at every
 * call cost ~13 µs. The rows come in the order the numbers were drawn; {@link takenOf} sorts them anyway.
 */
function lockStatement(name: string, row: string): Statement {
  return statement(
    name,
    `SELECT h.chain, h.hash AS prev, nextval('audit_events_seq_seq'::regclass) AS seq
     FROM audit_heads h, unnest(array_fill(0, ARRAY[$3::int]))
     WHERE h.chain = (SELECT s.name FROM ${row} JOIN secrets s ON s.id = x.secret_id WHERE x.id = $2::uuid
       AND (pg_advisory_xact_lock_shared(hashtextextended($1, 0))::text || pg_advisory_xact_lock(hashtextextended('audit:' || s.name, 0))::text
         || set_config('rekey.audit_heads_moved', 'on', true)) IS NOT NULL)
     FOR UPDATE OF h`,
  );
}
const TAKE_OF_RUN = lockStatement('audit_take_of_run', 'runs x');
const TAKE_OF_VERSION = lockStatement('audit_take_of_version', 'versions x');

/**
 * The take of `count` sequence numbers of a chain found by a row the caller's transaction may
 * have just written, for its batch: put it behind the statements that take the transaction's
 * other locks (the chain's lock comes last, as in appendAll). Hand its answer to AuditLog.appendTaken.
 */
export function takeOf(of: ChainOf, count: number): Batched {
  return 'run' in of ? [TAKE_OF_RUN, [SETTLE_LOCK, of.run, count]] : [TAKE_OF_VERSION, [SETTLE_LOCK, of.version, count]];
}
/** An audit row's columns, in the order of {@link ROWS}' record. */
const COLUMNS = 'seq, chain, at, actor, action, secret, version_id, run_id, data, prev_hash, hash, key_id';
/** The rows of `$1`, a JSON array of them ({@link insertValues}), as a relation `r`. */
const ROWS = `json_to_recordset($1::json)
       AS r(seq bigint, chain text, at timestamp, actor text, action text, secret text, version_id text, run_id text, data jsonb, prev_hash text, hash text, key_id text)`;
/**
 * The rows, and each chain's head moved to its last one, in one statement: the head row the
 * take locked (and created for a new chain) in the same transaction, found through its unique
 * index by ON CONFLICT (an UPDATE joined to the rows was planned as a scan of every head, as
 * json_to_recordset counts for 100 rows in a generic plan). The take's setting
 * rekey.audit_heads_moved skips the trigger audit_events_heads, which keeps the head for
 * processes of earlier releases. The rows go as one JSON array (see {@link insertValues}):
 * twelve text arrays cost node-postgres an escaped copy of every value, and the hand-out
 * journal's batches a third of their allocation.
 */
export const INSERT = statement(
  'audit_insert',
  `WITH r AS MATERIALIZED (SELECT * FROM ${ROWS}),
     appended AS (INSERT INTO audit_events (${COLUMNS}) SELECT ${COLUMNS} FROM r)
   INSERT INTO audit_heads (chain, hash) SELECT DISTINCT ON (chain) chain, hash FROM r ORDER BY chain, seq DESC
   ON CONFLICT (chain) DO UPDATE SET hash = EXCLUDED.hash`,
);

/**
 * {@link INSERT} for one chain whose head row this transaction's take locked (or created), as
 * {@link AuditLog.appendTaken} appends: the rows, and head `$2` moved to `$3` (the last row's
 * hash) by a plain UPDATE through the head's primary key, not INSERT's ON CONFLICT with its sort
 * (a statement's plan nodes are set up again at every execution). The row is there: the take
 * read it FOR UPDATE, or TAKE inserted it, in this transaction, and nothing deletes heads.
 */
export const INSERT_TAKEN = statement(
  'audit_insert_taken',
  `WITH appended AS (INSERT INTO audit_events (${COLUMNS}) SELECT ${COLUMNS} FROM ${ROWS})
   UPDATE audit_heads SET hash = $3 WHERE chain = $2`,
);

/** The values of TAKE for `count` sequence numbers of `chain`. */
export function takeValues(chain: string, count: number): unknown[] {
  return [SETTLE_LOCK, chain, count];
}

/** TAKE's answer (node-postgres hands int8 over as a string, Prisma as a bigint). */
export function takenOf(rows: ReadonlyArray<{ prev: string; seq: string | bigint }>): Taken {
  return { prev: rows[0]!.prev, seqs: rows.map((t) => BigInt(t.seq)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
}

async function take(tx: Tx | SqlTx, chain: string, count: number): Promise<Taken> {
  const values = takeValues(chain, count);
  return takenOf(isSql(tx) ? await tx.rows<{ prev: string; seq: string }>(TAKE, values) : await tx.$queryRawUnsafe<Array<{ prev: string; seq: bigint }>>(TAKE.text, ...values));
}

/** INSERT's values: every row in one statement, as one JSON array (`at` as UTC ISO text, as a `timestamp` takes it). */
export function insertValues(rows: readonly AuditRow[]): unknown[] {
  return [
    JSON.stringify(
      rows.map((r) => ({
        seq: r.seq.toString(),
        chain: r.chain,
        at: r.at.toISOString(),
        actor: r.actor,
        action: r.action,
        secret: r.secret,
        version_id: r.versionId,
        run_id: r.runId,
        data: r.data,
        prev_hash: r.prevHash,
        hash: r.hash,
        key_id: r.keyId,
      })),
    ),
  ];
}

/**
 * The highest seq below which every row is committed and no append in flight can still
 * add one: waits for the appends under way (an instant; they hold their lock only around
 * their insert) and reads the newest seq. Rows above it may be missing for a while.
 */
export async function settledSeq(db: Db): Promise<bigint> {
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SET LOCAL lock_timeout = '30s'`;
    await tx.$queryRaw`SELECT 1 FROM pg_advisory_xact_lock(hashtextextended(${SETTLE_LOCK}, 0))`;
    const [row] = await tx.$queryRaw<Array<{ seq: bigint | null }>>`SELECT max(seq) AS seq FROM audit_events`;
    return row?.seq ?? 0n;
  }, { timeout: 40_000 });
}

/** One hash over every chain's head: what an anchor pins. */
export function digestOf(heads: Map<string, string>): string {
  return createHash('sha256')
    .update(JSON.stringify([...heads].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
    .digest('hex');
}

/** JSON with object keys sorted, so jsonb's key reordering does not change the hash. */
function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    // An event's data is usually flat and written with its keys in order: then it is its own JSON.
    if (flatAndSorted(value)) return JSON.stringify(value);
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k]!)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Whether `value`'s keys are in sort() order and its values strings, finite numbers, booleans or null (JSON.stringify writes each as canonical does). */
function flatAndSorted(value: { [key: string]: JsonValue }): boolean {
  let last: string | undefined;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) return false;
    if (last !== undefined && !(last < key)) return false;
    last = key;
    const v = value[key];
    if (v !== null && typeof v !== 'string' && typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) return false;
  }
  return true;
}
