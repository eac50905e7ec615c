/** The applied configuration in PostgreSQL: revisions, and one row per managed secret. */
import { randomUUID } from 'node:crypto';
import { hashDocument, type LoadedConfig } from '../config/load.js';
import { own } from '../config/schema.js';
import { type LiveKeys, managedSpecs, type Plan, type StoredSecret } from '../config/plan.js';
import type { Schedule } from '../queue/queues.js';
import type { AuditLog } from './audit.js';
import type { Db } from './client.js';
import { sql, statement } from './sql.js';

export async function storedSecrets(db: Db): Promise<StoredSecret[]> {
  return db.secret.findMany({ select: { name: true, spec: true, specHash: true, removedAt: true }, orderBy: { name: 'asc' } });
}

/** For the plan: each named secret's versions not yet revoked, and the targets holding one. */
export async function liveKeys(db: Db, names: readonly string[]): Promise<Map<string, LiveKeys>> {
  if (!names.length) return new Map();
  const rows = await db.version.findMany({
    where: { secret: { name: { in: [...names] } }, state: { notIn: ['revoked', 'failed'] } },
    orderBy: [{ secret: { name: 'asc' } }, { number: 'desc' }],
    select: { number: true, state: true, secret: { select: { name: true } }, deliveries: { where: { status: { not: 'retired' } }, select: { target: true } } },
  });
  const live = new Map<string, LiveKeys>();
  for (const row of rows) {
    const keys = live.get(row.secret.name) ?? { versions: [], targets: [] };
    keys.versions.push(`v${row.number} ${row.state}`);
    keys.targets = [...new Set([...keys.targets, ...row.deliveries.map((d) => d.target)])].sort();
    live.set(row.secret.name, keys);
  }
  return live;
}

/** The latest revision's document. As text, parsed here: a 100,000-secret document costs Prisma's JSON mapping seconds (and hundreds of MB). */
export async function latestDocument(db: Db): Promise<Record<string, unknown> | undefined> {
  const [row] = await db.$queryRaw<Array<{ document: string }>>`SELECT document::text AS document FROM config_revisions ORDER BY id DESC LIMIT 1`;
  return row ? (JSON.parse(row.document) as Record<string, unknown>) : undefined;
}

const LATEST_REVISION = statement('latest_revision', 'SELECT max(id) AS id FROM config_revisions');

/**
 * The id of the latest config revision, or undefined before the first apply. A named statement,
 * not Prisma: every process polls it once a second, and Prisma's query compiler spent ~2 ms of
 * event-loop time per call (0.35 ms this way).
 */
export async function latestRevisionId(db: Db): Promise<number | undefined> {
  const [row] = await sql(db).rows<{ id: number | null }>(LATEST_REVISION, []);
  return row?.id ?? undefined;
}

/** A revision's document, read as {@link latestDocument} reads it; undefined when there is no such revision. */
export async function revisionDocument(db: Db, id: number): Promise<Record<string, unknown> | undefined> {
  const [row] = await db.$queryRaw<Array<{ document: string }>>`SELECT document::text AS document FROM config_revisions WHERE id = ${id}`;
  return row ? (JSON.parse(row.document) as Record<string, unknown>) : undefined;
}

/** How many secrets one statement (and one transaction) of an apply writes. */
export const APPLY_BATCH = 1000;
/** A progress line at most this often while the batches are written. */
const PROGRESS_EVERY_MS = 2000;

/**
 * Stores a config in steps that each commit, so its size is bounded by nothing but the disk:
 * 1. one transaction: the revision (unless the latest has the same hash), the removed secrets
 *    (which keep the bindings of the revision they were last applied in, src/resolver.ts), and
 *    the audit event `config.apply.started`;
 * 2. the added and changed secrets, {@link APPLY_BATCH} at a time: each batch one multi-row
 *    upsert and its `config.secrets` audit event (the names it wrote) in one transaction;
 * 3. `config.applied`, once every batch has committed.
 * A failure between batches leaves the revision stored and the secrets of the committed
 * batches written: the next apply of the same file stores no new revision, plans only what
 * is still missing or different, and writes that (docs/scale.md). With `rotationMetadata` (the store
 * instances that can show a rotation policy),
 * added and changed secrets are marked as having rotation metadata to write to their stores
 * (`rekey apply`; `--no-rotation-metadata` leaves it off), in their batch's transaction.
 */
