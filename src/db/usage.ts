/** UsageRepository on PostgreSQL: each version's last use and the usage audit events. */
import type { AuditContext } from '../core/model.js';
import type { Notice } from '../core/notify.js';
import type { JsonObject } from '../core/ports.js';
import type { UsageRepository } from '../core/usage.js';
import type { AuditLog } from './audit.js';
import type { Db } from './client.js';
import { writeNotices } from './outbox.js';

export class PrismaUsageRepository implements UsageRepository {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
  ) {}

  /** One statement for every version seen in a window. */
  async recordUse(versionIds: readonly string[], at: Date): Promise<void> {
    await this.db.version.updateMany({ where: { id: { in: [...versionIds] }, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: at } }] }, data: { lastUsedAt: at } });
  }

  async recordUsageEvent(event: { action: 'usage.anomaly' | 'usage.released'; secret: string; versionId: string; data: JsonObject }, audit: AuditContext, notices: readonly Notice[] = []): Promise<void> {
    await this.db.$transaction(async (tx) => {
      await writeNotices(tx, notices);
      await this.audit.append(tx, { actor: audit.actor, action: event.action, secret: event.secret, versionId: event.versionId, data: event.data });
    });
  }
}
