/**
 * The writes of leaks, takedowns and decommissions (transitions, leak reports, blocked
 * stamps, grace ends), each one transaction that takes the secret lock (see repository.ts)
 * and appends its audit events. On Prisma: they are not a rotation's hot path.
 */
import { randomUUID } from 'node:crypto';
import { RekeyError } from '../core/errors.js';
import type { AuditContext, DecommissionSnapshot, LeakOutcome, LeakRecord, LeakReportInput, VersionChange, VersionRecord, VersionState } from '../core/model.js';
import type { Notice } from '../core/notify.js';
import type { AuditLog } from './audit.js';
import { writeNotices } from './outbox.js';
import { type Db, type Tx, isUniqueViolation } from './client.js';
import { STATE_STAMPS, toVersion, versionInclude } from './mappers.js';
import { auditOf } from './runs.js';
import { VERSIONS } from './reads.js';
import { LOCK_SECRET, applyChanges } from './rotation-steps.js';
import { type VersionRow, versionOf } from './rows.js';
import { type SqlTx, statement, transaction } from './sql.js';
import { refuseIllegal } from './transitions.js';

export class TakedownWrites {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
  ) {}

  async transition(versionId: string, from: readonly VersionState[], to: VersionState, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const version = await lockVersion(tx, versionId);
      if (!from.includes(version.state)) return false;
      refuseIllegal(version, to);
      const stamp = STATE_STAMPS[to];
      await tx.version.update({ where: { id: versionId }, data: { state: to, ...(stamp && !(stamp === 'compromisedAt' && version.compromisedAt) ? { [stamp]: new Date() } : {}) } });
      await this.audit.append(tx, { ...auditOf(audit), action: `version.${to}`, secret: version.secret, versionId, data: { from: version.state, to, number: version.number } });
      return true;
    });
  }

  async markCompromised(versionId: string, audit: AuditContext) {
    await this.db.$transaction(async (tx) => {
      const version = await lockVersion(tx, versionId);
      if (version.compromisedAt) return;
      await tx.version.update({ where: { id: versionId }, data: { compromisedAt: new Date() } });
      await this.audit.append(tx, { ...auditOf(audit), action: 'version.leaked', secret: version.secret, versionId, data: { state: version.state, number: version.number } });
    });
  }

  async decommission(secretId: string, plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[], audit: AuditContext) {
    return transaction(this.db, async (tx) => {
      await tx.rows(LOCK_SECRET, [secretId]);
      const [rotating] = await tx.rows<{ id: string }>(RUNNING_ROTATION_ID, [secretId]);
      if (rotating) throw new RekeyError('REKEY_ERR_CONFLICT', `a rotation is running (run ${rotating.id}); decommission again once it has finished`);
      const ctx = auditOf(audit);
      const events = await applyChanges(tx, plan(await snapshot(tx, secretId)), ctx);
      const left = await versionsIn(tx, secretId, ['previous', 'retired']);
      const [{ name }] = (await tx.rows<{ name: string }>(SECRET_NAME, [secretId])) as [{ name: string }];
      await this.audit.appendAll(tx, [...events, { ...ctx, action: 'secret.decommissioned', secret: name, data: { versions: left.map((v) => v.number) } }]);
      return left;
    });
  }

  async endGrace(secretId: string, plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[], audit: AuditContext, notices?: (changes: readonly VersionChange[]) => readonly Notice[]) {
    return transaction(this.db, async (tx) => {
      await tx.rows(LOCK_SECRET, [secretId]);
      const changes = plan(await snapshot(tx, secretId));
      const events = await applyChanges(tx, changes, auditOf(audit));
      if (changes.length && notices) await writeNotices(tx, notices(changes));
      await this.audit.appendAll(tx, events);
      return versionsIn(tx, secretId, ['previous']);
    });
  }

  async recordLeak(input: LeakReportInput & { version: VersionRecord | null; outcome: LeakOutcome }, audit: AuditContext, notices?: (record: LeakRecord) => readonly Notice[]): Promise<LeakRecord> {
    const secret = input.version?.secret ?? null;
    const versionId = input.version?.id ?? null;
    try {
      return await this.db.$transaction(async (tx) => {
        let blockedAt = input.outcome === 'already-revoked' ? input.receivedAt : null;
        if (input.version) {
          // Under the lock markBlocked takes: a revocation that finished before this row existed stamped the version.
          await lockSecret(tx, input.version.secretId);
          const blocked = (await tx.version.findUnique({ where: { id: input.version.id }, select: { blockedAt: true } }))?.blockedAt;
          if (blocked && !blockedAt) blockedAt = blocked > input.receivedAt ? blocked : input.receivedAt;
        }
        const row = await tx.leakReport.create({
          data: {
            id: randomUUID(),
            source: input.source,
            deliveryId: input.deliveryId,
            fingerprint: input.fingerprint,
            secretId: input.version?.secretId ?? null,
            versionId,
            outcome: input.outcome,
            receivedAt: input.receivedAt,
            blockedAt,
          },
        });
        const record = { id: row.id, outcome: input.outcome, secret, versionId, duplicate: false, blockedAt: input.outcome === 'already-revoked' ? null : blockedAt };
        await writeNotices(tx, notices?.(record) ?? []);
        await this.audit.append(tx, { ...auditOf(audit), action: 'leak.reported', secret, versionId, data: { source: input.source, deliveryId: input.deliveryId, fingerprint: input.fingerprint, outcome: input.outcome } });
        return record;
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      const row = (await this.db.leakReport.findUnique({
        where: { source_deliveryId_fingerprint: { source: input.source, deliveryId: input.deliveryId, fingerprint: input.fingerprint } },
      }))!;
      return { id: row.id, outcome: row.outcome as LeakOutcome, secret, versionId: row.versionId, duplicate: true, blockedAt: null };
    }
  }

  async markBlocked(versionId: string, notices?: (receivedAt: readonly Date[]) => readonly Notice[]) {
    return this.db.$transaction(async (tx) => {
      await lockVersion(tx, versionId);
      await tx.$executeRaw`UPDATE versions SET blocked_at = coalesce(blocked_at, now()) WHERE id = ${versionId}::uuid`;
      const rows = await tx.$queryRaw<Array<{ received_at: Date }>>`
        UPDATE leak_reports SET blocked_at = now() WHERE version_id = ${versionId}::uuid AND blocked_at IS NULL RETURNING received_at`;
      const received = rows.map((r) => r.received_at);
      if (received.length) await writeNotices(tx, notices?.(received) ?? []);
      return received;
    });
  }
}

/** Serializes every state change of one secret (promotion against a leak report, for one). */
async function lockSecret(tx: Tx, secretId: string): Promise<void> {
  await tx.$queryRaw`SELECT 1 FROM secrets WHERE id = ${secretId}::uuid FOR UPDATE`;
}

async function lockVersion(tx: Tx, versionId: string): Promise<VersionRecord> {
  const row = await tx.version.findUnique({ where: { id: versionId }, select: { secretId: true } });
  if (!row) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
  await lockSecret(tx, row.secretId);
  return toVersion((await tx.version.findUnique({ where: { id: versionId }, include: versionInclude }))!);
}

const RUNNING_ROTATION_ID = statement('running_rotation_id', `SELECT id FROM runs WHERE secret_id = $1 AND kind = 'rotation' AND status = 'running' LIMIT 1`);
const SECRET_NAME = statement('secret_name', `SELECT name FROM secrets WHERE id = $1`);

async function versionsIn(tx: SqlTx, secretId: string, states: readonly VersionState[]): Promise<VersionRecord[]> {
  return (await tx.rows<VersionRow>(VERSIONS, [secretId, states])).map(versionOf);
}

/** What planDecommission and planGraceEnd read under the secret lock. */
async function snapshot(tx: SqlTx, secretId: string): Promise<DecommissionSnapshot> {
  const versions = await versionsIn(tx, secretId, ['current', 'previous']);
  return { current: versions.find((v) => v.state === 'current') ?? null, previous: versions.filter((v) => v.state === 'previous'), now: new Date() };
}
