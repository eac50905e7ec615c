/** The applied configuration in PostgreSQL: revisions, and one row per managed secret. */
import { randomUUID } from 'node:crypto';
import { hashDocument, type LoadedConfig } from '../config/load.js';
import { type LiveKeys, managedSpecs, type Plan, type StoredSecret } from '../config/plan.js';
import type { Schedule } from '../queue/queues.js';
import type { AuditLog } from './audit.js';
import type { Db } from './client.js';
import type { Prisma } from './generated/client.js';

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

export async function latestDocument(db: Db): Promise<Record<string, unknown> | undefined> {
  const row = await db.configRevision.findFirst({ orderBy: { id: 'desc' }, select: { document: true } });
  return row?.document as Record<string, unknown> | undefined;
}

/**
 * Stores a new revision and the secrets' rows in one transaction; removed secrets keep their
 * history and bindings. With `rotationMetadata`, added and changed secrets are marked as having
 * rotation metadata to write to their stores (`rekey apply`; `--no-rotation-metadata` leaves it off).
 */
export async function saveConfig(db: Db, audit: AuditLog, loaded: LoadedConfig, plan: Plan, actor: string, options: { rotationMetadata?: boolean } = {}): Promise<number> {
  return db.$transaction(async (tx) => {
    const latest = await tx.configRevision.findFirst({ orderBy: { id: 'desc' }, select: { id: true, hash: true } });
    const revision = latest?.hash === loaded.hash ? latest : await tx.configRevision.create({ data: { hash: loaded.hash, document: loaded.document as Prisma.InputJsonObject } });
    const secrets = managedSpecs(loaded.document) as Record<string, Prisma.InputJsonObject>;
    // With the apply, so a process killed right after it still leaves the writes to do (src/events/rotation-metadata.ts).
    const metadata = options.rotationMetadata ? { metadataPendingAt: new Date() } : {};
    for (const name of [...plan.secrets.added, ...plan.secrets.changed.map((c) => c.name)]) {
      const spec = secrets[name]!;
      await tx.secret.upsert({
        where: { name },
        create: { id: randomUUID(), name, spec, specHash: hashDocument(spec), ...metadata },
        update: { spec, specHash: hashDocument(spec), removedAt: null, boundRevisionId: null, ...metadata },
      });
    }
    // A removed secret keeps the bindings of the revision it was last applied in (the latest
    // before this one), so its live versions stay reachable (src/resolver.ts).
    if (plan.secrets.removed.length) {
      await tx.secret.updateMany({ where: { name: { in: plan.secrets.removed } }, data: { removedAt: new Date(), boundRevisionId: latest!.id } });
    }
    await audit.append(tx, {
      actor,
      action: 'config.applied',
      data: { revision: revision.id, hash: loaded.hash, added: plan.secrets.added, changed: plan.secrets.changed.map((c) => c.name), removed: plan.secrets.removed },
    });
    return revision.id;
  });
}

/** The schedules of every active secret, as the database has them. */
export async function activeSchedules(db: Db): Promise<Schedule[]> {
  const rows = await db.secret.findMany({ where: { removedAt: null }, select: { name: true, spec: true } });
  return rows.flatMap((row) => {
    const schedule = (row.spec as { schedule?: { cron: string; timezone?: string } }).schedule;
    return schedule ? [{ secret: row.name, cron: schedule.cron, timezone: schedule.timezone ?? 'UTC' }] : [];
  });
}
