/**
 * The notification outbox on PostgreSQL (DESIGN.md "Runtime"; docs/notifications.md): a notice
 * is a row here, written in the transaction of the state change it reports, until a worker's
 * relay (src/notify/relay.ts) has queued it under its stable id and deleted the row. A process
 * that dies between the commit and the enqueue leaves the row for the next pass. Rows hold the
 * notice as destinations receive it (names, numbers, short fingerprints, codes, times): never a value.
 */
import type { Notice, Notifier } from '../core/notify.js';
import type { OutboxBacklog } from '../metrics.js';
import type { Db, Tx } from './client.js';
import { type SqlTx, statement } from './sql.js';

/** Rows one relay pass takes at most. */
const BATCH = 200;

/**
 * Writes `notices` inside the caller's transaction (or on their own). Idempotent per notice id:
 * one still waiting keeps its first row. In a hand-written transaction the insert is deferred
 * (SqlTx.defer): it goes out with the next batch or COMMIT, and its failure rolls it all back.
 */
export async function writeNotices(tx: Tx | Db | SqlTx, notices: readonly Notice[]): Promise<void> {
  if (!notices.length) return;
  if ('kind' in tx) {
    tx.defer(WRITE, [JSON.stringify(notices)]);
    return;
  }
  await tx.$executeRaw`
    INSERT INTO notification_outbox (id, notice)
    SELECT n->>'id', n FROM jsonb_array_elements(${JSON.stringify(notices)}::jsonb) AS n
    ON CONFLICT (id) DO NOTHING`;
}

/** writeNotices in a hand-written transaction (src/db/sql.ts). */
const WRITE = statement(
  'write_notices',
  `INSERT INTO notification_outbox (id, notice) SELECT n->>'id', n FROM jsonb_array_elements($1::jsonb) AS n ON CONFLICT (id) DO NOTHING`,
);

/** The Notifier port on the outbox: each notice in a transaction of its own. */
export class OutboxNotifier implements Notifier {
  constructor(private readonly db: Db) {}

  async notify(notice: Notice): Promise<void> {
    await writeNotices(this.db, [notice]);
  }
}

/**
 * One relay pass: takes the oldest waiting notices that no other relay holds (`FOR UPDATE SKIP
 * LOCKED`, so several workers share the rows and never queue one twice at once), hands them to
 * `send`, and deletes them in the same transaction once `send` resolved. When `send` throws,
 * nothing is deleted and the rows wait for the next pass. An empty outbox costs one indexed read.
 * Returns how many notices were sent.
 */
export async function relayOutbox(db: Db, send: (notices: readonly Notice[]) => Promise<void>): Promise<number> {
  const waiting = await db.$queryRaw<unknown[]>`SELECT 1 FROM notification_outbox LIMIT 1`;
  if (!waiting.length) return 0;
  return db.$transaction(
    async (tx) => {
      const rows = await tx.$queryRaw<Array<{ id: string; notice: Notice }>>`
        SELECT id, notice FROM notification_outbox ORDER BY created_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`;
      if (!rows.length) return 0;
      await send(rows.map((r) => r.notice));
      await tx.$executeRaw`DELETE FROM notification_outbox WHERE id = ANY(${rows.map((r) => r.id)}::text[])`;
      return rows.length;
    },
    { timeout: 30_000 },
  );
}

/** How many notices wait for a relay, and for how long the oldest has (the /metrics gauges). */
export async function outboxBacklog(db: Db): Promise<OutboxBacklog> {
  const [row] = await db.$queryRaw<Array<{ rows: number; oldest: number }>>`
    SELECT count(*)::int AS rows, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest FROM notification_outbox`;
  return { rows: row?.rows ?? 0, oldestSeconds: Math.max(0, Math.round(row?.oldest ?? 0)) };
}
