/**
 * SyncRepository on PostgreSQL: the target_syncs rows and the `target.drift` audit events, and the
 * store check's rows (`store:<provider>`, see storeSyncName) with its `store.drift` events.
 * A check of a target in sync costs two statements however many secrets it serves.
 */
import { sanitize } from '../core/errors.js';
import type { AuditContext } from '../core/model.js';
import type { Notice } from '../core/notify.js';
import type { VersionRecord } from '../core/model.js';
import { driftWindowMs, storeSyncName, type StoreCheckResult, type StoreCheckState, type SyncRepository, type SyncResult } from '../core/sync.js';
import type { AuditLog } from './audit.js';
import type { Db } from './client.js';
import { writeNotices } from './outbox.js';
import { toVersion, versionInclude } from './mappers.js';

/** `missing v3; unwanted v1`: what a check found, by version number. */
export function describeDrift(result: Pick<SyncResult, 'missing' | 'unwanted'>): string {
  const part = (what: string, numbers: number[]) => (numbers.length ? [`${what} ${numbers.map((n) => `v${n}`).join(', ')}`] : []);
  return [...part('missing', result.missing), ...part('unwanted', result.unwanted)].join('; ');
}

/** `store current v5 (failed), rekey current v4`: what a store check found, by version number and state. */
export function describeStoreDrift(result: Pick<StoreCheckResult, 'found' | 'storeCurrent' | 'rekeyCurrent'>): string {
  const rekey = result.rekeyCurrent === undefined ? 'rekey has no current version' : `rekey current v${result.rekeyCurrent}`;
  const held = result.storeCurrent;
  const store = !held
    ? 'store has no current version'
    : held.number === undefined
      ? `store current is a version rekey does not know (${held.storeVersionId})`
      : `store current v${held.number} (${held.state ?? '?'})`;
  return `${store}, ${rekey}`;
}

