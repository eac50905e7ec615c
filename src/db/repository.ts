/**
 * StateRepository on PostgreSQL. Every state change locks its secret's row (so
 * promotions and leak reports on one secret serialize) and appends its audit event
 * in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import { RekeyError } from '../core/errors.js';
import type {
  AuditContext,
  DeliveryStatus,
  LeakOutcome,
  LeakRecord,
  LeakReportInput,
  RotationStep,
  SecretRecord,
  RunStatus,
  StateRepository,
  VersionRecord,
  VersionState,
} from '../core/model.js';
import type { JsonObject } from '../core/ports.js';
import { appendAudit } from './audit.js';
import { type Db, type Tx, isUniqueViolation } from './client.js';
import { STATE_STAMPS, toDelivery, toRun, toVersion, versionInclude } from './mappers.js';

const runInclude = versionInclude;

export class PrismaRepository implements StateRepository {
  constructor(private readonly db: Db) {}

  async getSecret(name: string) {
    return this.db.secret.findUnique({ where: { name }, select: { id: true, name: true, lastPromotedAt: true, removedAt: true } });
  }

  async getRun(id: string) {
    const row = await this.db.run.findUnique({ where: { id }, include: runInclude });
    return row ? toRun(row) : null;
  }

  async getVersion(id: string) {
    const row = await this.db.version.findUnique({ where: { id }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async currentVersion(secretId: string) {
    const row = await this.db.version.findFirst({ where: { secretId, state: 'current' }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async findVersionByFingerprint(fingerprint: string) {
    const row = await this.db.version.findFirst({ where: { fingerprint }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async findVersionByNumber(secret: string, number: number) {
    const row = await this.db.version.findFirst({ where: { number, secret: { name: secret } }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async findVersionByIssuerState(key: string, value: string) {
    // A jsonb path match; versions are few per secret, so no index is needed yet.
    const row = await this.db.version.findFirst({ where: { issuerState: { path: [key], equals: value } }, orderBy: { createdAt: 'desc' }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async deliveries(versionId: string) {
    return (await this.db.delivery.findMany({ where: { versionId }, orderBy: { target: 'asc' } })).map(toDelivery);
  }

  async versions(secretId: string, states: readonly VersionState[]) {
    const rows = await this.db.version.findMany({ where: { secretId, state: { in: [...states] } }, orderBy: { number: 'asc' }, include: versionInclude });
    return rows.map(toVersion);
  }

  async versionsOf(secretNames: readonly string[], states: readonly VersionState[]) {
    const rows = await this.db.version.findMany({
      where: { secret: { name: { in: [...secretNames] } }, state: { in: [...states] } },
      orderBy: [{ secretId: 'asc' }, { number: 'asc' }],
      include: versionInclude,
    });
    return rows.map(toVersion);
  }

  async createRotationRun(input: { secretId: string; trigger: string; idempotencyKey: string; graceMs: number | null; audit: AuditContext }) {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return await this.db.$transaction(async (tx) => {
          const row = await tx.run.create({
            data: {
              id: randomUUID(),
              secretId: input.secretId,
              kind: 'rotation',
              trigger: input.trigger,
              status: 'running',
              step: 'issue',
              idempotencyKey: input.idempotencyKey,
              graceMs: input.graceMs,
            },
            include: runInclude,
          });
          await appendAudit(tx, { ...auditOf(input.audit, row.id), action: 'run.started', secret: row.secret.name, data: { kind: 'rotation', trigger: input.trigger } });
          return { run: toRun(row), created: true };
        });
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        const existing =
          (await this.db.run.findUnique({ where: { idempotencyKey: input.idempotencyKey }, include: runInclude })) ??
          (await this.db.run.findFirst({ where: { secretId: input.secretId, kind: 'rotation', status: 'running' }, include: runInclude }));
        if (existing) return { run: toRun(existing), created: false };
        // The blocking run finished between our insert and our look-up: insert again.
      }
    }
    throw new RekeyError('REKEY_ERR_CONFLICT', 'could not create or find a rotation run');
  }

  async startVersionRun(input: { kind: 'retirement' | 'revocation'; version: VersionRecord; trigger: string; audit: AuditContext }) {
    const idempotencyKey = `${input.kind}:${input.version.id}`;
    const existing = await this.db.run.findUnique({ where: { idempotencyKey }, include: runInclude });
    if (existing) return toRun(existing);
    try {
      return await this.db.$transaction(async (tx) => {
        const row = await tx.run.create({
          data: {
            id: randomUUID(),
            secretId: input.version.secretId,
            kind: input.kind,
            trigger: input.trigger,
            status: 'running',
            step: input.kind,
            idempotencyKey,
            versionId: input.version.id,
          },
          include: runInclude,
        });
        await appendAudit(tx, { ...auditOf(input.audit, row.id), action: 'run.started', secret: row.secret.name, versionId: input.version.id, data: { kind: input.kind, trigger: input.trigger } });
        return toRun(row);
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      return toRun((await this.db.run.findUnique({ where: { idempotencyKey }, include: runInclude }))!);
    }
  }

  async openVersionRun(kind: 'retirement' | 'revocation', versionId: string) {
    const row = await this.db.run.findUnique({ where: { idempotencyKey: `${kind}:${versionId}` }, include: runInclude });
    return row && row.status === 'running' ? toRun(row) : null;
  }

  async takeLease(runId: string, owner: string, ms: number) {
    const granted = await this.db.$executeRaw`
      UPDATE runs SET lease_owner = ${owner}, lease_until = now() + ${ms} * interval '1 millisecond'
      WHERE id = ${runId}::uuid AND status = 'running' AND (lease_until IS NULL OR lease_until < now() OR lease_owner = ${owner})`;
    return granted === 1;
  }

  async releaseLease(runId: string, owner: string) {
    await this.db.$executeRaw`UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = ${runId}::uuid AND lease_owner = ${owner}`;
  }

  async recordTrigger(input: { secret: SecretRecord; trigger: string; idempotencyKey: string; outcome: 'stale' | 'joined'; runId?: string }, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      await lockSecret(tx, input.secret.id);
      const [{ known }] = await tx.$queryRaw<[{ known: boolean }]>`
        SELECT EXISTS (SELECT 1 FROM runs WHERE idempotency_key = ${input.idempotencyKey})
            OR EXISTS (SELECT 1 FROM audit_events WHERE action LIKE 'trigger.%' AND data->>'idempotencyKey' = ${input.idempotencyKey}) AS known`;
      if (known) return false;
      await appendAudit(tx, {
        ...auditOf(audit, input.runId),
        action: `trigger.${input.outcome}`,
        secret: input.secret.name,
        data: { trigger: input.trigger, idempotencyKey: input.idempotencyKey },
      });
      return true;
    });
  }

  async touchRun(runId: string) {
    await this.db.run.update({ where: { id: runId }, data: { attempts: { increment: 1 } } });
  }

  /**
   * Progress bookkeeping, not a lifecycle change: the audit log already holds the version,
   * delivery and run events each step makes, so the step is not audited again.
   */
  async setRunStep(runId: string, step: RotationStep) {
    await this.db.run.update({ where: { id: runId }, data: { step } });
  }

  async setRunGrace(runId: string, graceMs: number, audit: AuditContext) {
    await this.db.$transaction(async (tx) => {
      const run = await tx.run.update({ where: { id: runId }, data: { graceMs }, include: runInclude });
      await appendAudit(tx, { ...auditOf(audit, runId), action: 'run.grace', secret: run.secret.name, data: { graceMs } });
    });
  }

  async recordRunError(runId: string, error: string) {
    await this.db.run.update({ where: { id: runId }, data: { error } });
  }

  async finishRun(runId: string, status: Exclude<RunStatus, 'running'>, audit: AuditContext, error?: string) {
    await this.db.$transaction(async (tx) => {
      const { count } = await tx.run.updateMany({
        where: { id: runId, status: 'running' },
        data: { status, finishedAt: new Date(), step: status === 'succeeded' ? 'done' : undefined, ...(error === undefined ? {} : { error }) },
      });
      if (!count) return;
      const run = (await tx.run.findUnique({ where: { id: runId }, include: runInclude }))!;
      await appendAudit(tx, { ...auditOf(audit, runId), action: 'run.finished', secret: run.secret.name, versionId: run.versionId, data: { status, kind: run.kind } });
    });
  }

  async createVersion(runId: string, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const run = (await tx.run.findUnique({ where: { id: runId } }))!;
      await lockSecret(tx, run.secretId);
      if (run.versionId) return toVersion((await tx.version.findUnique({ where: { id: run.versionId }, include: versionInclude }))!);
      const secret = await tx.secret.update({ where: { id: run.secretId }, data: { versionCounter: { increment: 1 } } });
      const row = await tx.version.create({
        data: { id: randomUUID(), secretId: secret.id, number: secret.versionCounter, state: 'issuing' },
        include: versionInclude,
      });
      await tx.run.update({ where: { id: runId }, data: { versionId: row.id } });
      await appendAudit(tx, { ...auditOf(audit, runId), action: 'version.issuing', secret: secret.name, versionId: row.id, data: { number: row.number } });
      return toVersion(row);
    });
  }

  async recordIssued(versionId: string, fingerprint: string, issuerState: JsonObject, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const row = await tx.version.update({ where: { id: versionId }, data: { fingerprint, issuerState }, include: versionInclude });
      await appendAudit(tx, { ...auditOf(audit), action: 'version.issued', secret: row.secret.name, versionId, data: { number: row.number, fingerprint } });
      return toVersion(row);
    });
  }

  async markPending(versionId: string, storeVersionId: string, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const version = await lockVersion(tx, versionId);
      if (version.state === 'pending') return version;
      if (version.state !== 'issuing') throw compromised(version);
      const row = await tx.version.update({ where: { id: versionId }, data: { state: 'pending', storeVersionId }, include: versionInclude });
      await appendAudit(tx, { ...auditOf(audit), action: 'version.pending', secret: row.secret.name, versionId, data: { from: 'issuing', to: 'pending', storeVersionId } });
      return toVersion(row);
    });
  }

  async setDelivery(versionId: string, target: string, status: DeliveryStatus, audit: AuditContext, error?: string) {
    await this.db.$transaction(async (tx) => {
      const row = await tx.delivery.upsert({
        where: { versionId_target: { versionId, target } },
        create: { versionId, target, status, attempts: status === 'pending' ? 1 : 0, lastError: error ?? null },
        update: { status, ...(status === 'pending' ? { attempts: { increment: 1 } } : {}), ...(error === undefined ? {} : { lastError: error }) },
        include: { version: { include: versionInclude } },
      });
      await appendAudit(tx, { ...auditOf(audit), action: `delivery.${status}`, secret: row.version.secret.name, versionId, data: { target } });
    });
  }

  async promote(runId: string, graceMs: number, audit: AuditContext): Promise<void> {
    return this.db.$transaction(async (tx) => {
      const run = (await tx.run.findUnique({ where: { id: runId } }))!;
      await lockSecret(tx, run.secretId);
      const version = toVersion((await tx.version.findUnique({ where: { id: run.versionId! }, include: versionInclude }))!);
      const ctx = auditOf(audit, runId);
      if (version.state === 'current') {
        await tx.run.update({ where: { id: runId }, data: { step: 'finalize' } });
        return;
      }
      if (version.state !== 'pending') throw compromised(version);
      const now = new Date();
      const cutShort = await tx.version.findMany({ where: { secretId: run.secretId, state: 'previous', graceEndsAt: { gt: now } }, select: { id: true, number: true } });
      for (const v of cutShort) {
        await tx.version.update({ where: { id: v.id }, data: { graceEndsAt: now } });
        await appendAudit(tx, { ...ctx, action: 'version.grace-cut', secret: version.secret, versionId: v.id, data: { number: v.number } });
      }
      const old = await tx.version.findFirst({ where: { secretId: run.secretId, state: 'current' }, select: { id: true, number: true, compromisedAt: true } });
      if (old) {
        const leaked = old.compromisedAt !== null;
        const row = await tx.version.update({
          where: { id: old.id },
          data: leaked ? { state: 'compromised', graceEndsAt: now } : { state: 'previous', graceEndsAt: new Date(now.getTime() + graceMs) },
          select: { state: true, graceEndsAt: true },
        });
        await appendAudit(tx, { ...ctx, action: `version.${row.state}`, secret: version.secret, versionId: old.id, data: { from: 'current', to: row.state, number: old.number, graceEndsAt: row.graceEndsAt!.toISOString() } });
      }
      await tx.version.update({ where: { id: version.id }, data: { state: 'current', promotedAt: now } });
      await tx.secret.update({ where: { id: run.secretId }, data: { lastPromotedAt: now } });
      await tx.run.update({ where: { id: runId }, data: { step: 'finalize' } });
      await appendAudit(tx, { ...ctx, action: 'version.current', secret: version.secret, versionId: version.id, data: { from: 'pending', to: 'current', number: version.number, graceMs } });
    });
  }

  async transition(versionId: string, from: readonly VersionState[], to: VersionState, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const version = await lockVersion(tx, versionId);
      if (!from.includes(version.state)) return false;
      const stamp = STATE_STAMPS[to];
      await tx.version.update({ where: { id: versionId }, data: { state: to, ...(stamp && !(stamp === 'compromisedAt' && version.compromisedAt) ? { [stamp]: new Date() } : {}) } });
      await appendAudit(tx, { ...auditOf(audit), action: `version.${to}`, secret: version.secret, versionId, data: { from: version.state, to, number: version.number } });
      return true;
    });
  }

  async markCompromised(versionId: string, audit: AuditContext) {
    await this.db.$transaction(async (tx) => {
      const version = await lockVersion(tx, versionId);
      if (version.compromisedAt) return;
      await tx.version.update({ where: { id: versionId }, data: { compromisedAt: new Date() } });
      await appendAudit(tx, { ...auditOf(audit), action: 'version.leaked', secret: version.secret, versionId, data: { state: version.state, number: version.number } });
    });
  }

  async recordLeak(input: LeakReportInput & { version: VersionRecord | null; outcome: LeakOutcome }, audit: AuditContext): Promise<LeakRecord> {
    const secret = input.version?.secret ?? null;
    const versionId = input.version?.id ?? null;
    try {
      return await this.db.$transaction(async (tx) => {
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
            blockedAt: input.outcome === 'already-revoked' ? input.receivedAt : null,
          },
        });
        await appendAudit(tx, { ...auditOf(audit), action: 'leak.reported', secret, versionId, data: { source: input.source, deliveryId: input.deliveryId, fingerprint: input.fingerprint, outcome: input.outcome } });
        return { id: row.id, outcome: input.outcome, secret, versionId, duplicate: false };
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      const row = (await this.db.leakReport.findUnique({
        where: { source_deliveryId_fingerprint: { source: input.source, deliveryId: input.deliveryId, fingerprint: input.fingerprint } },
      }))!;
      return { id: row.id, outcome: row.outcome as LeakOutcome, secret, versionId: row.versionId, duplicate: true };
    }
  }

  async markBlocked(versionId: string) {
    const rows = await this.db.$queryRaw<Array<{ received_at: Date }>>`
      UPDATE leak_reports SET blocked_at = now() WHERE version_id = ${versionId}::uuid AND blocked_at IS NULL RETURNING received_at`;
    return rows.map((r) => r.received_at);
  }

  async pendingWork() {
    const [runs, previous, compromisedRows, leakedCurrent] = await Promise.all([
      this.db.run.findMany({ where: { status: 'running' }, include: runInclude }),
      this.db.version.findMany({ where: { state: { in: ['previous', 'retired'] } }, include: versionInclude }),
      this.db.version.findMany({ where: { state: 'compromised' }, include: versionInclude }),
      this.db.version.findMany({ where: { state: 'current', compromisedAt: { not: null } }, include: versionInclude }),
    ]);
    return {
      activeRuns: runs.map(toRun),
      previous: previous.map(toVersion),
      compromised: compromisedRows.map(toVersion),
      leakedCurrent: leakedCurrent.map(toVersion),
    };
  }
}

function auditOf(audit: AuditContext, runId?: string) {
  return { actor: audit.actor, runId: runId ?? audit.runId ?? null };
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

function compromised(version: VersionRecord): RekeyError {
  return new RekeyError('REKEY_ERR_COMPROMISED', `version ${version.number} of ${version.secret} is ${version.state}, not pending`);
}