export async function saveConfig(
  db: Db,
  audit: AuditLog,
  loaded: LoadedConfig,
  plan: Plan,
  actor: string,
  options: { rotationMetadata?: ReadonlySet<string>; progress?: (line: string) => void } = {},
): Promise<number> {
  const added = new Set(plan.secrets.added);
  const names = [...plan.secrets.added, ...plan.secrets.changed.map((c) => c.name)];
  const batches = Math.ceil(names.length / APPLY_BATCH);
  const revision = await db.$transaction(
    async (tx) => {
      const latest = await tx.configRevision.findFirst({ orderBy: { id: 'desc' }, select: { id: true, hash: true } });
      // The document as JSON text in one statement: through Prisma's JSON mapping a large one takes seconds.
      const [stored] =
        latest?.hash === loaded.hash
          ? [latest]
          : await tx.$queryRaw<Array<{ id: number }>>`INSERT INTO config_revisions (hash, document) VALUES (${loaded.hash}, ${JSON.stringify(loaded.document)}::json) RETURNING id`;
      if (plan.secrets.removed.length) {
        // Bound to the last revision of another document: the one they were last applied in (a re-run of an apply stores no revision).
        const before = await tx.configRevision.findFirst({ where: { hash: { not: loaded.hash } }, orderBy: { id: 'desc' }, select: { id: true } });
        await tx.secret.updateMany({ where: { name: { in: plan.secrets.removed } }, data: { removedAt: new Date(), boundRevisionId: before!.id } });
      }
      await audit.append(tx, { actor, action: 'config.apply.started', data: { revision: stored!.id, hash: loaded.hash, removed: plan.secrets.removed, writes: names.length, batches } });
      return stored!.id;
    },
    { timeout: 60_000 },
  );
  const secrets = managedSpecs(loaded.document);
  // With the apply, so a process killed right after it still leaves the writes to do (src/events/rotation-metadata.ts).
  const metadataPendingAt = options.rotationMetadata?.size ? new Date().toISOString() : null;
  const marked = (name: string) => metadataPendingAt !== null && options.rotationMetadata!.has(own(loaded.config.secrets, name)!.store.instance);
  const started = performance.now();
  let reported = started;
  for (let batch = 0; batch < batches; batch++) {
    if (options.progress && (batch === 0 || performance.now() - reported >= PROGRESS_EVERY_MS)) {
      reported = performance.now();
      options.progress(`  secrets: ${batch * APPLY_BATCH} of ${names.length} written (batch ${batch + 1} of ${batches}), ${((reported - started) / 1000).toFixed(1)} s`);
    }
    const chunk = names.slice(batch * APPLY_BATCH, (batch + 1) * APPLY_BATCH);
    const rows = chunk.map((name) => ({ id: randomUUID(), name, spec: secrets[name]!, hash: hashDocument(secrets[name]!), marked: marked(name) }));
    await db.$transaction(async (tx) => {
      await tx.$executeRaw`
        INSERT INTO secrets (id, name, spec, spec_hash, metadata_pending_at, updated_at)
        SELECT r.id, r.name, r.spec, r.hash, CASE WHEN r.marked THEN ${metadataPendingAt}::timestamptz AT TIME ZONE 'UTC' END, now() AT TIME ZONE 'UTC'
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(id uuid, name text, spec jsonb, hash text, marked boolean)
        ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, spec_hash = EXCLUDED.spec_hash, removed_at = NULL, bound_revision_id = NULL,
          metadata_pending_at = COALESCE(EXCLUDED.metadata_pending_at, secrets.metadata_pending_at), updated_at = EXCLUDED.updated_at`;
      await audit.append(tx, {
        actor,
        action: 'config.secrets',
        data: { revision, batch: batch + 1, of: batches, added: chunk.filter((n) => added.has(n)), changed: chunk.filter((n) => !added.has(n)) },
      });
    }, { timeout: 30_000 });
  }
  options.progress?.(`  secrets: ${names.length} of ${names.length} written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await db.$transaction((tx) =>
    audit.append(tx, { actor, action: 'config.applied', data: { revision, hash: loaded.hash, added: plan.secrets.added.length, changed: plan.secrets.changed.length, removed: plan.secrets.removed.length } }),
  );
  return revision;
}

/** The schedules of every active secret, as the database has them: three short columns per secret, not its whole spec. */
export async function activeSchedules(db: Db): Promise<Schedule[]> {
  return db.$queryRaw<Schedule[]>`
    SELECT name AS secret, spec->'schedule'->>'cron' AS cron, COALESCE(spec->'schedule'->>'timezone', 'UTC') AS timezone
    FROM secrets WHERE removed_at IS NULL AND spec->'schedule'->>'cron' IS NOT NULL`;
}