export class PrismaSyncRepository implements SyncRepository {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
  ) {}

  async secretIds(names: readonly string[]): Promise<Map<string, string>> {
    const rows = await this.db.secret.findMany({ where: { name: { in: [...names] } }, select: { id: true, name: true } });
    return new Map(rows.map((r) => [r.name, r.id]));
  }

  async versionsByKeys({ fingerprints, versionIds }: { fingerprints: readonly string[]; versionIds: readonly string[] }) {
    if (!fingerprints.length && !versionIds.length) return [];
    const rows = await this.db.version.findMany({
      where: { OR: [{ fingerprint: { in: [...fingerprints] } }, { id: { in: versionIds.filter((id) => /^[0-9a-f-]{36}$/i.test(id)) } }] },
      include: versionInclude,
    });
    return rows.map(toVersion);
  }

  async recordCheck(
    target: string,
    at: Date,
    results: readonly SyncResult[],
    audit: AuditContext,
    options: { repair: boolean; periodMs?: number; notices?: (result: SyncResult, streak: number) => readonly Notice[] },
  ): Promise<Map<string, number>> {
    const streaks = new Map<string, number>();
    if (!results.length) return streaks;
    await this.db.targetSync.createMany({ data: results.map((r) => ({ secretId: r.secretId, target })), skipDuplicates: true });
    const inSync = results.filter((r) => !r.error && !r.missing.length && !r.unwanted.length).map((r) => r.secretId);
    if (inSync.length) {
      await this.db.targetSync.updateMany({ where: { target, secretId: { in: inSync } }, data: { lastCheckedAt: at, lastInSyncAt: at, driftStreak: 0 } });
    }
    for (const result of results) {
      const drifted = result.missing.length > 0 || result.unwanted.length > 0;
      if (!drifted && !result.error) continue;
      const error = result.error ? { lastError: sanitize(result.error), lastErrorAt: at } : {};
      if (!drifted || !options.repair) {
        await this.db.targetSync.update({ where: { secretId_target: { secretId: result.secretId, target } }, data: { lastCheckedAt: at, ...error } });
        continue;
      }
      const streak = await this.db.$transaction(async (tx) => {
        // The row locked: replicas check on their own clocks, and two recording one drift at once must
        // extend the streak twice, or both would reach DRIFT_STREAK_ALERT and alert.
        const [row] = await tx.$queryRaw<Array<{ lastDriftAt: Date | null; driftStreak: number }>>`
          SELECT last_drift_at AS "lastDriftAt", drift_streak AS "driftStreak" FROM target_syncs
          WHERE secret_id = ${result.secretId}::uuid AND target = ${target} FOR UPDATE`;
        if (!row) throw new Error(`target_syncs row of ${target} missing`);
        const recent = row.lastDriftAt !== null && at.getTime() - row.lastDriftAt.getTime() <= driftWindowMs(options.periodMs);
        const next = recent ? row.driftStreak + 1 : 1;
        const repaired = result.redeployed.length > 0 && result.redeployed.length === result.missing.length && !result.unwanted.length;
        await tx.targetSync.update({
          where: { secretId_target: { secretId: result.secretId, target } },
          data: { lastCheckedAt: at, lastDriftAt: at, lastDrift: describeDrift(result), driftStreak: next, ...(repaired ? { lastRepairedAt: at } : {}), ...error },
        });
        await this.audit.append(tx, {
          actor: audit.actor,
          action: 'target.drift',
          secret: result.secret,
          data: {
            target,
            method: result.method,
            found: { missing: result.missing, unwanted: result.unwanted },
            done: { redeployed: result.redeployed, retiring: result.retiring },
            streak: next,
            ...(result.error ? { error: sanitize(result.error) } : {}),
          },
        });
        await writeNotices(tx, options.notices?.(result, next) ?? []);
        return next;
      });
      streaks.set(result.secretId, streak);
    }
    return streaks;
  }

  async storeCheckStates(names: readonly string[]): Promise<Map<string, StoreCheckState>> {
    const states = new Map<string, StoreCheckState>();
    if (!names.length) return states;
    const rows = await this.db.$queryRaw<Array<{ id: string; name: string; rotating: boolean; changed: Date | null }>>`
      SELECT s.id::text, s.name,
        EXISTS (SELECT 1 FROM runs r WHERE r.secret_id = s.id AND r.kind = 'rotation' AND r.status = 'running') AS rotating,
        (SELECT max(r.updated_at) FROM runs r WHERE r.secret_id = s.id) AS changed
      FROM secrets s WHERE s.name = ANY(${[...names]}::text[])`;
    const versions = await this.db.version.findMany({
      where: { secretId: { in: rows.map((r) => r.id) }, state: { in: ['current', 'previous'] } },
      include: versionInclude,
      orderBy: { number: 'desc' },
    });
    const live = versions.map(toVersion);
    for (const row of rows) {
      const own = live.filter((v) => v.secretId === row.id);
      states.set(row.name, {
        secretId: row.id,
        current: own.find((v) => v.state === 'current') ?? null,
        previous: own.find((v) => v.state === 'previous') ?? null,
        rotating: row.rotating,
        runChangedAt: row.changed,
      });
    }
    return states;
  }

  async versionsInStore(secretId: string, keys: { storeVersionIds: readonly string[]; versionIds: readonly string[] }): Promise<VersionRecord[]> {
    const ids = keys.versionIds.filter((id) => /^[0-9a-f-]{36}$/i.test(id));
    const rows = await this.db.version.findMany({
      where: { secretId, OR: [{ storeVersionId: { in: [...keys.storeVersionIds] } }, { id: { in: ids } }] },
      include: versionInclude,
    });
    return rows.map(toVersion);
  }

  async recordStoreCheck(result: StoreCheckResult, at: Date, audit: AuditContext, options: { repair: boolean; notices?: (occurrence: string) => readonly Notice[] }): Promise<void> {
    const target = storeSyncName(result.store);
    const key = { secretId_target: { secretId: result.secretId, target } };
    await this.db.targetSync.createMany({ data: [{ secretId: result.secretId, target }], skipDuplicates: true });
    const error = result.error ? { lastError: sanitize(result.error), lastErrorAt: at } : {};
    if (!result.found || result.found === 'in-sync' || !options.repair) {
      const inSync = result.found === 'in-sync' && !result.error ? { lastInSyncAt: at, driftStreak: 0 } : {};
      await this.db.targetSync.update({ where: key, data: { lastCheckedAt: at, ...inSync, ...error } });
      return;
    }
    const found = result.found;
    await this.db.$transaction(async (tx) => {
      // The row locked, as recordCheck does: two workers recording one drift extend the streak twice.
      const [row] = await tx.$queryRaw<Array<{ lastDriftAt: Date | null; driftStreak: number; settledAt: Date | null }>>`
        SELECT last_drift_at AS "lastDriftAt", drift_streak AS "driftStreak", GREATEST(last_in_sync_at, last_repaired_at) AS "settledAt"
        FROM target_syncs WHERE secret_id = ${result.secretId}::uuid AND target = ${target} FOR UPDATE`;
      const streak = row?.lastDriftAt && at.getTime() - row.lastDriftAt.getTime() <= driftWindowMs() ? row.driftStreak + 1 : 1;
      await tx.targetSync.update({
        where: key,
        data: { lastCheckedAt: at, lastDriftAt: at, lastDrift: describeStoreDrift(result), driftStreak: streak, ...(result.repaired ? { lastRepairedAt: at } : {}), ...error },
      });
      await this.audit.append(tx, {
        actor: audit.actor,
        action: 'store.drift',
        secret: result.secret,
        data: {
          store: result.store,
          found,
          storeCurrent: result.storeCurrent ? { storeVersionId: result.storeCurrent.storeVersionId, number: result.storeCurrent.number ?? null, state: result.storeCurrent.state ?? null } : null,
          rekeyCurrent: result.rekeyCurrent ?? null,
          repaired: result.repaired,
          ...(result.error ? { error: sanitize(result.error) } : {}),
        },
      });
      await writeNotices(tx, options.notices?.(String(row?.settledAt?.getTime() ?? 0)) ?? []);
    });
  }

  async markRepaired(secretId: string, target: string, at: Date): Promise<void> {
    await this.db.targetSync.updateMany({ where: { secretId, target }, data: { lastRepairedAt: at } });
  }
}
