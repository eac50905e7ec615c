/**
 * StateRepository on PostgreSQL. Every state change locks its secret's row (so
 * promotions and leak reports on one secret serialize) and appends its audit event
 * in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import { RekeyError, sanitize } from '../core/errors.js';
import { notPending } from '../core/lifecycle.js';
import {
  type AuditContext,
  canTransition,
  type DecommissionSnapshot,
  type DeliveryStatus,
  type LeakOutcome,
  type LeakRecord,
  type LeakReportInput,
  type Promotion,
  type PromotionSnapshot,
  type RotationStep,
  type SecretRecord,
  type StepProgress,
  type RunStatus,
  type StateRepository,
  type VersionChange,
  type VersionRecord,
  type VersionState,
} from '../core/model.js';
import type { JsonObject } from '../core/ports.js';
import type { Notice } from '../core/notify.js';
import type { AuditInput, AuditLog } from './audit.js';
import { type Db, type Tx, isUniqueViolation } from './client.js';
import { STATE_STAMPS, toDelivery, toRun, toVersion, versionInclude } from './mappers.js';
import { writeNotices } from './outbox.js';
import { pendingWork } from './pending-work.js';

const runInclude = versionInclude;

export class PrismaRepository implements StateRepository {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
  ) {}

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

  async findVersionByPublicId(publicId: string) {
    const row = await this.db.version.findFirst({ where: { publicId }, orderBy: { createdAt: 'desc' }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async lastPromoted(secretId: string, before?: Date) {
    const row = await this.db.version.findFirst({
      where: { secretId, promotedAt: before ? { lt: before } : { not: null } },
      orderBy: { promotedAt: 'desc' },
      include: versionInclude,
    });
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
          await this.audit.append(tx, { ...auditOf(input.audit, row.id), action: 'run.started', secret: row.secret.name, data: { kind: 'rotation', trigger: input.trigger } });
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
        await this.audit.append(tx, { ...auditOf(input.audit, row.id), action: 'run.started', secret: row.secret.name, versionId: input.version.id, data: { kind: input.kind, trigger: input.trigger } });
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

  async takeLease(runId: string, owner: string, ms: number, countAttempt = false) {
    const granted = await this.db.$executeRaw`
      UPDATE runs SET lease_owner = ${owner}, lease_until = now() + ${ms} * interval '1 millisecond', attempts = attempts + ${countAttempt ? 1 : 0}
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
      await this.audit.append(tx, {
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
      await this.audit.append(tx, { ...auditOf(audit, runId), action: 'run.grace', secret: run.secret.name, data: { graceMs } });
    });
  }

  async restartRun(runId: string, audit: AuditContext) {
    await this.db.$transaction(async (tx) => {
      const { count } = await tx.run.updateMany({ where: { id: runId, status: 'running' }, data: { step: 'issue', versionId: null } });
      if (!count) return;
      const run = (await tx.run.findUnique({ where: { id: runId }, include: runInclude }))!;
      await this.audit.append(tx, { ...auditOf(audit, runId), action: 'run.restarted', secret: run.secret.name, data: { kind: run.kind } });
    });
  }

  async recordRunError(runId: string, error: string) {
    await this.db.run.update({ where: { id: runId }, data: { error: sanitize(error) } });
  }

  async finishRun(runId: string, status: Exclude<RunStatus, 'running'>, audit: AuditContext, error?: string) {
    await this.db.$transaction(async (tx) => {
      const { count } = await tx.run.updateMany({
        where: { id: runId, status: 'running' },
        data: {
          status,
          finishedAt: new Date(),
          step: status === 'succeeded' ? 'done' : undefined,
          leaseOwner: null,
          leaseUntil: null,
          ...(error === undefined ? {} : { error: sanitize(error) }),
        },
      });
      if (!count) return;
      const run = (await tx.run.findUnique({ where: { id: runId }, include: runInclude }))!;
      await this.audit.append(tx, { ...auditOf(audit, runId), action: 'run.finished', secret: run.secret.name, versionId: run.versionId, data: { status, kind: run.kind } });
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
      await this.audit.append(tx, { ...auditOf(audit, runId), action: 'version.issuing', secret: secret.name, versionId: row.id, data: { number: row.number } });
      return toVersion(row);
    });
  }

  async recordIssued(versionId: string, { fingerprint, issuerState, publicId }: { fingerprint: string; issuerState: JsonObject; publicId: string | undefined }, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const row = await tx.version.update({ where: { id: versionId }, data: { fingerprint, issuerState, publicId: publicId ?? null }, include: versionInclude });
      await this.audit.append(tx, { ...auditOf(audit), action: 'version.issued', secret: row.secret.name, versionId, data: { number: row.number, fingerprint } });
      return toVersion(row);
    });
  }

  async markPending(versionId: string, storeVersionId: string, audit: AuditContext, next?: StepProgress) {
    return this.db.$transaction(async (tx) => {
      const version = await lockVersion(tx, versionId);
      if (version.state !== 'pending' && version.state !== 'issuing') throw notPending(version);
      const events: AuditInput[] = [];
      let row = version;
      if (version.state === 'issuing') {
        row = toVersion(await tx.version.update({ where: { id: versionId }, data: { state: 'pending', storeVersionId }, include: versionInclude }));
        events.push({ ...auditOf(audit), action: 'version.pending', secret: row.secret, versionId, data: { from: 'issuing', to: 'pending', storeVersionId } });
      }
      if (next) events.push(...(await progress(tx, row, next, auditOf(audit))));
      await this.audit.appendAll(tx, events);
      return row;
    });
  }

  async recordProgress(versionId: string, next: StepProgress, audit: AuditContext) {
    return this.db.$transaction(async (tx) => {
      const row = await tx.version.findUnique({ where: { id: versionId }, include: versionInclude });
      if (!row) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
      const version = toVersion(row);
      const events = await progress(tx, version, next, auditOf(audit));
      await this.audit.appendAll(tx, events);
      return version;
    });
  }

  async setDelivery(versionId: string, target: string, status: DeliveryStatus, audit: AuditContext, error?: string) {
    await this.db.$transaction(async (tx) => {
      const row = await tx.delivery.upsert({
        where: { versionId_target: { versionId, target } },
        create: { versionId, target, status, attempts: status === 'pending' ? 1 : 0, lastError: error === undefined ? null : sanitize(error) },
        update: { status, ...(status === 'pending' ? { attempts: { increment: 1 } } : {}), ...(error === undefined ? {} : { lastError: sanitize(error) }) },
        include: { version: { include: versionInclude } },
      });
      await this.audit.append(tx, { ...auditOf(audit), action: `delivery.${status}`, secret: row.version.secret.name, versionId, data: { target } });
    });
  }

  async promote(runId: string, plan: (snapshot: PromotionSnapshot) => Promotion, audit: AuditContext): Promise<Promotion> {
    return this.db.$transaction(async (tx) => {
      const run = (await tx.run.findUnique({ where: { id: runId } }))!;
      await lockSecret(tx, run.secretId);
      const read = (states: VersionState[]) => tx.version.findMany({ where: { secretId: run.secretId, state: { in: states } }, orderBy: { number: 'asc' }, include: versionInclude });
      const [version, current, previous] = await Promise.all([
        tx.version.findUnique({ where: { id: run.versionId! }, include: versionInclude }),
        read(['current']),
        read(['previous']),
      ]);
      const promotion = plan({ version: toVersion(version!), current: current[0] ? toVersion(current[0]) : null, previous: previous.map(toVersion), now: new Date(), runGraceMs: run.graceMs });
      await applyChanges(tx, this.audit, promotion.changes, auditOf(audit, runId));
      if (promotion.promotedAt) await tx.secret.update({ where: { id: run.secretId }, data: { lastPromotedAt: promotion.promotedAt } });
      await tx.run.update({ where: { id: runId }, data: { step: promotion.nextStep } });
      return promotion;
    });
  }

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
    return this.db.$transaction(async (tx) => {
      await lockSecret(tx, secretId);
      const rotating = await tx.run.findFirst({ where: { secretId, kind: 'rotation', status: 'running' }, select: { id: true } });
      if (rotating) throw new RekeyError('REKEY_ERR_CONFLICT', `a rotation is running (run ${rotating.id}); decommission again once it has finished`);
      const read = async (states: VersionState[]) =>
        (await tx.version.findMany({ where: { secretId, state: { in: states } }, orderBy: { number: 'asc' }, include: versionInclude })).map(toVersion);
      const [current, previous] = await Promise.all([read(['current']), read(['previous'])]);
      const ctx = auditOf(audit);
      await applyChanges(tx, this.audit, plan({ current: current[0] ?? null, previous, now: new Date() }), ctx);
      const left = await read(['previous', 'retired']);
      const { name } = (await tx.secret.findUnique({ where: { id: secretId }, select: { name: true } }))!;
      await this.audit.append(tx, { ...ctx, action: 'secret.decommissioned', secret: name, data: { versions: left.map((v) => v.number) } });
      return left;
    });
  }

  async endGrace(secretId: string, plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[], audit: AuditContext, notices?: (changes: readonly VersionChange[]) => readonly Notice[]) {
    return this.db.$transaction(async (tx) => {
      await lockSecret(tx, secretId);
      const read = async (states: VersionState[]) =>
        (await tx.version.findMany({ where: { secretId, state: { in: states } }, orderBy: { number: 'asc' }, include: versionInclude })).map(toVersion);
      const [current, previous] = await Promise.all([read(['current']), read(['previous'])]);
      const changes = plan({ current: current[0] ?? null, previous, now: new Date() });
      await applyChanges(tx, this.audit, changes, auditOf(audit));
      if (changes.length && notices) await writeNotices(tx, notices(changes));
      return read(['previous']);
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

  pendingWork(since?: Date) {
    return pendingWork(this.db, since);
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

/** Applies core-built version changes in order, each audited (one append for all), each only from the state it was planned on. */
async function applyChanges(tx: Tx, audit: AuditLog, changes: readonly VersionChange[], ctx: ReturnType<typeof auditOf>): Promise<void> {
  const events: AuditInput[] = [];
  for (const change of changes) {
    const { version: v, to } = change;
    if (to !== v.state) refuseIllegal(v, to);
    // Only from the state the plan was built on: anything else means the plan is stale.
    const { count } = await tx.version.updateMany({ where: { id: v.id, state: v.state }, data: { state: to, ...change.set } });
    if (count !== 1) throw new RekeyError('REKEY_ERR_CONFLICT', `version ${v.number} of ${v.secret} changed while it was being planned`);
    events.push({ ...ctx, action: change.audit.action, secret: v.secret, versionId: v.id, data: change.audit.data });
  }
  await audit.appendAll(tx, events);
}

