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

  /** One statement: the newest throttle or release event of each version at `target` (the partial index audit_events_usage_throttle_idx). */
  async throttled(target: string, versionIds: readonly string[]): Promise<Map<string, number>> {
    if (!versionIds.length) return new Map();
    const rows = await this.db.$queryRaw<Array<{ version_id: string; action: string; releasable_at: string | null; at: Date }>>`
      SELECT DISTINCT ON (version_id) version_id, action, data->>'releasableAt' AS releasable_at, at FROM audit_events
       WHERE version_id = ANY(${[...versionIds]}::text[]) AND data->>'target' = ${target}
         AND (action = 'usage.released' OR (action = 'usage.anomaly' AND data->>'done' = 'throttled'))
       ORDER BY version_id, seq DESC`;
    // Events from before releasableAt was recorded may be lifted from when they were set.
    return new Map(rows.filter((r) => r.action === 'usage.anomaly').map((r) => [r.version_id, r.releasable_at ? Date.parse(r.releasable_at) : r.at.getTime()]));
  }

  async recordUsageEvent(event: { action: 'usage.anomaly' | 'usage.released'; secret: string; versionId: string; data: JsonObject }, audit: AuditContext, notices: readonly Notice[] = []): Promise<void> {
    await this.db.$transaction(async (tx) => {
      await writeNotices(tx, notices);
      await this.audit.append(tx, { actor: audit.actor, action: event.action, secret: event.secret, versionId: event.versionId, data: event.data });
    });
  }
}
