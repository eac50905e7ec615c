/** The applied configuration in PostgreSQL: revisions, and one row per managed secret. */
import { randomUUID } from 'node:crypto';
import { hashDocument, type LoadedConfig } from '../config/load.js';
import { managedSpecs, type Plan, type StoredSecret } from '../config/plan.js';
import type { Schedule } from '../queue/queues.js';
import { appendAudit } from './audit.js';
import type { Db } from './client.js';
import type { Prisma } from './generated/client.js';

export async function storedSecrets(db: Db): Promise<StoredSecret[]> {
  return db.secret.findMany({ select: { name: true, spec: true, specHash: true, removedAt: true }, orderBy: { name: 'asc' } });
}

export async function latestDocument(db: Db): Promise<Record<string, unknown> | undefined> {
  const row = await db.configRevision.findFirst({ orderBy: { id: 'desc' }, select: { document: true } });
  return row?.document as Record<string, unknown> | undefined;
}

/** Stores a new revision and the secrets' rows in one transaction; removed secrets keep their history. */
export async function saveConfig(db: Db, loaded: LoadedConfig, plan: Plan, actor: string): Promise<number> {
  return db.$transaction(async (tx) => {
    const latest = await tx.configRevision.findFirst({ orderBy: { id: 'desc' }, select: { id: true, hash: true } });
    const revision = latest?.hash === loaded.hash ? latest : await tx.configRevision.create({ data: { hash: loaded.hash, document: loaded.document as Prisma.InputJsonObject } });
    const secrets = managedSpecs(loaded.document) as Record<string, Prisma.InputJsonObject>;
    for (const name of [...plan.secrets.added, ...plan.secrets.changed.map((c) => c.name)]) {
      const spec = secrets[name]!;
      await tx.secret.upsert({
        where: { name },
        create: { id: randomUUID(), name, spec, specHash: hashDocument(spec) },
        update: { spec, specHash: hashDocument(spec), removedAt: null },
      });
    }
    if (plan.secrets.removed.length) await tx.secret.updateMany({ where: { name: { in: plan.secrets.removed } }, data: { removedAt: new Date() } });
    await appendAudit(tx, {
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