/**
 * A rotation step's bookkeeping inside its transaction: the delivery rows of `version` at
 * `next.deliveries.targets` set to one status in one statement (`pending` counts an
 * attempt; the error column is left as it is), then the run's next step. Returns their
 * audit events (`delivery.<status>` per target; the step itself is not audited).
 */
async function progress(tx: Tx, version: VersionRecord, next: StepProgress, ctx: ReturnType<typeof auditOf>): Promise<AuditInput[]> {
  const { targets = [], status = 'pending' } = next.deliveries ?? {};
  if (targets.length > 0) {
    await tx.$executeRaw`
      INSERT INTO deliveries (version_id, target, status, attempts, updated_at)
      SELECT ${version.id}::uuid, t, ${status}::"DeliveryStatus", ${status === 'pending' ? 1 : 0}, now() FROM unnest(${[...targets]}::text[]) AS t
      ON CONFLICT (version_id, target) DO UPDATE SET status = EXCLUDED.status, attempts = deliveries.attempts + EXCLUDED.attempts, updated_at = now()`;
  }
  if (next.step) await tx.run.update({ where: { id: next.runId }, data: { step: next.step } });
  return targets.map((target) => ({ ...ctx, action: `delivery.${status}`, secret: version.secret, versionId: version.id, data: { target } }));
}

/** The lifecycle's rule (VERSION_TRANSITIONS), enforced here whoever asks for a change. */
function refuseIllegal(version: VersionRecord, to: VersionState): void {
  if (!canTransition(version.state, to)) {
    throw new RekeyError('REKEY_ERR_INVALID', `version ${version.number} of ${version.secret} cannot go from ${version.state} to ${to}`);
  }
}
